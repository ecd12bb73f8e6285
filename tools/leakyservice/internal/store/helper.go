package store

import (
	"context"
	"database/sql"
)

// query is the store's shared read helper (mode "helper"): it counts reads and hands the
// rows to its caller, who must Close them. Every read of that mode goes through it, so
// it sits between database/sql and each caller in every stack: the line that leaks is
// not the helper's but one caller's.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s.reads.Add(1)
	return s.db.QueryContext(ctx, q, args...)
}

// listOrdersViaHelper reads orders through the helper and closes what it gets.
func (s *Store) listOrdersViaHelper(ctx context.Context, customerID, limit int) ([]Order, error) {
	rows, err := s.query(ctx, recentOrdersSQL, customerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Order
	for rows.Next() {
		var o Order
		if err := rows.Scan(&o.ID, &o.TotalCents, &o.Status, &o.CreatedAt); err != nil {
			return nil, err
		}
		out = append(out, o)
		if len(out) == limit {
			break
		}
	}
	return out, rows.Err()
}

// checkBalanceLeakyRows is the planted leak of mode "helper": a pre-check of a transfer
// that reads the balance through the helper, on a context detached from the request, and
// returns on the insufficient-funds path (every 4th account) without rows.Close(). The
// Rows keep a pooled connection each, forever.
func (s *Store) checkBalanceLeakyRows(from int, cents int64) error {
	rows, err := s.query(context.Background(), balanceSQL, from)
	if err != nil {
		return err
	}
	var balance int64
	if rows.Next() {
		if err := rows.Scan(&balance); err != nil {
			_ = rows.Close()
			return err
		}
	}
	if balance < cents {
		return ErrInsufficientFunds // BUG: rows is still open here
	}
	return rows.Close()
}
