package main

import (
	"context"
	"errors"
)

var errSoldOut = errors.New("sold out")

// inventory reserves stock through a pgxpool.Pool.
type inventory struct {
	pool *Pool
	mode string // acquire, rows or healthy
}

func (s *inventory) reserve(ctx context.Context, sku int) (int, error) {
	switch s.mode {
	case "acquire":
		return s.reserveStockLeakyAcquire(ctx, sku)
	case "rows":
		return s.reserveStockLeakyRows(ctx, sku)
	}
	return s.reserveStock(ctx, sku)
}

// reserveStockLeakyAcquire takes a pool connection for the check and the decrement, and
// forgets to give it back when the item is sold out: every sold-out request keeps one of
// the pool's connections until the pool is exhausted and Acquire blocks everyone.
func (s *inventory) reserveStockLeakyAcquire(ctx context.Context, sku int) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	var stock int
	if err := conn.QueryRow(ctx, "SELECT stock FROM items WHERE sku = $1", sku).Scan(&stock); err != nil {
		conn.Release()
		return 0, err
	}
	if stock <= 0 {
		return 0, errSoldOut // the planted leak: conn.Release() missing on this path
	}
	_, err = conn.Exec(ctx, "UPDATE items SET stock = stock - 1 WHERE sku = $1", sku)
	conn.Release()
	return stock - 1, err
}

// reserveStock is the same done right.
func (s *inventory) reserveStock(ctx context.Context, sku int) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var stock int
	if err := conn.QueryRow(ctx, "SELECT stock FROM items WHERE sku = $1", sku).Scan(&stock); err != nil {
		return 0, err
	}
	if stock <= 0 {
		return 0, errSoldOut
	}
	_, err = conn.Exec(ctx, "UPDATE items SET stock = stock - 1 WHERE sku = $1", sku)
	return stock - 1, err
}

// reserveStockLeakyRows reads the stock through pool.Query, which holds a pool connection
// until the rows are closed, and returns early when the item is sold out without closing
// them: the most common pgx leak. Each sold-out request keeps one connection.
func (s *inventory) reserveStockLeakyRows(ctx context.Context, sku int) (int, error) {
	rows, err := s.pool.Query(ctx, "SELECT stock FROM items WHERE sku = $1", sku)
	if err != nil {
		return 0, err
	}
	stock := 0
	for rows.Next() {
		if err := rows.Scan(&stock); err != nil {
			rows.Close()
			return 0, err
		}
		if stock <= 0 {
			return 0, errSoldOut // the planted leak: rows.Close() missing on this path
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	_, err = s.pool.Exec(ctx, "UPDATE items SET stock = stock - 1 WHERE sku = $1", sku)
	return stock - 1, err
}
