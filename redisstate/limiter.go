package redisstate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imedge/imedge/receiver"
)

// RateKeyPrefix prefixes every rate-limit key in Redis.
const RateKeyPrefix = "imedge:rate:"

// gcraScript is the generic cell rate algorithm: one key per client holds
// its theoretical arrival time (TAT, microseconds on Redis's clock, so all
// instances share one clock). ARGV[1] is the emission interval T = 1/rate
// and ARGV[2] the burst tolerance T·burst, both in microseconds. A request
// at now passes if TAT+T−tolerance ≤ now, and then moves TAT to
// max(TAT, now)+T; otherwise the reply carries how long until it would
// pass. The key expires when its bucket is full again.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local newtat = tat + interval
local allowAt = newtat - tolerance
if allowAt > now then return {0, allowAt - now} end
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.ceil((newtat - now) / 1000) + 1)
return {1, 0}`)

// LimiterOptions configures a [Limiter]. Rate and Burst must be positive
// (the receiver's --rate and --burst).
type LimiterOptions struct {
	// Rate is the sustained callbacks per second per key; +Inf disables
	// limiting.
	Rate float64
	// Burst is the bucket size per key.
	Burst int
	// IPv6Prefix is the prefix IPv6 ClientIPs are keyed by. Zero means
	// receiver.DefaultLimiterIPv6Prefix.
	IPv6Prefix int
	// Exempt lists networks never limited, matched as the in-process
	// limiter matches them (see receiver.ExemptList).
	Exempt []netip.Prefix
	// Local answers while Redis is unavailable under [FailOpen]; nil means
	// such callbacks are not limited.
	Local receiver.Limiter
}

// Limiter is a per-ClientIP rate limiter whose buckets live in Redis,
// keyed as receiver.ClientLimiter keys them (receiver.LimiterKey), so one
// client's budget is shared by every instance. It implements
// receiver.LimiterWithErr. Created with [Client.NewLimiter]; safe for
// concurrent use; no goroutines.
type Limiter struct {
	c   *Client
	o   LimiterOptions
	lim atomic.Pointer[gcraLimits] // replaced whole by SetLimits
}

// gcraLimits are the settings SetLimits may change while the limiter runs.
type gcraLimits struct {
	exempt    receiver.ExemptList // the same matching as the in-process limiter
	interval  int64               // µs per token; 0: no limit
	tolerance int64               // µs: interval × burst
}

// newGCRALimits checks and converts a rate, burst and exempt list.
func newGCRALimits(r float64, burst int, exempt []netip.Prefix) (*gcraLimits, error) {
	if !(r > 0) || burst <= 0 {
		return nil, fmt.Errorf("%w: rate and burst must be positive", ErrBadOptions)
	}
	ex, err := receiver.NewExemptList(exempt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	g := &gcraLimits{exempt: ex}
	if !math.IsInf(r, 1) {
		g.interval = max(1, int64(math.Round(1e6/r)))
		g.tolerance = g.interval * int64(burst)
	}
	return g, nil
}

var _ receiver.LimiterWithErr = (*Limiter)(nil)

// NewLimiter returns a Limiter on c. It fails, wrapping [ErrBadOptions],
// when Rate or Burst is not positive or IPv6Prefix is out of range.
func (c *Client) NewLimiter(o LimiterOptions) (*Limiter, error) {
	if !(o.Rate > 0) || o.Burst <= 0 || o.IPv6Prefix < 0 || o.IPv6Prefix > 128 {
		return nil, fmt.Errorf("checking limiter options: %w: rate and burst must be positive, ipv6 prefix 0..128", ErrBadOptions)
	}
	if o.IPv6Prefix == 0 {
		o.IPv6Prefix = receiver.DefaultLimiterIPv6Prefix
	}
	g, err := newGCRALimits(o.Rate, o.Burst, o.Exempt)
	if err != nil {
		return nil, fmt.Errorf("checking limiter options: %w", err)
	}
	l := &Limiter{c: c, o: o}
	l.lim.Store(g)
	return l, nil
}

// SetLimits replaces the rate, burst and exempt networks while the limiter
// runs (SIGHUP); the shared buckets keep their state. An error (wrapping
// ErrBadOptions) changes nothing. It does not change the local fallback:
// set that one too.
func (l *Limiter) SetLimits(r float64, burst int, exempt []netip.Prefix) error {
	g, err := newGCRALimits(r, burst, exempt)
	if err != nil {
		return fmt.Errorf("setting limits: %w", err)
	}
	l.lim.Store(g)
	return nil
}

// Allow implements receiver.Limiter for callers that cannot take an error:
// with Redis unavailable under [FailClosed] it refuses, asking for a
// retry in a second.
func (l *Limiter) Allow(clientIP netip.Addr) (bool, time.Duration) {
	ok, wait, err := l.AllowContext(context.Background(), clientIP)
	if err != nil {
		return false, time.Second
	}
	return ok, wait
}

// AllowContext reports whether a callback for clientIP may pass now,
// taking one token from its shared bucket if so, or how long until one is
// available. While Redis is unavailable the policy applies: Local answers,
// or the error wraps receiver.ErrStateUnavailable.
func (l *Limiter) AllowContext(ctx context.Context, clientIP netip.Addr) (bool, time.Duration, error) {
	g := l.lim.Load()
	if g.exempt.Contains(clientIP) {
		return true, 0, nil
	}
	if g.interval == 0 {
		return true, 0, nil
	}
	if !l.c.up.Load() {
		return l.fallback(clientIP, errors.New("redis marked down"))
	}
	octx, cancel := context.WithTimeout(ctx, l.c.timeout)
	res, err := gcraScript.Run(octx, l.c.rdb, []string{RateKeyPrefix + receiver.LimiterKey(clientIP, l.o.IPv6Prefix)},
		g.interval, g.tolerance).Int64Slice()
	cancel()
	if err = l.c.failed(ctx, "limit", err); err != nil {
		if isUnavailable(err) {
			return l.fallback(clientIP, err)
		}
		return false, 0, fmt.Errorf("asking the shared limiter: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("asking the shared limiter: %w: reply of %d values", ErrBadOptions, len(res))
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}

func (l *Limiter) fallback(clientIP netip.Addr, cause error) (bool, time.Duration, error) {
	if l.c.policy == FailClosed {
		l.c.refused.Add(1)
		return false, 0, fmt.Errorf("asking the shared limiter: %w: %w", receiver.ErrStateUnavailable, cause)
	}
	l.c.fallbacks.Add(1)
	if l.o.Local == nil {
		return true, 0, nil
	}
	ok, wait := l.o.Local.Allow(clientIP)
	return ok, wait, nil
}
