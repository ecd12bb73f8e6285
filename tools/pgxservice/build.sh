#!/bin/sh
# Build inventory-api (pgx v4 / pgxpool) with Debian's Go 1.19 in GOPATH mode, offline,
# against the Debian packaged pgx (apt-get install golang-1.19 golang-github-jackc-pgx-v4-dev).
#
#   tools/pgxservice/build.sh OUTDIR      -> OUTDIR/inventory-api-go1.19
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
HERE=$(dirname "$0")
exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/inventory-api inventory-api-go1.19 "$1" \
	github.com/jackc/pgx/v4/pgxpool=golang-github-jackc-pgx-v4-dev
