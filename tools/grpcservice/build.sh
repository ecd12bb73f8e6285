#!/bin/sh
# Build pricing-gateway (grpc-go 1.33 client and a gRPC backend, redigo cache) with Debian's
# Go 1.19 in GOPATH mode, offline, against the Debian packaged sources
# (apt-get install golang-1.19 golang-google-grpc-dev golang-github-gomodule-redigo-dev).
#
#   tools/grpcservice/build.sh OUTDIR      -> OUTDIR/pricing-gateway-go1.19
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
HERE=$(dirname "$0")
exec sh "$HERE/../gopath_build.sh" "$HERE" example.com/pricing-gateway pricing-gateway-go1.19 \
	"$1" google.golang.org/grpc/health=golang-google-grpc-dev \
	github.com/gomodule/redigo/redis=golang-github-gomodule-redigo-dev
