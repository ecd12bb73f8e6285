#!/bin/sh
# Build one of the test services with Debian's Go 1.19 in GOPATH mode, offline, against the
# Go sources Debian packages install under /usr/share/gocode. Each service's build.sh calls
# this with what differs:
#
#   tools/gopath_build.sh SRCDIR IMPORT BINARY OUTDIR [PACKAGE_PATH=DEBIAN_PACKAGE ...]
#
# copies SRCDIR/*.go to OUTDIR/gopath/src/IMPORT, checks that every PACKAGE_PATH exists
# under /usr/share/gocode/src (naming DEBIAN_PACKAGE when not), builds OUTDIR/BINARY and
# prints its path. GO119 overrides the toolchain.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 SRCDIR IMPORT BINARY OUTDIR [PACKAGE_PATH=DEBIAN_PACKAGE ...]" >&2; exit 2; }
SRC=$(cd "$1" && pwd)
IMPORT=$2
BINARY=$3
OUT=$(mkdir -p "$4" && cd "$4" && pwd)
shift 4
GO=${GO119:-/usr/lib/go-1.19/bin/go}
[ -x "$GO" ] || { echo "Go 1.19 not found at $GO (apt-get install golang-1.19)" >&2; exit 1; }
for need in "$@"; do
	[ -d "/usr/share/gocode/src/${need%%=*}" ] ||
		{ echo "${need%%=*} sources not found (apt-get install ${need#*=})" >&2; exit 1; }
done
tree=$OUT/gopath/src/$IMPORT
rm -rf "$tree" && mkdir -p "$tree"
cp "$SRC"/*.go "$tree"/
: "${GOCACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
export GOCACHE CGO_ENABLED=0 GO111MODULE=off GOPATH="$OUT/gopath:/usr/share/gocode" GOFLAGS=
(cd "$tree" && "$GO" build -o "$OUT/$BINARY" .)
echo "$OUT/$BINARY"
