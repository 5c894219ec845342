package receiver

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/imedge/imedge/internal/lrutable"
)

// Limiter defaults. A ClientIP is the address of one end user's device. A
// person deleting friends by hand causes well under one callback a second,
// and even a scripted bulk delete from one device is split into calls of at
// most 100 friends (spec §2), so 20 callbacks a second with bursts of 40
// never limits a real user while still capping what one address (or one
// IPv6 /64) can push through. Deployments whose deletions all come from one
// address (the app's own REST API callers) list it in
// [LimiterOptions.Exempt].
const (
	// DefaultLimiterRate is the sustained callbacks per second per key.
	DefaultLimiterRate rate.Limit = 20
	// DefaultLimiterBurst is the bucket size per key.
	DefaultLimiterBurst = 40
	// DefaultLimiterIPv6Prefix is the prefix length IPv6 ClientIPs are keyed by.
	DefaultLimiterIPv6Prefix = 64
	// DefaultLimiterMaxKeys is the number of keys tracked. One key costs
	// about 50 bytes of heap, none of it pointers for the garbage collector
	// to scan (BenchmarkLimiterMemory_1MKeys), so a full default table is
	// about 5 MiB.
	DefaultLimiterMaxKeys = 100_000

	// maxLimiterKeys bounds MaxKeys: table slots are int32.
	maxLimiterKeys = lrutable.MaxLen
)

// ErrBadLimiterOptions is returned (wrapped) by [NewClientLimiter] when a
// field of [LimiterOptions] is out of range.
var ErrBadLimiterOptions = errors.New("receiver: invalid limiter options")

// LimiterOptions configures a [ClientLimiter]. The zero value is valid and
// gives the defaults.
type LimiterOptions struct {
	// Rate is the sustained number of callbacks per second allowed per key.
	// Zero means [DefaultLimiterRate]; +Inf disables limiting; negative is an
	// error. (A plain float64, so callers need not import x/time/rate.)
	Rate float64
	// Burst is the bucket size per key. Zero means [DefaultLimiterBurst]; negative
	// is an error.
	Burst int
	// IPv6Prefix is the prefix length by which IPv6 addresses are keyed
	// (IPv4 addresses are keyed by the address). Zero means
	// [DefaultLimiterIPv6Prefix]; it must otherwise be 1 to 128.
	IPv6Prefix int
	// MaxKeys bounds the number of keys tracked; the least recently used is
	// evicted. Zero means [DefaultLimiterMaxKeys]; negative is an error.
	MaxKeys int
	// Exempt lists networks whose ClientIPs are never limited. IPv4-mapped
	// IPv6 prefixes are treated as IPv4.
	Exempt []netip.Prefix
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// LimiterStats is a snapshot of a [ClientLimiter]'s counters.
type LimiterStats struct {
	// Keys is the number of keys currently tracked (at most MaxKeys).
	Keys int
	// Evictions counts keys pushed out of the table. Steady growth means
	// MaxKeys is too small for the number of distinct clients (or that the
	// table is being flooded).
	Evictions uint64
	// Limited counts refused calls to Allow.
	Limited uint64
	// Exempt counts calls to Allow that bypassed the limit.
	Exempt uint64
}

// ClientLimiter is a token-bucket rate limiter per ClientIP (the buckets of
// golang.org/x/time/rate, computed in place), with its buckets kept in a
// bounded LRU so memory stays bounded whatever the number of distinct
// clients. It implements [Limiter].
//
// # Evicted keys do not come back with a full bucket
//
// A plain bounded table of limiters has a hole: flood it with distinct keys
// until an over-limit key is evicted, and that key returns with a fresh, full
// bucket. ClientLimiter closes it with an eviction horizon H: the greatest
// last-use time of any evicted key. Because the table evicts in order of
// last use, every key not in the table was either never seen or last used at
// or before H. A key entering the table therefore starts with the bucket it
// would have if it had been empty at H: min(Burst, Rate·(now−H)) tokens
// (a full bucket while nothing has been evicted). Had the key stayed in the
// table, its bucket would hold at least that much (it was last used at or
// before H, with at least zero tokens), so an eviction never gives a key
// more than it would have had: flooding the table buys nothing.
//
// The cost falls on keys that are new while the table churns faster than a
// bucket refills: if the table turns over in less than Burst/Rate (2 s with
// the defaults, i.e. more than 50,000 new keys a second at the default
// MaxKeys), new clients start with only Rate·(turnover time) tokens and are
// held to the sustained rate. The flood's own keys are throttled the same
// way. Under normal churn, a new key gets a full bucket.
//
// A ClientLimiter is created with [NewClientLimiter]; the zero value is not
// usable. It is safe for concurrent use, holds no goroutines and needs no
// Close.
type ClientLimiter struct {
	lim     atomic.Pointer[limits] // replaced whole by SetLimits
	v6bits  int
	now     func() time.Time
	maxKeys int

	exempted atomic.Uint64

	mu        sync.Mutex
	table     *lrutable.Table[bucket] // keyed by clientKey, seeded hash
	horizon   int64                   // greatest lastUsed of an evicted key; zero if none
	evictions uint64
	limited   uint64
}

// limits are the settings SetLimits may change while the limiter runs.
type limits struct {
	rate   rate.Limit
	burst  int
	exempt ExemptList
}

// Compile-time check that ClientLimiter implements Limiter.
var _ Limiter = (*ClientLimiter)(nil)

// clientKey is an IPv4 address in its IPv4-mapped IPv6 form, or an IPv6
// address masked to the configured prefix. The two never collide: a masked
// IPv6 key cannot fall inside ::ffff:0:0/96 because mapped addresses are
// unmapped before keying.
type clientKey [16]byte

// bucket is one key's token bucket: tokens it held at lastUsed, the time
// of the last Allow for the key (Unix nanoseconds). Like rate.Limiter, it
// gains Rate tokens a second up to Burst.
type bucket struct {
	tokens   float64
	lastUsed int64
}

// NewClientLimiter returns a ClientLimiter configured by o. It fails,
// wrapping [ErrBadLimiterOptions], when a field is out of range.
func NewClientLimiter(o LimiterOptions) (*ClientLimiter, error) {
	var errs []error
	if o.Rate < 0 || math.IsNaN(o.Rate) {
		errs = append(errs, fmt.Errorf("rate %v must not be negative: %w", o.Rate, ErrBadLimiterOptions))
	}
	if o.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d must not be negative: %w", o.Burst, ErrBadLimiterOptions))
	}
	if o.IPv6Prefix < 0 || o.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("ipv6 prefix /%d must be 1 to 128: %w", o.IPv6Prefix, ErrBadLimiterOptions))
	}
	if o.MaxKeys < 0 || o.MaxKeys > maxLimiterKeys {
		errs = append(errs, fmt.Errorf("max keys %d must be 0 to %d: %w", o.MaxKeys, maxLimiterKeys, ErrBadLimiterOptions))
	}
	exempt, err := NewExemptList(o.Exempt)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("checking limiter options: %w", errors.Join(errs...))
	}
	if o.Rate == 0 {
		o.Rate = float64(DefaultLimiterRate)
	}
	if o.Burst == 0 {
		o.Burst = DefaultLimiterBurst
	}
	if o.IPv6Prefix == 0 {
		o.IPv6Prefix = DefaultLimiterIPv6Prefix
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultLimiterMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &ClientLimiter{
		v6bits:  o.IPv6Prefix,
		now:     o.Now,
		maxKeys: o.MaxKeys,
		// Keys are chosen by clients, so the table's hash is seeded (the
		// default). It grows with use up to MaxKeys, never beyond.
		table: lrutable.New[bucket](lrutable.Options{Max: o.MaxKeys}),
	}
	l.lim.Store(&limits{rate: rate.Limit(o.Rate), burst: o.Burst, exempt: exempt})
	return l, nil
}

// onEvict records the eviction of a key whose bucket was b: l.mu must be
// held.
func (l *ClientLimiter) onEvict(b bucket) {
	l.evictions++
	l.horizon = max(l.horizon, b.lastUsed)
}

// keyOf returns the table key of a client address: the address for IPv4
// (including IPv4-mapped IPv6), the address masked to the configured prefix
// for IPv6. The zone is ignored. The invalid zero Addr keys like "::".
func (l *ClientLimiter) keyOf(a netip.Addr) clientKey {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(l.v6bits); err == nil {
			a = p.Addr()
		}
	}
	return a.As16()
}

// LimiterKey returns the key a [ClientLimiter] with the given IPv6 prefix
// length buckets addr under, as text: the IPv4 address (IPv4-mapped IPv6
// addresses are unmapped), or the IPv6 address masked to v6prefix bits, in
// prefix notation. The zone is ignored. A shared limiter (redisstate) uses
// it so that both limiters count the same clients together.
func LimiterKey(addr netip.Addr, v6prefix int) string {
	a := addr.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(v6prefix); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// Allow reports whether a callback for clientIP may pass now, taking one
// token from its key's bucket if so. When it may not, it returns how long
// until one token is available (for Retry-After). It never blocks beyond a
// short critical section.
func (l *ClientLimiter) Allow(clientIP netip.Addr) (bool, time.Duration) {
	lim := l.lim.Load()
	if lim.exempt.Contains(clientIP) {
		l.exempted.Add(1)
		return true, 0
	}
	if lim.rate == rate.Inf {
		return true, 0
	}
	k := l.keyOf(clientIP)

	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixNano()
	b, ok := l.table.Get(k)
	if !ok {
		if l.table.Len() >= l.maxKeys {
			_, old, _ := l.table.RemoveOldest()
			l.onEvict(old) // may advance the horizon: fill b after
		}
		b = l.table.Add(k)
		l.fill(b, lim)
	}
	l.advance(b, now, lim)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	l.limited++
	return false, l.untilOneToken(b, lim)
}

// SetLimits replaces the rate, burst and exempt networks (SIGHUP applies a
// changed --rate, --burst or --rate-limit-exempt this way). Buckets keep
// their tokens, capped at the new burst as they refill. Rate and burst must
// be positive; an error (wrapping ErrBadLimiterOptions) changes nothing.
// Safe for concurrent use with Allow.
func (l *ClientLimiter) SetLimits(r float64, burst int, exempt []netip.Prefix) error {
	if !(r > 0) || burst <= 0 {
		return fmt.Errorf("setting limits: rate %v and burst %d must be positive: %w", r, burst, ErrBadLimiterOptions)
	}
	ex, err := NewExemptList(exempt)
	if err != nil {
		return fmt.Errorf("setting limits: %w", err)
	}
	l.lim.Store(&limits{rate: rate.Limit(r), burst: burst, exempt: ex})
	return nil
}

// advance brings b's tokens to now: Rate tokens a second since lastUsed, at
// most Burst. A clock that went backwards adds nothing.
func (l *ClientLimiter) advance(b *bucket, now int64, lim *limits) {
	if elapsed := now - b.lastUsed; elapsed > 0 {
		b.tokens = min(float64(lim.burst), b.tokens+float64(lim.rate)*float64(elapsed)/float64(time.Second))
	}
	b.lastUsed = now
}

// fill sets up the bucket of a key that has just entered the table (after
// any eviction its insertion caused): empty at the eviction horizon, so
// holding min(Burst, Rate·(now−horizon)) tokens now, or full if nothing was
// evicted yet (the horizon is then the zero time, centuries ago). See
// ClientLimiter for why this is sound. l.mu must be held.
func (l *ClientLimiter) fill(b *bucket, lim *limits) {
	if l.horizon == 0 {
		b.tokens, b.lastUsed = float64(lim.burst), 0
		return
	}
	b.tokens, b.lastUsed = 0, l.horizon
}

// untilOneToken returns how long until b holds one token, rounded up to a
// whole nanosecond and capped at an hour (far beyond any sane Retry-After).
func (l *ClientLimiter) untilOneToken(b *bucket, lim *limits) time.Duration {
	const maxWait = time.Hour
	missing := 1 - b.tokens
	if missing <= 0 {
		return 0
	}
	secs := missing / float64(lim.rate)
	if secs >= maxWait.Seconds() {
		return maxWait
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

// Stats returns a snapshot of the limiter's counters.
func (l *ClientLimiter) Stats() LimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimiterStats{
		Keys:      l.table.Len(),
		Evictions: l.evictions,
		Limited:   l.limited,
		Exempt:    l.exempted.Load(),
	}
}
