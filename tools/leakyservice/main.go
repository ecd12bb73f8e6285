// Command orders-api is a small order/payment service used to produce real captures of
// connection leaks for the forensics analyzer. It is written the way a customer's
// service would be: handlers in package main, a data layer in internal/store, an
// upstream client in internal/rates. The -mode flag switches one planted leak on:
//
//	rows        store.listOrdersLeakyRows: *sql.Rows never closed (pool exhaustion)
//	tx          store.transferFundsLeakyTx: *sql.Tx never finished on an error path
//	openperreq  lookupUserOpenPerRequest: sql.Open per request, never Close
//	body        rates.fetchUpstreamLeakyBody: HTTP response body never closed
//	helper      store.checkBalanceLeakyRows: *sql.Rows from the shared query helper never
//	            closed by one of the helper's callers
//	hang        rates.fetchUpstreamNoTimeout: requests without any deadline to a feed
//	            that stalls (for JPY), each one parked with its connection forever
//	conn        lookupUserDedicatedConnLeaky: *sql.Conn never closed on one path
//	slow        no leak: slowUserReport runs 20-second queries (silent, busy connections)
//	healthy     the same work, done correctly
//
// Every listener must be on the loopback interface: this binary exists to be broken
// on purpose and must never be reachable from elsewhere.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/* on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/acme-retail/orders-api/internal/rates"
	"github.com/acme-retail/orders-api/internal/store"
)

type config struct {
	listen, pprof, upstream, dsn, mode string
	maxOpen, memProfileRate            int
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.listen, "listen", "127.0.0.1:8080", "app listen address (loopback only)")
	flag.StringVar(&c.pprof, "pprof", "127.0.0.1:6060", "net/http/pprof and /debug/dbstats listen address (loopback only)")
	flag.StringVar(&c.upstream, "upstream", "127.0.0.1:0", "listen address of the built-in upstream rates feed (loopback only)")
	flag.StringVar(&c.dsn, "dsn", "host=127.0.0.1 port=5432 user=postgres dbname=shop sslmode=disable", "PostgreSQL DSN (lib/pq, or pgx with -tags pgxstdlib)")
	flag.StringVar(&c.mode, "mode", "healthy", "rows | tx | openperreq | body | helper | hang | conn | slow | healthy")
	flag.IntVar(&c.maxOpen, "maxopen", 10, "db.SetMaxOpenConns of the long-lived pool (0 = unlimited)")
	flag.IntVar(&c.memProfileRate, "memprofilerate", 0, "runtime.MemProfileRate (0 = keep Go's default)")
	flag.Parse()
	return c
}

func main() {
	c := parseFlags()
	if c.memProfileRate > 0 {
		runtime.MemProfileRate = c.memProfileRate
	}
	if err := run(c); err != nil {
		log.Fatal(err)
	}
}

func run(c config) error {
	switch c.mode {
	case "rows", "tx", "openperreq", "body", "helper", "hang", "conn", "slow", "healthy":
	default:
		return fmt.Errorf("unknown -mode %q", c.mode)
	}
	appLn, err := listenLoopback(c.listen)
	if err != nil {
		return err
	}
	pprofLn, err := listenLoopback(c.pprof)
	if err != nil {
		return err
	}
	feedLn, err := listenLoopback(c.upstream)
	if err != nil {
		return err
	}

	db, err := sql.Open(driverName, c.dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(c.maxOpen)
	db.SetMaxIdleConns(4)
	pingCtx, cancelPing := context.WithTimeout(context.Background(), 10*time.Second)
	err = db.PingContext(pingCtx)
	cancelPing()
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}

	opts := store.Options{LeakRows: c.mode == "rows", LeakTx: c.mode == "tx",
		Helper: c.mode == "helper"}
	feedURL := "http://" + feedLn.Addr().String()
	a := &api{
		db:         db,
		dsn:        c.dsn,
		store:      store.New(db, opts),
		rates:      rates.NewClient(feedURL, c.mode == "body", c.mode == "hang"),
		openPerRQ:  c.mode == "openperreq",
		leakConn:   c.mode == "conn",
		slowReport: c.mode == "slow",
	}
	http.Handle("/debug/dbstats", dbStats(db))

	app := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	debug := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
	feed := rates.NewFeedServer(c.mode == "hang")
	go serve(app, appLn)
	go serve(debug, pprofLn)
	go serve(feed, feedLn)

	// One parseable line for scripts and tests that asked for port 0.
	fmt.Printf("ready app=http://%s pprof=http://%s upstream=http://%s mode=%s pid=%d go=%s\n",
		appLn.Addr(), pprofLn.Addr(), feedLn.Addr(), c.mode, os.Getpid(), runtime.Version())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	// Leaked requests never finish: do not wait for them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range []*http.Server{app, debug, feed} {
		_ = s.Shutdown(ctx)
	}
	return nil
}

func serve(s *http.Server, ln net.Listener) {
	if err := s.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Printf("serve %s: %v", ln.Addr(), err)
	}
}

// listenLoopback listens on addr after checking that its host is a loopback address.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("refusing to listen on %s: loopback addresses only", addr)
	}
	return net.Listen("tcp", addr)
}
