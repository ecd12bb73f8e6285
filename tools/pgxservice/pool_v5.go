//go:build pgxv5

package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is pgx v5's pgxpool (puddle v2 underneath, a semaphore for waiters).
type Pool = pgxpool.Pool

const pgxMajor = "v5"

func newPool(ctx context.Context, dsn string, maxConns int) (*Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(maxConns)
	return pgxpool.NewWithConfig(ctx, cfg)
}
