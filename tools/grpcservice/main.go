// pricing-gateway: a small HTTP service that asks a gRPC backend before answering, with a
// switchable, planted leak of gRPC client connections (-mode dialperreq: a ClientConn
// dialed per request and never closed; -mode healthy: one shared ClientConn). It exists to
// produce real captures of a gRPC client for forensics.
//
// The backend is the same binary with -role backend (a gRPC health service), run as its
// own process so that the gateway's capture holds the client side only.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

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

func main() {
	role := flag.String("role", "gateway", "gateway or backend")
	listen := flag.String("listen", "127.0.0.1:0", "app (or backend gRPC) address, loopback only")
	pprofAddr := flag.String("pprof", "127.0.0.1:0", "net/http/pprof address (loopback only)")
	backend := flag.String("backend", "", "gRPC backend address (gateway role)")
	mode := flag.String("mode", "dialperreq", "dialperreq (planted leak) or healthy")
	rate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default)")
	flag.Parse()
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	switch *role {
	case "backend":
		serveBackend(loopback(*listen))
	case "gateway":
		if *mode != "dialperreq" && *mode != "healthy" {
			log.Fatalf("unknown -mode %q", *mode)
		}
		serveGateway(loopback(*listen), loopback(*pprofAddr), *backend, *mode)
	default:
		log.Fatalf("unknown -role %q", *role)
	}
}

func serveBackend(ln net.Listener) {
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	fmt.Printf("ready backend=%s pid=%d go=%s\n", ln.Addr(), os.Getpid(), runtime.Version())
	log.Fatal(s.Serve(ln))
}

func serveGateway(app, pprofLn net.Listener, backend, mode string) {
	g := &gateway{backend: backend, leaky: mode == "dialperreq"}
	if !g.leaky {
		conn, err := grpc.Dial(backend, grpc.WithInsecure())
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		g.shared = healthpb.NewHealthClient(conn)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/price", g.handlePrice)
	go func() { log.Fatal(http.Serve(pprofLn, nil)) }() // http.DefaultServeMux: pprof
	fmt.Printf("ready app=http://%s pprof=http://%s mode=%s pid=%d go=%s\n",
		app.Addr(), pprofLn.Addr(), mode, os.Getpid(), runtime.Version())
	log.Fatal(http.Serve(app, mux))
}
