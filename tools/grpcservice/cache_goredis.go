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
	rdb  *redis.Client
	mode string // rediscache, redispubsub (planted leaks) or healthy
}

// pubsubMode: this build has -mode redispubsub.
const pubsubMode = true

func newPriceCache(addr string, maxActive int, mode string) *priceCache {
	return &priceCache{mode: mode, rdb: redis.NewClient(&redis.Options{
		Addr:        addr,
		PoolSize:    maxActive,
		PoolTimeout: time.Minute,
	})}
}

// cachedPrice returns the cached price of sku, or ok=false on a miss.
func (c *priceCache) cachedPrice(ctx context.Context, sku int) (int64, bool, error) {
	switch c.mode {
	case "rediscache":
		return c.cachedPriceLeakyConn(ctx, sku)
	case "redispubsub":
		return c.cachedPriceWatchLeakyPubSub(ctx, sku)
	}
	return lookup(ctx, c.rdb, sku)
}

// cachedPriceWatchLeakyPubSub is the planted leak of mode "redispubsub": it subscribes to
// the price's invalidation channel, meaning to evict the entry when it changes, and never
// closes the subscription. Each request keeps a connection of its own to Redis: go-redis
// gives a PubSub a dedicated connection outside the pool (PoolSize does not bound them)
// and tracks it, so the garbage collector never closes it either.
func (c *priceCache) cachedPriceWatchLeakyPubSub(ctx context.Context, sku int) (int64, bool, error) {
	sub := c.rdb.Subscribe(context.Background(), "invalidate:"+key(sku))
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		return 0, false, err
	}
	// BUG: sub.Close() is never called
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
