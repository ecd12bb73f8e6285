#!/bin/sh
# forensics collector, POSIX sh edition (forensics collect --print-script > collect.sh).
#
# For hosts where only a shell exists: captures the same bundle as `forensics collect`
# (forensics/collect.py) so the analyzer reads both the same way. Per round:
#   goroutine?debug=2, heap?gc=1 (protobuf), goroutineleak?debug=1 (when served: Go 1.26+),
#   ls -l /proc/PID/fd, ss -tanpei (else netstat -tanpe, else /proc/PID/net/tcp and tcp6),
#   lsof -nP -p PID, /proc/PID/limits, and the db.Stats JSON URL when given;
# laid out as <host>-<pid>-<UTC time>/round-N/<file> with a capture.json manifest
# (format forensics-capture/1). A missing tool, a denied permission or an unserved
# endpoint is recorded in the manifest, never fatal.
#
# Usage:
#   sh collect.sh -p PID -u PPROF_URL [-d DBSTATS_URL] [-n ROUNDS] [-i SECONDS]
#                 [-a DB_HOST:PORT]... [-o OUT]
#   PPROF_URL  e.g. http://127.0.0.1:6060 (…/debug/pprof is added when missing)
#   OUT        a .tar.gz/.tgz/.tar file (default ./<host>-<pid>-<time>.tar.gz), or a folder
#              that receives the <host>-<pid>-<time>/ bundle folder.
# Needs: curl or wget; uses lsof, ss/netstat, ls, tar, gzip when present.

set -u

PID=""; PPROF=""; DBSTATS=""; ROUNDS=3; INTERVAL=10; OUT=""; DBS=""
HTTP_TIMEOUT=120

usage() {
	sed -n '13,19p' "$0" 2>/dev/null >&2 || echo "usage: collect.sh -p PID -u PPROF_URL [...]" >&2
	exit 2
}

while getopts p:u:d:n:i:a:o:h opt; do
	case $opt in
	p) PID=$OPTARG ;;
	u) PPROF=$OPTARG ;;
	d) DBSTATS=$OPTARG ;;
	n) ROUNDS=$OPTARG ;;
	i) INTERVAL=$OPTARG ;;
	a) DBS="$DBS $OPTARG" ;;
	o) OUT=$OPTARG ;;
	*) usage ;;
	esac
done

case $PID in '' | *[!0-9]*) echo "collect.sh: -p PID is required (a number)" >&2; usage ;; esac
[ -n "$PPROF" ] || { echo "collect.sh: -u PPROF_URL is required" >&2; usage; }
case $ROUNDS in '' | *[!0-9]* | 0) echo "collect.sh: -n must be a positive number" >&2; exit 2 ;; esac
case $INTERVAL in '' | *[!0-9.]*) echo "collect.sh: -i must be seconds" >&2; exit 2 ;; esac
if [ -d /proc ] && [ ! -d "/proc/$PID" ]; then
	echo "collect.sh: no process with pid $PID" >&2
	exit 1
fi

# pprof endpoints are meant to be fetched directly, never through a proxy.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY 2>/dev/null || true

# --- helpers ------------------------------------------------------------------------------

# ISO-8601 UTC; with milliseconds where date knows %N (GNU, busybox).
now_iso() {
	t=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ 2>/dev/null)
	case $t in
	*T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z) echo "$t" ;;
	*) date -u +%Y-%m-%dT%H:%M:%SZ ;;
	esac
}

epoch() { date -u +%s 2>/dev/null || echo 0; }

# A JSON string literal of $1 (quotes and backslashes escaped, control characters dropped).
json_str() {
	printf '"%s"' "$(printf '%s' "$1" | tr '\t\n\r' '   ' | tr -d '\000-\037' |
		sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

first_line() { sed -n '/[^[:space:]]/{p;q;}' "$1" 2>/dev/null | cut -c1-300; }

size_of() { wc -c <"$1" 2>/dev/null | tr -d ' ' || echo 0; }

# URL without credentials or query, for the manifest.
redact_url() { printf '%s' "$1" | sed -e 's/?.*//' -e 's#://[^/@]*@#://#'; }

BASE=$(printf '%s' "$PPROF" | sed -e 's#/*$##')
case $BASE in */debug/pprof) ;; *) BASE="$BASE/debug/pprof" ;; esac

if command -v curl >/dev/null 2>&1; then FETCH=curl
elif command -v wget >/dev/null 2>&1; then FETCH=wget
else FETCH=""; fi

# fetch URL FILE -> prints the HTTP status (000 when there was no answer)
fetch() {
	case $FETCH in
	curl)
		curl -q -sS --max-time "$HTTP_TIMEOUT" -o "$2" -w '%{http_code}' "$1" 2>"$WORK/err" ||
			{ [ -s "$WORK/err" ] || echo "curl failed" >"$WORK/err"; }
		;;
	wget)
		if wget -q -S -T "$HTTP_TIMEOUT" -O "$2" "$1" 2>"$WORK/err"; then echo 200; else
			code=$(sed -n 's#^ *HTTP/[0-9.]* \([0-9][0-9]*\).*#\1#p' "$WORK/err" | tail -n 1)
			echo "${code:-000}"
		fi
		;;
	*) echo "neither curl nor wget found" >"$WORK/err"; echo 000 ;;
	esac
}

# add_entry REL STATUS ERROR TIME [BYTES] -- one "files" entry of the current round
add_entry() {
	e="$(json_str "$1"): {\"captured_at\": $(json_str "$4"), \"status\": $(json_str "$2")"
	[ -n "$3" ] && e="$e, \"error\": $(json_str "$3")"
	[ -n "${5:-}" ] && e="$e, \"bytes\": $5"
	printf '%s}\n' "$e" >>"$WORK/round-$N.files"
	printf '  %s: %s%s\n' "$1" "$2" "${3:+ ($3)}" >&2
}

# http_artifact REL URL [optional]
http_artifact() {
	t=$(now_iso)
	code=$(fetch "$2" "$TOP/$1")
	if [ "$code" = 200 ]; then
		add_entry "$1" ok "" "$t" "$(size_of "$TOP/$1")"
		return
	fi
	rm -f "$TOP/$1"
	if [ "$code" = 000 ]; then err=$(first_line "$WORK/err"); else err="HTTP $code"; fi
	if [ "${3:-}" = optional ] && { [ "$code" = 404 ] || [ "$code" = 400 ]; }; then
		add_entry "$1" skipped "not served by this runtime ($err)" "$t"
	else
		add_entry "$1" failed "${err:-no answer}" "$t"
	fi
}

# tool_artifact REL TOOL ARGS... -> status 0 when the tool produced output
tool_artifact() {
	rel=$1; shift
	t=$(now_iso)
	if ! command -v "$1" >/dev/null 2>&1; then
		add_entry "$rel" failed "$1 not found" "$t"
		return 1
	fi
	LC_ALL=C "$@" >"$TOP/$rel" 2>"$WORK/err"
	rc=$?
	if [ -s "$TOP/$rel" ]; then
		add_entry "$rel" ok "" "$t" "$(size_of "$TOP/$rel")"
		return 0
	fi
	rm -f "$TOP/$rel"
	err=$(first_line "$WORK/err")
	add_entry "$rel" failed "${err:-exit status $rc, no output}" "$t"
	return 1
}

# procfd_artifact REL: ls -l /proc/PID/fd under ls's own directory header (as printed when
# listing several fd folders), so that the file itself says which process it lists.
procfd_artifact() {
	if tool_artifact "$1" ls -l "/proc/$PID/fd"; then
		{ echo "/proc/$PID/fd:"; cat "$TOP/$1"; } >"$WORK/procfd" && mv "$WORK/procfd" "$TOP/$1"
	fi
}

# copy_artifact REL SRC
copy_artifact() {
	t=$(now_iso)
	if cat "$2" >"$TOP/$1" 2>"$WORK/err"; then
		add_entry "$1" ok "" "$t" "$(size_of "$TOP/$1")"
		return 0
	fi
	rm -f "$TOP/$1"
	add_entry "$1" failed "$(first_line "$WORK/err")" "$t"
	return 1
}

tool_version() {
	command -v "$1" >/dev/null 2>&1 || return 0
	case $1 in
	lsof) v=$(lsof -v 2>&1 | sed -n 's/.*revision: *\([^ ]*\).*/\1/p' | head -n 1) ;;
	ss) v=$(ss -V 2>&1 | sed -n 's/.*\(iproute2[-0-9A-Za-z_.]*\).*/\1/p' | head -n 1) ;;
	netstat) v=$(netstat -V 2>&1 | sed -n 's/.*\(net-tools [0-9.]*\).*/\1/p' | head -n 1) ;;
	esac
	[ -n "$v" ] && printf '%s: %s, ' "$(json_str "$1")" "$(json_str "$v")"
}

write_manifest() {
	m="$TOP/capture.json"
	{
		printf '{\n  "format": "forensics-capture/1",\n  "pid": %s,\n' "$PID"
		printf '  "hostname": %s,\n' "$(json_str "$HOST")"
		printf '  "db_addresses": [%s],\n' "$DB_JSON"
		printf '  "pprof_url": %s,\n' "$(json_str "$(redact_url "$BASE")")"
		[ -n "$DBSTATS" ] && printf '  "dbstats_url": %s,\n' "$(json_str "$(redact_url "$DBSTATS")")"
		printf '  "tool_versions": {%s"collector": "sh"},\n' "$VERSIONS"
		printf '  "euid": %s,\n' "$(id -u 2>/dev/null || echo null)"
		[ "$EXITED" = 1 ] && printf '  "process_exited": true,\n'
		[ "$INTERRUPTED" = 1 ] && printf '  "interrupted": true,\n'
		printf '  "rounds": ['
		i=1; sep=""
		while [ "$i" -le "$DONE" ]; do
			printf '%s\n    {"round": %s, "dir": "round-%s", "started_at": %s' "$sep" "$i" "$i" \
				"$(json_str "$(cat "$WORK/round-$i.start")")"
			[ -f "$WORK/round-$i.end" ] &&
				printf ', "finished_at": %s' "$(json_str "$(cat "$WORK/round-$i.end")")"
			printf ', "files": {\n'
			[ -f "$WORK/round-$i.files" ] && sed -e 's/^/      /' -e '$!s/$/,/' "$WORK/round-$i.files"
			printf '    }}'
			sep=","; i=$((i + 1))
		done
		printf '\n  ]\n}\n'
	} >"$m.tmp" && mv "$m.tmp" "$m"
}

capture_round() {
	d="round-$N"
	mkdir -p "$TOP/$d"
	now_iso >"$WORK/round-$N.start"
	: >"$WORK/round-$N.files"
	DONE=$N
	echo "round $N/$ROUNDS" >&2
	http_artifact "$d/goroutines.txt" "$BASE/goroutine?debug=2"
	procfd_artifact "$d/procfd.txt"
	tool_artifact "$d/ss.txt" ss -tanpei ||
		tool_artifact "$d/netstat.txt" netstat -tanpe ||
		{
			copy_artifact "$d/proc-net-tcp.txt" "/proc/$PID/net/tcp"
			copy_artifact "$d/proc-net-tcp6.txt" "/proc/$PID/net/tcp6"
		}
	tool_artifact "$d/lsof.txt" lsof -nP -p "$PID"
	[ -n "$DBSTATS" ] && http_artifact "$d/dbstats.json" "$DBSTATS"
	copy_artifact "$d/limits.txt" "/proc/$PID/limits"
	http_artifact "$d/heap.pb.gz" "$BASE/heap?gc=1"
	http_artifact "$d/goroutineleak.txt" "$BASE/goroutineleak?debug=1" optional
	now_iso >"$WORK/round-$N.end"
}

# --- main ---------------------------------------------------------------------------------

HOST=$(uname -n 2>/dev/null | sed 's/[^A-Za-z0-9._-]/_/g' | cut -c1-64)
HOST=${HOST:-host}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
NAME="$HOST-$PID-$STAMP"
[ -n "$OUT" ] || OUT="./$NAME.tar.gz"
case $OUT in
*.tar.gz | *.tgz) ARCHIVE=tgz ;;
*.tar) ARCHIVE=tar ;;
*.zip) echo "collect.sh: .zip output needs the Python collector; use .tar.gz" >&2; exit 2 ;;
*) ARCHIVE="" ;;
esac

WORK=$(mktemp -d 2>/dev/null) || { WORK="${TMPDIR:-/tmp}/forensics-collect.$$"; mkdir -m 700 "$WORK"; } || exit 1
if [ -n "$ARCHIVE" ]; then
	mkdir -p "$WORK/stage/$NAME" || exit 1
	TOP="$WORK/stage/$NAME"
else
	mkdir -p "$OUT/$NAME" || exit 1
	TOP=$(cd "$OUT/$NAME" && pwd)
fi
trap 'rm -rf "$WORK"' EXIT
INTERRUPTED=0; EXITED=0; DONE=0
trap 'INTERRUPTED=1' INT TERM

DB_JSON=""
for a in $DBS; do DB_JSON="${DB_JSON:+$DB_JSON, }$(json_str "$a")"; done
VERSIONS="$(tool_version lsof)$(tool_version ss)$(tool_version netstat)"

T0=$(epoch)
N=1
while [ "$N" -le "$ROUNDS" ] && [ "$INTERRUPTED" = 0 ]; do
	if [ "$N" -gt 1 ]; then
		# Rounds start INTERVAL seconds apart (start to start) when the clock allows.
		due=$(awk -v t0="$T0" -v n="$N" -v i="$INTERVAL" -v now="$(epoch)" \
			'BEGIN { w = t0 + (n - 1) * i - now; if (t0 == 0) w = i; print (w > 0 ? w : 0) }')
		[ "$due" = 0 ] || { echo "waiting ${due}s for round $N" >&2; sleep "$due"; }
		[ "$INTERRUPTED" = 0 ] || break
	fi
	if [ -d /proc ] && [ ! -d "/proc/$PID" ]; then
		EXITED=1
		echo "process $PID is gone; stopping" >&2
		break
	fi
	capture_round
	write_manifest
	N=$((N + 1))
done
[ "$INTERRUPTED" = 1 ] && echo "interrupted: writing what was captured so far" >&2
write_manifest

if [ -n "$ARCHIVE" ]; then
	mkdir -p "$(dirname "$OUT")"
	if [ "$ARCHIVE" = tgz ]; then
		(cd "$WORK/stage" && tar -cf - "$NAME") | gzip -c >"$OUT.partial"
	else
		(cd "$WORK/stage" && tar -cf - "$NAME") >"$OUT.partial"
	fi
	if ! mv "$OUT.partial" "$OUT"; then
		echo "collect.sh: could not write $OUT" >&2
		exit 1
	fi
	echo "$OUT"
else
	echo "$TOP"
fi
