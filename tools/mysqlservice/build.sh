#!/bin/sh
# Build catalog-api (go-sql-driver/mysql) with Debian's Go 1.19 in GOPATH mode, offline,
# against the Debian packaged driver
# (apt-get install golang-1.19 golang-github-go-sql-driver-mysql-dev).
#
#   tools/mysqlservice/build.sh OUTDIR      -> OUTDIR/catalog-api-go1.19
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")" && pwd)
GO=${GO119:-/usr/lib/go-1.19/bin/go}
[ -x "$GO" ] || { echo "Go 1.19 not found at $GO (apt-get install golang-1.19)" >&2; exit 1; }
[ -d /usr/share/gocode/src/github.com/go-sql-driver/mysql ] ||
	{ echo "go-sql-driver/mysql sources not found" \
		"(apt-get install golang-github-go-sql-driver-mysql-dev)" >&2; exit 1; }
tree=$OUT/gopath/src/example.com/catalog-api
rm -rf "$tree" && mkdir -p "$tree"
cp "$SRC"/*.go "$tree"/
: "${GOCACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
export GOCACHE CGO_ENABLED=0 GO111MODULE=off GOPATH="$OUT/gopath:/usr/share/gocode" GOFLAGS=
(cd "$tree" && "$GO" build -o "$OUT/catalog-api-go1.19" .)
echo "$OUT/catalog-api-go1.19"
