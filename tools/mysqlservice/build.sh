#!/bin/sh
# Build catalog-api (go-sql-driver/mysql) with Debian's Go 1.19 in GOPATH mode, offline,
# against the Debian packaged driver
# (apt-get install golang-1.19 golang-github-go-sql-driver-mysql-dev).
#
#   tools/mysqlservice/build.sh OUTDIR      -> OUTDIR/catalog-api-go1.19
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
HERE=$(dirname "$0")
exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/catalog-api catalog-api-go1.19 "$1" \
	github.com/go-sql-driver/mysql=golang-github-go-sql-driver-mysql-dev
