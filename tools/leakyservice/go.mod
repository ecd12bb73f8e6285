module github.com/acme-retail/orders-api

go 1.19

require github.com/lib/pq v1.10.7

// No module proxy is reachable where this is built: build.sh copies the Debian-packaged
// lib/pq sources (golang-github-lib-pq-dev, v1.10.7) to third_party/pq next to a copy of
// this tree and builds with GOPROXY=off GOFLAGS=-mod=mod.
replace github.com/lib/pq => ./third_party/pq
