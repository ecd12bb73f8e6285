package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type gateway struct {
	backend string
	leaky   bool
	shared  healthpb.HealthClient
	cache   *priceCache // nil without -redis
}

type price struct {
	SKU   int    `json:"sku"`
	Cents int64  `json:"cents"`
	State string `json:"backend"`
}

// GET /price?sku=N
func (g *gateway) handlePrice(w http.ResponseWriter, r *http.Request) {
	sku, err := strconv.Atoi(r.URL.Query().Get("sku"))
	if err != nil {
		http.Error(w, "bad sku", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if g.cache != nil {
		cents, ok, err := g.cache.cachedPrice(ctx, sku)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if ok {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(price{SKU: sku, Cents: cents, State: "cached"})
			return
		}
	}
	var state string
	if g.leaky {
		state, err = g.lookupPriceDialPerRequest(ctx)
	} else {
		state, err = g.lookupPrice(ctx, g.shared)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	cents := int64(100 + sku%900)
	if g.cache != nil {
		if err := g.cache.store(ctx, sku, cents); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(price{SKU: sku, Cents: cents, State: state})
}

// lookupPriceDialPerRequest is the planted leak (mode "dialperreq"): a new gRPC ClientConn
// for every request, never closed. Each keeps its HTTP/2 connection to the backend and its
// goroutines (transport reader, keepalive, balancer and resolver watchers) forever.
func (g *gateway) lookupPriceDialPerRequest(ctx context.Context) (string, error) {
	conn, err := grpc.DialContext(ctx, g.backend, grpc.WithInsecure())
	if err != nil {
		return "", err
	}
	// BUG: no conn.Close()
	return g.lookupPrice(ctx, healthpb.NewHealthClient(conn))
}

// lookupPrice asks the backend (its health service stands in for a pricing RPC).
func (g *gateway) lookupPrice(ctx context.Context, c healthpb.HealthClient) (string, error) {
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetStatus().String(), nil
}
