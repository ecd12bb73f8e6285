//go:build goredis

package main

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// priceCache keeps looked-up prices in Redis through go-redis v9's client pool (this
// file is built with -tags goredis; cache.go is the redigo build). The pool is bounded
// and callers wait up to a minute for a connection, as a redigo pool with Wait does.
type priceCache struct {
	rdb   *redis.Client
	leaky bool
}

func newPriceCache(addr string, maxActive int, leaky bool) *priceCache {
	return &priceCache{leaky: leaky, rdb: redis.NewClient(&redis.Options{
		Addr:        addr,
		PoolSize:    maxActive,
		PoolTimeout: time.Minute,
	})}
}

// cachedPrice returns the cached price of sku, or ok=false on a miss.
func (c *priceCache) cachedPrice(ctx context.Context, sku int) (int64, bool, error) {
	if c.leaky {
		return c.cachedPriceLeakyConn(ctx, sku)
	}
	return lookup(ctx, c.rdb, sku)
}

// cachedPriceLeakyConn is the planted leak of mode "rediscache": it reads through a
// dedicated connection (rdb.Conn(), which keeps a pool connection from its first command
// until Close) and returns without conn.Close() on a miss. Once PoolSize connections are
// gone every caller waits in go-redis's pool for a turn.
func (c *priceCache) cachedPriceLeakyConn(ctx context.Context, sku int) (int64, bool, error) {
	conn := c.rdb.Conn()
	cents, ok, err := lookup(ctx, conn, sku)
	if err != nil || !ok {
		return cents, ok, err // BUG: conn is not closed on a miss
	}
	return cents, true, conn.Close()
}

// store caches a price for a minute.
func (c *priceCache) store(ctx context.Context, sku int, cents int64) error {
	return c.rdb.Set(ctx, key(sku), cents, time.Minute).Err()
}

func lookup(ctx context.Context, cmd redis.Cmdable, sku int) (int64, bool, error) {
	cents, err := cmd.Get(ctx, key(sku)).Int64()
	if err == redis.Nil {
		return 0, false, nil
	}
	return cents, err == nil, err
}

func key(sku int) string { return "price:" + strconv.Itoa(sku) }
