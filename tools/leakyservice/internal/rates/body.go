package rates

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// Client reads the latest quote from the feed.
type Client struct {
	base      string
	http      *http.Client
	leakyBody bool
	noTimeout bool
}

// NewClient returns a feed client for base (e.g. http://127.0.0.1:7000). With
// leakyBody set it uses the planted leak of mode "body", with noTimeout the planted hang
// of mode "hang".
func NewClient(base string, leakyBody, noTimeout bool) *Client {
	return &Client{
		base:      base,
		http:      &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		leakyBody: leakyBody,
		noTimeout: noTimeout,
	}
}

// Latest returns the newest quote for currency.
func (c *Client) Latest(ctx context.Context, currency string) (Quote, error) {
	if c.leakyBody {
		return c.fetchUpstreamLeakyBody(currency)
	}
	if c.noTimeout {
		return c.fetchUpstreamNoTimeout(currency)
	}
	return c.fetchUpstream(ctx, currency)
}

func (c *Client) quotesURL(currency string) string {
	return c.base + "/v1/quotes?currency=" + url.QueryEscape(currency)
}

// fetchUpstreamLeakyBody is the planted response-body leak (mode "body").
//
// It decodes the first quote of the stream and returns without resp.Body.Close().
// The request has no context and the client no timeout, so the connection's
// persistConn readLoop and writeLoop goroutines wait forever for a body read that
// never comes; when the feed closes its idle end, the socket sits in CLOSE_WAIT.
func (c *Client) fetchUpstreamLeakyBody(currency string) (Quote, error) {
	resp, err := c.http.Get(c.quotesURL(currency))
	if err != nil {
		return Quote{}, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return Quote{}, errStatus(resp.StatusCode)
	}
	var q Quote
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		return Quote{}, err
	}
	return q, nil // BUG: resp.Body is never closed
}

// fetchUpstream is the correct variant: request context and a closed body.
func (c *Client) fetchUpstream(ctx context.Context, currency string) (Quote, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.quotesURL(currency), nil)
	if err != nil {
		return Quote{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Quote{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Quote{}, errStatus(resp.StatusCode)
	}
	var q Quote
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		return Quote{}, err
	}
	// Drain the rest so the connection goes back to the idle pool for reuse.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return q, nil
}
