// pricing-gateway: a small HTTP service that asks a gRPC backend before answering and can
// cache prices in Redis (redigo), with switchable, planted leaks (-mode dialperreq: a gRPC
// ClientConn dialed per request and never closed; -mode rediscache: a pooled Redis
// connection not closed on a cache miss; -mode healthy: neither). It exists to produce real
// captures of gRPC and Redis clients for forensics.
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

func main() {
	role := flag.String("role", "gateway", "gateway or backend")
	listen := flag.String("listen", "127.0.0.1:0", "app (or backend gRPC) address, loopback only")
	pprofAddr := flag.String("pprof", "127.0.0.1:0", "net/http/pprof address (loopback only)")
	backend := flag.String("backend", "", "gRPC backend address (gateway role)")
	mode := flag.String("mode", "dialperreq", "dialperreq | rediscache | redispubsub (planted leaks) | healthy")
	redisAddr := flag.String("redis", "", "Redis address for the price cache (loopback only)")
	maxActive := flag.Int("maxactive", 8, "Redis pool MaxActive")
	rate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default)")
	flag.Parse()
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	switch *role {
	case "backend":
		serveBackend(loopback(*listen))
	case "gateway":
		switch *mode {
		case "dialperreq", "rediscache", "healthy":
		case "redispubsub":
			if !pubsubMode {
				log.Fatal("-mode redispubsub needs the go-redis build (-tags goredis)")
			}
		default:
			log.Fatalf("unknown -mode %q", *mode)
		}
		var cache *priceCache
		if *redisAddr != "" {
			if host, _, err := net.SplitHostPort(*redisAddr); err != nil || host != "127.0.0.1" {
				log.Fatalf("refusing non-loopback Redis address %q", *redisAddr)
			}
			cache = newPriceCache(*redisAddr, *maxActive, *mode)
		} else if *mode == "rediscache" || *mode == "redispubsub" {
			log.Fatalf("-mode %s needs -redis", *mode)
		}
		serveGateway(loopback(*listen), loopback(*pprofAddr), *backend, *mode, cache)
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

func serveGateway(app, pprofLn net.Listener, backend, mode string, cache *priceCache) {
	g := &gateway{backend: backend, leaky: mode == "dialperreq", cache: cache}
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
