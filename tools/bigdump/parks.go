package main

// Where the goroutines of the dump wait. The mix follows what a leaking service looks
// like: most goroutines are requests parked on an exhausted database/sql pool or
// awaitDone goroutines of leaked transactions and rows; a few leaked HTTP response bodies
// keep net/http persistConn loops alive; the rest are ordinary runtime waits (timers,
// mutexes, channels, WaitGroups, conds) that a healthy service has too.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// plan is how many goroutines of each kind to park.
type plan struct {
	ordersWaiters int // requests parked in database/sql.(*DB).conn
	usersTx       int // leaked Tx -> Tx.awaitDone
	usersRows     int // leaked Rows -> Rows.awaitDone
	runtimeParks  int // sleep, mutex, WaitGroup, chan, select{}, cond
	httpLeaks     int // leaked response bodies: 3 goroutines and 2 sockets each
}

func makePlan(total, httpLeaks int) plan {
	if total <= 0 {
		return plan{}
	}
	rest := total - 3*httpLeaks
	if rest < 0 {
		rest, httpLeaks = 0, total/3
	}
	p := plan{httpLeaks: httpLeaks}
	p.ordersWaiters = rest * 30 / 100
	p.usersTx = rest * 25 / 100
	p.usersRows = rest * 20 / 100
	p.runtimeParks = rest - p.ordersWaiters - p.usersTx - p.usersRows
	return p
}

// route reaches fn through one of 4^depth distinct call chains (path picks the call
// site at each level), so parked goroutines and heap allocations (heapgen.go) can be
// spread over many distinct stacks.
func route(depth int, path uint64, fn func()) {
	if depth == 0 {
		fn()
		return
	}
	switch path & 3 {
	case 0:
		route(depth-1, path>>2, fn)
	case 1:
		route(depth-1, path>>2, fn)
	case 2:
		route(depth-1, path>>2, fn)
	default:
		route(depth-1, path>>2, fn)
	}
}

func routeDepth(variants int) int {
	depth := 0
	for n := 1; n < variants; n *= 4 {
		depth++
	}
	return depth
}

// parkRequests starts n request goroutines that block on the exhausted orders pool.
func (s *service) parkRequests(n, variants int) {
	paths := []string{"/orders/list", "/orders/pay", "/orders/begin"}
	depth := routeDepth(variants)
	for i := 0; i < n; i++ {
		path := paths[i%len(paths)]
		variant := uint64((i / len(paths)) % variants)
		go route(depth, variant, func() { s.serve(path) })
	}
}

// leakTransactions runs n leaking requests of each kind to completion; each leaves its
// awaitDone goroutine (and its connection) behind.
func (s *service) leak(n int, path string) {
	for i := 0; i < n; i++ {
		s.serve(path)
	}
}

type runtimeWaits struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	cond   *sync.Cond
	never  chan int
	full   chan int
	ticker *time.Ticker
}

func sleeper()                      { time.Sleep(24 * time.Hour) }
func (r *runtimeWaits) locker()     { r.mu.Lock() }
func (r *runtimeWaits) waiter()     { r.wg.Wait() }
func (r *runtimeWaits) receiver()   { <-r.never }
func (r *runtimeWaits) sender()     { r.full <- 1 }
func (r *runtimeWaits) condWaiter() { r.cond.L.Lock(); r.cond.Wait() }
func (r *runtimeWaits) tickerLoop() {
	for range r.ticker.C {
	}
}
func idleForever() { select {} }

// parkRuntime starts n goroutines in ordinary runtime waits.
func parkRuntime(n int) *runtimeWaits {
	r := &runtimeWaits{never: make(chan int), full: make(chan int), cond: sync.NewCond(&sync.Mutex{})}
	r.mu.Lock()
	r.wg.Add(1)
	r.ticker = time.NewTicker(time.Hour)
	kinds := []func(){sleeper, r.locker, r.waiter, r.receiver, r.sender, r.condWaiter, idleForever, r.tickerLoop}
	for i := 0; i < n; i++ {
		go kinds[i%len(kinds)]()
	}
	return r
}

// leakBodies makes n requests to a local HTTP server through fetchUpstream and never
// closes the response bodies: each keeps a client readLoop and writeLoop and a server
// conn goroutine alive, with two sockets.
func leakBodies(n int) (io.Closer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"price": 42}`)
	})}
	go func() { _ = srv.Serve(ln) }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := "http://" + ln.Addr().String() + "/price"
	for i := 0; i < n; i++ {
		if err := fetchUpstream(client, url); err != nil {
			return srv, err
		}
	}
	return srv, nil
}

// fetchUpstream reads the status and forgets the body: the classic body leak.
func fetchUpstream(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream: %s", resp.Status)
	}
	return nil // BUG: resp.Body.Close() missing
}
