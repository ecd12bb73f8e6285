package main

// The leaking "service": HTTP handlers on a ServeMux that use database/sql the way
// leaking services do. Requests are driven through ServeMux.ServeHTTP in-process (no
// socket per request), so a parked request goroutine shows the same net/http and
// database/sql frames as in production without needing 10^5 file descriptors.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
)

type service struct {
	// orders has a small pool that leaked transactions exhaust: every later request
	// parks in database/sql.(*DB).conn waiting for a connection (state "select").
	orders *sql.DB
	// users has no pool limit: leaked transactions and unclosed rows each leave a
	// database/sql awaitDone goroutine behind.
	users *sql.DB
	// base is a server-lifetime context that is never cancelled (the usual cause of
	// awaitDone goroutines that never end).
	base context.Context
	mux  *http.ServeMux
}

func newService(maxOpen int) (*service, error) {
	orders, err := sql.Open(fakeDriverName, "orders-primary")
	if err != nil {
		return nil, err
	}
	orders.SetMaxOpenConns(maxOpen)
	users, err := sql.Open(fakeDriverName, "users-replica")
	if err != nil {
		return nil, err
	}
	users.SetMaxIdleConns(0)
	base, cancel := context.WithCancel(context.Background())
	_ = cancel // kept for the process lifetime on purpose
	s := &service{orders: orders, users: users, base: base, mux: http.NewServeMux()}
	s.mux.HandleFunc("/orders/begin", s.beginOrder)
	s.mux.HandleFunc("/orders/list", s.listOrders)
	s.mux.HandleFunc("/orders/pay", s.payOrder)
	s.mux.HandleFunc("/users/tx", s.updateUser)
	s.mux.HandleFunc("/users/search", s.searchUsers)
	return s, nil
}

// serve runs one request through the mux, as net/http's conn.serve would.
func (s *service) serve(path string) {
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(s.base)
	s.mux.ServeHTTP(httptest.NewRecorder(), req)
}

// beginOrder leaks its transaction on the early return (no Rollback).
func (s *service) beginOrder(w http.ResponseWriter, r *http.Request) {
	tx, err := s.orders.BeginTx(r.Context(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if _, err := tx.ExecContext(r.Context(), "UPDATE orders SET status = 'locked' WHERE id = $1", 7); err != nil {
		return
	}
	fmt.Fprintln(w, "locked") // BUG: neither Commit nor Rollback
}

// listOrders parks in DB.conn once the orders pool is exhausted.
func (s *service) listOrders(w http.ResponseWriter, r *http.Request) {
	rows, err := s.orders.QueryContext(r.Context(), "SELECT id, status FROM orders")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status string
		_ = rows.Scan(&id, &status)
	}
}

// payOrder parks in DB.conn too, through ExecContext.
func (s *service) payOrder(w http.ResponseWriter, r *http.Request) {
	if _, err := s.orders.ExecContext(r.Context(), "UPDATE orders SET paid = true WHERE id = $1", 7); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// updateUser leaks a transaction of the unlimited pool.
func (s *service) updateUser(w http.ResponseWriter, r *http.Request) {
	tx, err := s.users.BeginTx(r.Context(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = tx.ExecContext(r.Context(), "UPDATE users SET seen = now() WHERE id = $1", 1)
	// BUG: the transaction is never finished.
}

// searchUsers leaks its rows (no rows.Close on the early return).
func (s *service) searchUsers(w http.ResponseWriter, r *http.Request) {
	rows, err := s.users.QueryContext(r.Context(), "SELECT id, status FROM users WHERE name LIKE $1", "a%")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if rows.Next() {
		fmt.Fprintln(w, "found") // BUG: returns with the rows open
		return
	}
	rows.Close()
}
