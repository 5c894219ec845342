package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imedge/imedge/receiver"
)

// Dedupe defaults.
const (
	// DefaultInFlightTTL bounds how long a claim by an instance that died
	// before settling blocks the key: after it, a retry is treated as new.
	DefaultInFlightTTL = 30 * time.Second
	// DefaultWaitMax bounds how long Claim waits for another instance's
	// in-flight copy, inside IM's 2 s answer budget.
	DefaultWaitMax = 1500 * time.Millisecond
	// DefaultPollInterval is the period of that wait's polls.
	DefaultPollInterval = 25 * time.Millisecond
	// KeyPrefix prefixes every dedupe key in Redis. Event ids already
	// include the SdkAppid, so apps sharing one Redis do not collide.
	KeyPrefix = "imedge:dedupe:"
	// acceptedValue marks a key accepted for the window.
	acceptedValue = "accepted"
)

// claimScript takes the key if absent (SET NX PX) and otherwise returns
// its value, in one atomic step.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
local v = redis.call('GET', KEYS[1])
if v then return v end
return ''`)

// acceptScript marks a key accepted for the window, only if this claim
// still holds it.
var acceptScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], 'accepted', 'PX', ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes a key only if this claim still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Loader is implemented by a local Seen that can be told about a key
// accepted elsewhere (dedupe.Set does). A Dedupe loads every key it marks
// accepted on Redis into such a local Seen, so that the instance still
// knows its own recent keys if it has to fall back.
type Loader interface {
	Load(key string, acceptedAt time.Time)
}

// DedupeOptions configures a [Dedupe]. Window is required; zero durations
// take the defaults above.
type DedupeOptions struct {
	// Window is how long an accepted key counts as a duplicate (the TTL of
	// the "accepted" key).
	Window time.Duration
	// InFlightTTL is the TTL of a claim not yet settled.
	InFlightTTL time.Duration
	// WaitMax bounds the wait for another instance's in-flight copy (the
	// request's own deadline applies too).
	WaitMax time.Duration
	// PollInterval is the period of that wait's polls.
	PollInterval time.Duration
	// Local answers while Redis is unavailable under [FailOpen]; nil
	// means such callbacks are accepted without de-duplication.
	Local receiver.Seen
}

// Dedupe is a receiver.Seen on Redis. An in-process table of keys in
// flight comes first, so identical requests on one instance wait for each
// other instead of all going to Redis. Created with [Client.NewDedupe];
// safe for concurrent use; it holds no goroutines of its own.
type Dedupe struct {
	c *Client
	o DedupeOptions

	mu   sync.Mutex
	held map[string]*hold

	waiting atomic.Int64 // Claims waiting for a copy in flight, here or on another instance
}

// hold is one key in flight on this instance. done is closed by Settle
// (or by Claim when it ends without holding the key) after dup is set.
type hold struct {
	done  chan struct{}
	dup   bool   // waiters answer "duplicate" (false, nil)
	token string // our value on Redis; empty when held in Local
	local bool   // claimed in Local (fallback) rather than on Redis
}

var _ receiver.Seen = (*Dedupe)(nil)

// NewDedupe returns a Dedupe on c. It fails, wrapping [ErrBadOptions], when
// Window is not positive or a duration is negative.
func (c *Client) NewDedupe(o DedupeOptions) (*Dedupe, error) {
	if o.Window <= 0 || o.InFlightTTL < 0 || o.WaitMax < 0 || o.PollInterval < 0 {
		return nil, fmt.Errorf("checking dedupe options: %w: window must be positive, durations not negative", ErrBadOptions)
	}
	if o.InFlightTTL == 0 {
		o.InFlightTTL = DefaultInFlightTTL
	}
	if o.WaitMax == 0 {
		o.WaitMax = DefaultWaitMax
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	return &Dedupe{c: c, o: o, held: make(map[string]*hold)}, nil
}

// Claim implements receiver.Seen: true when key is new and now held by the
// caller (who must call Settle), false when it was accepted within the
// window, here or on another instance. If another request holds it, Claim
// waits for its outcome (a request on this instance without limit but
// ctx; one on another instance at most WaitMax, polling Redis). While Redis
// is unavailable the [Policy] applies: the Local Seen answers, or the
// error wraps receiver.ErrStateUnavailable.
func (d *Dedupe) Claim(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("claiming key: %w", err)
	}
	d.mu.Lock()
	if h, ok := d.held[key]; ok {
		d.mu.Unlock()
		d.waiting.Add(1)
		defer d.waiting.Add(-1)
		select {
		case <-h.done:
			if h.dup {
				return false, nil
			}
			return false, fmt.Errorf("waiting for in-flight copy: %w", ErrInFlightFailed)
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for in-flight copy: %w", ctx.Err())
		}
	}
	h := &hold{done: make(chan struct{})}
	d.held[key] = h
	d.mu.Unlock()

	fresh, err := d.claim(ctx, key, h)
	if err != nil || !fresh {
		d.mu.Lock()
		delete(d.held, key)
		d.mu.Unlock()
		h.dup = err == nil
		close(h.done)
	}
	return fresh, err
}

// claim takes key on Redis, or in Local when Redis is down and the policy
// is fail-open, recording where in h.
func (d *Dedupe) claim(ctx context.Context, key string, h *hold) (bool, error) {
	if !d.c.up.Load() {
		return d.fallback(ctx, key, h, nil)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := "inflight:" + d.c.instance + ":" + hex.EncodeToString(b[:])
	rk := KeyPrefix + key

	octx, cancel := context.WithTimeout(ctx, d.c.timeout)
	v, err := claimScript.Run(octx, d.c.rdb, []string{rk}, token, d.o.InFlightTTL.Milliseconds()).Text()
	cancel()
	if err = d.c.failed(ctx, "claim", err); err != nil {
		if isUnavailable(err) {
			return d.fallback(ctx, key, h, err)
		}
		return false, fmt.Errorf("claiming key: %w", err)
	}
	switch v {
	case "":
		h.token = token
		return true, nil
	case acceptedValue:
		return false, nil
	}
	return d.waitRemote(ctx, key, h, rk)
}

// Waiting returns how many Claims are waiting for an identical callback in
// flight, on this instance or on another. Safe for concurrent use.
func (d *Dedupe) Waiting() int { return int(d.waiting.Load()) }

// waitRemote polls a key another instance holds until it is accepted
// (duplicate), released (error, the sender retries) or the wait ends.
func (d *Dedupe) waitRemote(ctx context.Context, key string, h *hold, rk string) (bool, error) {
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, d.o.WaitMax)
	defer cancel()
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return false, fmt.Errorf("waiting for in-flight copy: %w", err)
			}
			return false, fmt.Errorf("waiting for in-flight copy: %w", ErrInFlightTimeout)
		case <-t.C:
		}
		octx, ocancel := context.WithTimeout(wctx, d.c.timeout)
		v, err := d.c.rdb.Get(octx, rk).Result()
		ocancel()
		if errors.Is(err, redis.Nil) {
			return false, fmt.Errorf("waiting for in-flight copy: %w", ErrInFlightFailed)
		}
		if err = d.c.failed(wctx, "poll", err); err != nil {
			if isUnavailable(err) {
				return d.fallback(ctx, key, h, err)
			}
			if ctx.Err() == nil {
				return false, fmt.Errorf("waiting for in-flight copy: %w", ErrInFlightTimeout)
			}
			return false, fmt.Errorf("waiting for in-flight copy: %w", err)
		}
		if v == acceptedValue {
			return false, nil
		}
	}
}

// fallback applies the policy to a Claim while Redis is unavailable.
func (d *Dedupe) fallback(ctx context.Context, key string, h *hold, cause error) (bool, error) {
	if d.c.policy == FailClosed {
		d.c.refused.Add(1)
		if cause == nil {
			cause = errors.New("redis marked down")
		}
		return false, fmt.Errorf("claiming key: %w: %w", receiver.ErrStateUnavailable, cause)
	}
	d.c.fallbacks.Add(1)
	h.local = true
	if d.o.Local == nil {
		return true, nil
	}
	return d.o.Local.Claim(ctx, key)
}

// Settle implements receiver.Seen: accepted marks key accepted for the
// window on Redis (only if this claim still holds it) and in Local; not
// accepted deletes it (again only if still ours), so a retry is new.
// Waiters on this instance get the outcome. A Redis error here is logged
// and marks Redis down; the in-flight marker then expires after
// InFlightTTL.
func (d *Dedupe) Settle(key string, accepted bool) {
	d.mu.Lock()
	h, ok := d.held[key]
	if ok {
		delete(d.held, key)
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	defer func() {
		h.dup = accepted
		close(h.done)
	}()
	if h.local {
		if d.o.Local != nil {
			d.o.Local.Settle(key, accepted)
		}
		return
	}
	if accepted {
		if l, ok := d.o.Local.(Loader); ok {
			l.Load(key, time.Now())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.c.timeout)
	defer cancel()
	rk := KeyPrefix + key
	var n int64
	var err error
	if accepted {
		n, err = acceptScript.Run(ctx, d.c.rdb, []string{rk}, h.token, d.o.Window.Milliseconds()).Int64()
	} else {
		n, err = releaseScript.Run(ctx, d.c.rdb, []string{rk}, h.token).Int64()
	}
	if err = d.c.failed(context.Background(), "settle", err); err != nil {
		d.c.log.Warn("settling a dedupe key on redis", "accepted", accepted, "err", err)
		return
	}
	if n == 0 {
		d.c.log.Warn("dedupe key no longer held on redis when settled (in-flight ttl passed?)", "accepted", accepted)
	}
}
