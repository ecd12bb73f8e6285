// Command bigdump parks many goroutines in realistic database/sql, net/http and runtime
// stacks and writes its own goroutine dump and heap profile, so the forensics benchmarks
// run on inputs made by a real Go runtime, at production scale, without a database.
//
//	bigdump -goroutines 200000 -dump goroutines.txt
//	bigdump -goroutines 0 -heap-stacks 500000 -heap heap.pb.gz
//
// The full debug=2 dump is written with runtime.Stack and a buffer that grows until the
// whole dump fits (the /debug/pprof endpoint stops at 64 MiB; -pprof-dump writes that
// cut version too).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

type options struct {
	goroutines, variants, httpLeaks, maxOpen int
	heapStacks, heapDepth, memProfileRate    int
	dump, pprofDump, debug1, heap            string
}

func parseFlags() options {
	var o options
	flag.IntVar(&o.goroutines, "goroutines", 200000, "goroutines to park (about; 0 = none)")
	flag.IntVar(&o.variants, "variants", 1, "distinct call chains per parked request kind")
	flag.IntVar(&o.httpLeaks, "http", 64, "leaked HTTP response bodies (3 goroutines, 2 sockets each)")
	flag.IntVar(&o.maxOpen, "max-open", 10, "MaxOpenConns of the exhausted orders pool")
	flag.IntVar(&o.heapStacks, "heap-stacks", 0, "distinct allocation stacks to add to the heap profile")
	flag.IntVar(&o.heapDepth, "heap-depth", 24, "frames of the generated allocation stacks")
	flag.IntVar(&o.memProfileRate, "memprofilerate", -1, "runtime.MemProfileRate (-1: 1 when -heap-stacks > 0, else Go's default)")
	flag.StringVar(&o.dump, "dump", "", "write the full debug=2 dump (runtime.Stack) here")
	flag.StringVar(&o.pprofDump, "pprof-dump", "", "write the dump as /debug/pprof/goroutine?debug=2 does (cut at 64 MiB)")
	flag.StringVar(&o.debug1, "debug1", "", "write the debug=1 goroutine profile here")
	flag.StringVar(&o.heap, "heap", "", "write the heap profile (profile.proto, gzipped) here")
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	switch {
	case o.memProfileRate >= 0:
		runtime.MemProfileRate = o.memProfileRate
	case o.heapStacks > 0:
		runtime.MemProfileRate = 1
	}
	start := time.Now()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bigdump:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bigdump: %d goroutines, %s, %s\n", runtime.NumGoroutine(),
		runtime.Version(), time.Since(start).Round(time.Millisecond))
}

func run(o options) error {
	if o.variants < 1 {
		o.variants = 1
	}
	s, err := newService(o.maxOpen)
	if err != nil {
		return err
	}
	p := makePlan(o.goroutines, o.httpLeaks)
	if p.ordersWaiters > 0 {
		s.leak(o.maxOpen, "/orders/begin") // takes every connection of the orders pool
	}
	s.leak(p.usersTx, "/users/tx")
	s.leak(p.usersRows, "/users/search")
	if p.httpLeaks > 0 {
		if _, err := leakBodies(p.httpLeaks); err != nil {
			return err
		}
	}
	parkRuntime(p.runtimeParks)
	s.parkRequests(p.ordersWaiters, o.variants)
	waitParked(s, int64(p.ordersWaiters))
	if o.heapStacks > 0 {
		fillHeap(o.heapStacks, o.heapDepth)
	}
	return writeOutputs(o)
}

// waitParked returns once every request goroutine waits for a connection and the rest
// had time to reach their waits.
func waitParked(s *service, waiters int64) {
	deadline := time.Now().Add(5 * time.Minute)
	for s.orders.Stats().WaitCount < waiters && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

func writeOutputs(o options) error {
	if o.dump != "" {
		if err := os.WriteFile(o.dump, fullDump(), 0o644); err != nil {
			return err
		}
	}
	for _, out := range []struct {
		path, profile string
		debug         int
	}{{o.pprofDump, "goroutine", 2}, {o.debug1, "goroutine", 1}, {o.heap, "heap", 0}} {
		if out.path == "" {
			continue
		}
		if out.profile == "heap" {
			runtime.GC() // the heap profile is as of the last completed GC
		}
		if err := writeProfile(out.path, out.profile, out.debug); err != nil {
			return err
		}
	}
	return nil
}

// fullDump is runtime.Stack(all) with a buffer large enough for every goroutine.
func fullDump() []byte {
	buf := make([]byte, 64<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

func writeProfile(path, name string, debug int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
