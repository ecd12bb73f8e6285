package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strconv"
)

type catalog struct {
	db    *sql.DB
	leaky bool
}

type item struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Cents int    `json:"price_cents"`
}

const itemsSQL = `SELECT id, name, price_cents FROM items WHERE category = ? ORDER BY id`

// GET /items?cat=N
func (c *catalog) handleItems(w http.ResponseWriter, r *http.Request) {
	cat, err := strconv.Atoi(r.URL.Query().Get("cat"))
	if err != nil {
		http.Error(w, "bad cat", http.StatusBadRequest)
		return
	}
	var items []item
	if c.leaky {
		items, err = c.firstItemsLeakyRows(cat, 3)
	} else {
		items, err = c.firstItems(r.Context(), cat, 3)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(items)
}

// firstItemsLeakyRows is the planted leak (mode "rows"): it stops after the first items
// and returns without rows.Close(), on a query without context. The Rows keep their
// MySQL connection checked out; once MaxOpenConns are gone, every query waits in
// database/sql.(*DB).conn.
func (c *catalog) firstItemsLeakyRows(cat, limit int) ([]item, error) {
	rows, err := c.db.Query(itemsSQL, cat)
	if err != nil {
		return nil, err
	}
	var out []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.ID, &it.Name, &it.Cents); err != nil {
			return nil, err
		}
		out = append(out, it)
		if len(out) == limit {
			return out, nil // BUG: rows is still open here
		}
	}
	return out, rows.Err()
}

// firstItems is the correct variant: request context, deferred Close.
func (c *catalog) firstItems(ctx context.Context, cat, limit int) ([]item, error) {
	rows, err := c.db.QueryContext(ctx, itemsSQL, cat)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []item
	for rows.Next() && len(out) < limit {
		var it item
		if err := rows.Scan(&it.ID, &it.Name, &it.Cents); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}
