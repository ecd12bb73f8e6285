package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strconv"

	"github.com/acme-retail/orders-api/internal/rates"
	"github.com/acme-retail/orders-api/internal/store"
)

// api holds what the HTTP handlers need.
type api struct {
	db         *sql.DB
	dsn        string
	store      *store.Store
	rates      *rates.Client
	openPerRQ  bool
	leakConn   bool
	slowReport bool
}

func (a *api) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/orders", a.handleOrders)
	mux.HandleFunc("/transfer", a.handleTransfer)
	mux.HandleFunc("/users", a.handleUser)
	mux.HandleFunc("/rates", a.handleRates)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// GET /orders?customer=N
func (a *api) handleOrders(w http.ResponseWriter, r *http.Request) {
	id, ok := intParam(w, r, "customer")
	if !ok {
		return
	}
	orders, err := a.store.RecentOrders(r.Context(), id, 5)
	reply(w, orders, err)
}

// POST /transfer?from=N&to=M&cents=C
func (a *api) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	from, ok1 := intParam(w, r, "from")
	if !ok1 {
		return
	}
	to, ok2 := intParam(w, r, "to")
	if !ok2 {
		return
	}
	cents, ok3 := intParam(w, r, "cents")
	if !ok3 {
		return
	}
	err := a.store.Transfer(r.Context(), from, to, int64(cents))
	if errors.Is(err, store.ErrInsufficientFunds) {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	reply(w, map[string]string{"status": "done"}, err)
}

// GET /users?id=N
func (a *api) handleUser(w http.ResponseWriter, r *http.Request) {
	id, ok := intParam(w, r, "id")
	if !ok {
		return
	}
	u, err := a.findUser(r.Context(), id)
	if errors.Is(err, sql.ErrNoRows) {
		http.NotFound(w, r)
		return
	}
	reply(w, u, err)
}

func (a *api) findUser(ctx context.Context, id int) (User, error) {
	if a.openPerRQ {
		return lookupUserOpenPerRequest(ctx, a.dsn, id)
	}
	if a.leakConn {
		return lookupUserDedicatedConnLeaky(ctx, a.db, id)
	}
	if a.slowReport && id%10 == 0 {
		return slowUserReport(a.db, id)
	}
	return lookupUser(ctx, a.db, id)
}

// GET /rates?currency=EUR
func (a *api) handleRates(w http.ResponseWriter, r *http.Request) {
	cur := r.URL.Query().Get("currency")
	if cur == "" {
		cur = "EUR"
	}
	q, err := a.rates.Latest(r.Context(), cur)
	reply(w, q, err)
}

// dbStats serves json.Marshal(db.Stats()) of the long-lived pool.
func dbStats(db *sql.DB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := json.Marshal(db.Stats())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}

func intParam(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	v, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil {
		http.Error(w, "bad "+name, http.StatusBadRequest)
		return 0, false
	}
	return v, true
}

func reply(w http.ResponseWriter, v interface{}, err error) {
	if err != nil {
		log.Printf("request failed: %v", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
