package store

import (
	"context"
)

const recentOrdersSQL = `SELECT id, total_cents, status, created_at
FROM orders WHERE customer_id = $1 ORDER BY id DESC`

// listOrdersLeakyRows is the planted *sql.Rows leak (mode "rows").
//
// It stops reading as soon as it has enough orders and returns without rows.Close():
// the Rows keep their pooled connection checked out forever, because the query ran
// without a context (db.Query uses context.Background), so nothing ever closes them.
// Once MaxOpenConns connections are pinned, every later query in the process waits
// in database/sql.(*DB).conn.
func (s *Store) listOrdersLeakyRows(customerID, limit int) ([]Order, error) {
	rows, err := s.db.Query(recentOrdersSQL, customerID)
	if err != nil {
		return nil, err
	}
	var out []Order
	for rows.Next() {
		var o Order
		if err := rows.Scan(&o.ID, &o.TotalCents, &o.Status, &o.CreatedAt); err != nil {
			return nil, err // leaks too
		}
		out = append(out, o)
		if len(out) == limit {
			return out, nil // BUG: rows is still open here
		}
	}
	return out, rows.Err()
}

// listOrders is the correct variant: request context, deferred Close.
func (s *Store) listOrders(ctx context.Context, customerID, limit int) ([]Order, error) {
	rows, err := s.db.QueryContext(ctx, recentOrdersSQL, customerID)
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
