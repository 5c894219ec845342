package decide

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/receiver"
)

// result is the outcome of one call to a decision service: the checked
// reply to relay, or why there is none (reason set).
type result struct {
	body    []byte
	outcome catalog.Outcome
	reason  audit.Reason
	detail  string
}

// key identifies "the same question": the event id (SdkAppid, command and
// body) with the ClientIP and OptPlatform the service also sees.
type key [sha256.Size]byte

func keyOf(ev *receiver.Event) key {
	var buf [160]byte // an event id, an IPv6 address and a platform fit
	b := append(buf[:0], ev.ID...)
	b = append(b, 0)
	b = append(b, ev.ClientIP...)
	b = append(b, 0)
	b = append(b, ev.OptPlatform...)
	return sha256.Sum256(b)
}

// entryOverhead approximates the bytes an entry costs besides its body:
// key, list element, map slot, entry struct.
const entryOverhead = 150

// entry is a cached decision.
type entry struct {
	body    []byte
	outcome catalog.Outcome
	expires time.Time
}

// flight is a call in progress that identical callbacks wait for.
type flight struct {
	done chan struct{}
	res  result // set before done is closed
}

// source says where an answer came from.
type source uint8

const (
	fresh  source = iota // this callback's own call
	cached               // a decision remembered from an earlier call
	joined               // the call of an identical callback in flight
)

// cache remembers decisions for ttl and lets identical callbacks in flight
// share one call. Memory is bounded by entries and bytes; calls in flight
// are bounded by the requests in flight. Safe for concurrent use.
type cache struct {
	ttl      time.Duration // <= 0: nothing is remembered (calls are still shared)
	maxBytes int64

	mu        sync.Mutex
	lru       *simplelru.LRU[key, *entry]
	bytes     int64
	flights   map[key]*flight
	hits      uint64
	joins     uint64
	evictions uint64
}

func newCache(entries int, maxBytes int64, ttl time.Duration) *cache {
	c := &cache{ttl: ttl, maxBytes: maxBytes, flights: make(map[key]*flight)}
	// NewLRU fails only for a size below 1, which Options rules out.
	c.lru, _ = simplelru.NewLRU(entries, func(_ key, e *entry) {
		c.bytes -= int64(len(e.body)) + entryOverhead
	})
	return c
}

// do returns the decision for k: a remembered one, the one of an identical
// call in flight, or the result of call, which it runs. A result with a
// reason (a fallback) is shared with the callbacks waiting for it but
// never remembered. ctx bounds only the waiting for another's call.
func (c *cache) do(ctx context.Context, k key, now func() time.Time, call func() result) (result, source) {
	c.mu.Lock()
	if e, ok := c.lru.Get(k); ok {
		if now().Before(e.expires) {
			c.hits++
			c.mu.Unlock()
			return result{body: e.body, outcome: e.outcome}, cached
		}
		c.lru.Remove(k)
	}
	if f, ok := c.flights[k]; ok {
		c.joins++
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.res, joined
		case <-ctx.Done():
			return result{reason: audit.DecideTimeout, detail: "request ended while an identical callback was being decided"}, joined
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	c.mu.Unlock()

	f.res = call()

	c.mu.Lock()
	delete(c.flights, k)
	if f.res.reason == "" && c.ttl > 0 {
		size := int64(len(f.res.body)) + entryOverhead
		if size <= c.maxBytes {
			for c.bytes+size > c.maxBytes {
				if _, _, ok := c.lru.RemoveOldest(); !ok {
					break
				}
				c.evictions++
			}
			c.bytes += size // before Add: an eviction it makes subtracts
			if c.lru.Add(k, &entry{body: f.res.body, outcome: f.res.outcome, expires: now().Add(c.ttl)}) {
				c.evictions++
			}
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.res, fresh
}

// CacheStats is a snapshot of the decision cache.
type CacheStats struct {
	Entries   int    // decisions remembered
	Bytes     int64  // their approximate size
	Hits      uint64 // callbacks answered with a remembered decision
	Joined    uint64 // callbacks that shared an identical callback's call in flight
	Evictions uint64 // decisions pushed out by the bounds before they expired
}

func (c *cache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: c.lru.Len(), Bytes: c.bytes, Hits: c.hits, Joined: c.joins, Evictions: c.evictions}
}
