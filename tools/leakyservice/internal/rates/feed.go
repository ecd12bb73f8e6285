// Package rates talks to the exchange-rate feed, an upstream HTTP service that streams
// newline-delimited JSON quotes. The feed is served by the same process on a second
// loopback listener (NewFeedServer), so the test service needs no other dependency.
package rates

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Quote is one record of the feed.
type Quote struct {
	Currency string  `json:"currency"`
	Rate     float64 `json:"rate"`
	Seq      int     `json:"seq"`
}

// feedRecords is how many quotes one /v1/quotes response streams; a client that
// needs only the latest one reads the first line and stops.
const feedRecords = 400

// NewFeedServer returns the upstream feed. Its idle timeout closes kept-alive
// connections after a few seconds, as load balancers do: a client that never closed
// the response body is then left with a socket in CLOSE_WAIT.
//
// With stallJPY the feed never answers a JPY request (it waits until the client goes
// away), as an overloaded upstream does for its slowest queries.
func NewFeedServer(stallJPY bool) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/quotes", func(w http.ResponseWriter, r *http.Request) {
		if stallJPY && r.URL.Query().Get("currency") == "JPY" {
			<-r.Context().Done()
			return
		}
		serveQuotes(w, r)
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       3 * time.Second,
	}
}

// serveQuotes streams feedRecords quotes, newest first, flushing in small batches.
func serveQuotes(w http.ResponseWriter, r *http.Request) {
	currency := r.URL.Query().Get("currency")
	if currency == "" {
		currency = "EUR"
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for i := 0; i < feedRecords; i++ {
		q := Quote{Currency: currency, Rate: 1 + float64(i%97)/1000, Seq: feedRecords - i}
		if err := enc.Encode(q); err != nil {
			return
		}
		if flusher != nil && i%50 == 49 {
			flusher.Flush()
		}
	}
}

// errStatus reports a non-200 answer of the feed.
func errStatus(code int) error {
	return fmt.Errorf("rates feed: HTTP %d", code)
}
