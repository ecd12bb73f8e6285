// inventory-api: a small service on pgx's pgxpool (v4, or v5 with -tags pgxv5) with a
// switchable, planted leak (-mode acquire: a pool connection not released on one path;
// -mode rows: query rows not closed on one path; -mode healthy: none). It exists to
// produce real captures of a pgxpool service for forensics.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "app address (loopback only)")
	pprofAddr := flag.String("pprof", "127.0.0.1:0", "net/http/pprof address (loopback only)")
	dsn := flag.String("dsn", "", "PostgreSQL connection string")
	mode := flag.String("mode", "acquire", "acquire or rows (planted leaks), or healthy")
	maxConns := flag.Int("maxopen", 8, "pool MaxConns (named like orders-api's flag)")
	rate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default)")
	flag.Parse()
	if *mode != "acquire" && *mode != "rows" && *mode != "healthy" {
		log.Fatalf("unknown -mode %q", *mode)
	}
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}

	pool, err := newPool(context.Background(), *dsn, *maxConns)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	inv := &inventory{pool: pool, mode: *mode}

	app := http.NewServeMux()
	app.HandleFunc("/reserve", func(w http.ResponseWriter, r *http.Request) {
		sku, err := strconv.Atoi(r.URL.Query().Get("sku"))
		if err != nil {
			http.Error(w, "bad sku", http.StatusBadRequest)
			return
		}
		left, err := inv.reserve(r.Context(), sku)
		switch {
		case errors.Is(err, errSoldOut):
			http.Error(w, "sold out", http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "%d\n", left)
		}
	})
	app.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })

	// pgxpool has no sql.DBStats; its own counters, as JSON.
	http.HandleFunc("/debug/poolstats", func(w http.ResponseWriter, r *http.Request) {
		st := pool.Stat()
		json.NewEncoder(w).Encode(map[string]interface{}{
			"AcquireCount": st.AcquireCount(), "AcquiredConns": st.AcquiredConns(),
			"CanceledAcquireCount": st.CanceledAcquireCount(), "EmptyAcquireCount": st.EmptyAcquireCount(),
			"IdleConns": st.IdleConns(), "MaxConns": st.MaxConns(), "TotalConns": st.TotalConns(),
		})
	})

	appLn, pprofLn := loopback(*listen), loopback(*pprofAddr)
	go func() { log.Fatal(http.Serve(pprofLn, http.DefaultServeMux)) }()
	fmt.Printf("ready app=http://%s pprof=http://%s mode=%s pid=%d go=%s pgx=%s\n",
		appLn.Addr(), pprofLn.Addr(), *mode, os.Getpid(), runtime.Version(), pgxMajor)
	log.Fatal(http.Serve(appLn, app))
}
