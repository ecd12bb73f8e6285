//go:build !pgxv5

package main

import (
	"context"

	"github.com/jackc/pgx/v4/pgxpool"
)

// Pool is pgx v4's pgxpool (puddle v1 underneath); build with -tags pgxv5 for v5.
type Pool = pgxpool.Pool

const pgxMajor = "v4"

func newPool(ctx context.Context, dsn string, maxConns int) (*Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(maxConns)
	return pgxpool.ConnectConfig(ctx, cfg)
}
