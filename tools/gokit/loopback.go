package main

// Shared by the GOPATH-built test services (gopath_build.sh copies this folder's files
// into each one's package main): they listen on the loopback interface only. orders-api,
// also built in module mode, keeps its own (listenLoopback).

import (
	"log"
	"net"
)

// loopback listens on addr, refusing any address but 127.0.0.1 or localhost.
func loopback(addr string) net.Listener {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || (host != "127.0.0.1" && host != "localhost") {
		log.Fatalf("refusing non-loopback address %q", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	return ln
}
