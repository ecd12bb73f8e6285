//go:build !goredis

package main

import (
	"context"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// priceCache keeps looked-up prices in Redis through a redigo pool (modes "rediscache"
// and "healthy" when -redis is set; cache_goredis.go is the go-redis v9 build). The pool is bounded and callers wait for a vacant
// connection, as production pools are configured.
type priceCache struct {
	pool  *redis.Pool
	leaky bool
}

// pubsubMode: redigo's build has no -mode redispubsub (cache_goredis.go has).
const pubsubMode = false

func newPriceCache(addr string, maxActive int, mode string) *priceCache {
	return &priceCache{leaky: mode == "rediscache", pool: &redis.Pool{
		MaxIdle:     maxActive,
		MaxActive:   maxActive,
		Wait:        true,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr)
		},
	}}
}

// cachedPrice returns the cached price of sku, or ok=false on a miss.
func (c *priceCache) cachedPrice(ctx context.Context, sku int) (int64, bool, error) {
	if c.leaky {
		return c.cachedPriceLeakyConn(ctx, sku)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Close()
	return lookup(conn, sku)
}

// cachedPriceLeakyConn is the planted leak of mode "rediscache": on a cache miss it
// returns without conn.Close(), so the connection never goes back to the pool. Once
// MaxActive connections are gone every caller waits in redigo's (*Pool).waitVacantConn.
func (c *priceCache) cachedPriceLeakyConn(ctx context.Context, sku int) (int64, bool, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return 0, false, err
	}
	cents, ok, err := lookup(conn, sku)
	if err != nil || !ok {
		return cents, ok, err // BUG: conn is not closed on a miss
	}
	return cents, true, conn.Close()
}

// store caches a price for a minute.
func (c *priceCache) store(ctx context.Context, sku int, cents int64) error {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("SET", key(sku), cents, "EX", 60)
	return err
}

func lookup(conn redis.Conn, sku int) (int64, bool, error) {
	cents, err := redis.Int64(conn.Do("GET", key(sku)))
	if err == redis.ErrNil {
		return 0, false, nil
	}
	return cents, err == nil, err
}

func key(sku int) string { return "price:" + strconv.Itoa(sku) }
