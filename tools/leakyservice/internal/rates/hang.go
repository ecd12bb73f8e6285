package rates

import (
	"encoding/json"
	"net/http"
)

// fetchUpstreamNoTimeout is the planted hang of mode "hang": the request carries no
// context and the client sets no Timeout, so when the feed stalls (in that mode it never
// answers for JPY) the call never returns. Each stalled request keeps its goroutine parked
// in net/http.(*persistConn).roundTrip and its connection to the feed, long after the
// client that asked has given up.
func (c *Client) fetchUpstreamNoTimeout(currency string) (Quote, error) {
	resp, err := c.http.Get(c.quotesURL(currency)) // BUG: no deadline of any kind
	if err != nil {
		return Quote{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Quote{}, errStatus(resp.StatusCode)
	}
	var q Quote
	err = json.NewDecoder(resp.Body).Decode(&q)
	return q, err
}
