// Package store is the orders-api data layer: orders, accounts and transfers on
// PostgreSQL through database/sql and lib/pq.
//
// Two of its methods exist in a leaky and a correct variant (see rows.go and tx.go);
// the service's -mode flag decides which one a Store uses, so the same HTTP load can
// be replayed against a leaking and a healthy build of the same code.
package store

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"time"
)

// ErrInsufficientFunds is returned when the source account cannot cover a transfer.
var ErrInsufficientFunds = errors.New("insufficient funds")

// Order is one row of the orders table.
type Order struct {
	ID         int64     `json:"id"`
	TotalCents int64     `json:"total_cents"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
}

// Options selects the leaky code paths (false = the correct variant).
type Options struct {
	LeakRows bool
	LeakTx   bool
	// Helper routes reads through the shared query helper, one of whose callers leaks.
	Helper bool
}

// Store wraps the service's long-lived connection pool.
type Store struct {
	db    *sql.DB
	opts  Options
	reads atomic.Int64
}

// New returns a Store on db.
func New(db *sql.DB, opts Options) *Store {
	return &Store{db: db, opts: opts}
}

// RecentOrders returns the newest orders of a customer, at most limit of them.
func (s *Store) RecentOrders(ctx context.Context, customerID, limit int) ([]Order, error) {
	if s.opts.LeakRows {
		return s.listOrdersLeakyRows(customerID, limit)
	}
	if s.opts.Helper {
		return s.listOrdersViaHelper(ctx, customerID, limit)
	}
	return s.listOrders(ctx, customerID, limit)
}

// Transfer moves cents from one account to another in one transaction.
func (s *Store) Transfer(ctx context.Context, from, to int, cents int64) error {
	if s.opts.LeakTx {
		return s.transferFundsLeakyTx(from, to, cents)
	}
	if s.opts.Helper {
		if err := s.checkBalanceLeakyRows(from, cents); err != nil {
			return err
		}
	}
	return s.transferFunds(ctx, from, to, cents)
}
