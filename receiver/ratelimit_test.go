package receiver

import (
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// limiterClock is the shared manual clock of the tests.
type limiterClock = testkit.Clock

func newLimiterClock() *limiterClock {
	return testkit.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

func newTestLimiter(t testing.TB, o LimiterOptions) *ClientLimiter {
	t.Helper()
	l, err := NewClientLimiter(o)
	require.NoError(t, err)
	return l
}

// limiterAllowed calls Allow n times and returns how many were allowed.
func limiterAllowed(l *ClientLimiter, a netip.Addr, n int) int {
	ok := 0
	for range n {
		if pass, _ := l.Allow(a); pass {
			ok++
		}
	}
	return ok
}

// limiterIPv4 returns the i-th IPv4 address counting from 1.0.0.0.
func limiterIPv4(i uint32) netip.Addr {
	i += 1 << 24
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

var (
	limiterAddrA = netip.MustParseAddr("192.0.2.1")
	limiterAddrB = netip.MustParseAddr("192.0.2.2")
)

func TestNewClientLimiter_RejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    LimiterOptions
	}{
		{"negative rate", LimiterOptions{Rate: -1}},
		{"negative burst", LimiterOptions{Burst: -1}},
		{"negative prefix", LimiterOptions{IPv6Prefix: -1}},
		{"prefix over 128", LimiterOptions{IPv6Prefix: 129}},
		{"negative max keys", LimiterOptions{MaxKeys: -1}},
		{"invalid exempt prefix", LimiterOptions{Exempt: []netip.Prefix{{}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewClientLimiter(tc.o)
			assert.ErrorIs(t, err, ErrBadLimiterOptions)
			assert.Nil(t, l)
		})
	}
}

func TestClientLimiter_DefaultsApplied(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Now: clk.Now})

	assert.Equal(t, DefaultLimiterBurst, limiterAllowed(l, limiterAddrA, 1000), "default burst")
	ok, retry := l.Allow(limiterAddrA)
	assert.False(t, ok)
	assert.Equal(t, time.Second/time.Duration(DefaultLimiterRate), retry, "default rate")

	clk.Advance(time.Second)
	assert.Equal(t, int(DefaultLimiterRate), limiterAllowed(l, limiterAddrA, 1000), "one second refills Rate tokens")

	// Default IPv6 keying is /64.
	assert.Equal(t, DefaultLimiterBurst, limiterAllowed(l, netip.MustParseAddr("2001:db8:0:1::1"), 1000))
	assert.Equal(t, 0, limiterAllowed(l, netip.MustParseAddr("2001:db8:0:1:ffff:ffff:ffff:ffff"), 1))
}

func TestClientLimiter_BurstThenRefusal(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Rate: 1, Burst: 5, Now: clk.Now})
	for i := range 5 {
		ok, retry := l.Allow(limiterAddrA)
		require.True(t, ok, "call %d is within the burst", i)
		assert.Zero(t, retry)
	}
	ok, retry := l.Allow(limiterAddrA)
	assert.False(t, ok, "the call after the burst is refused")
	assert.Equal(t, time.Second, retry)
	assert.Equal(t, uint64(1), l.Stats().Limited)
}

func TestClientLimiter_RefillOverTime(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Rate: 2, Burst: 4, Now: clk.Now})
	require.Equal(t, 4, limiterAllowed(l, limiterAddrA, 10))

	clk.Advance(250 * time.Millisecond) // half a token
	assert.Equal(t, 0, limiterAllowed(l, limiterAddrA, 1))
	clk.Advance(250 * time.Millisecond) // one token
	assert.Equal(t, 1, limiterAllowed(l, limiterAddrA, 10))
	clk.Advance(time.Second) // two tokens
	assert.Equal(t, 2, limiterAllowed(l, limiterAddrA, 10))
	clk.Advance(time.Hour) // capped at the burst
	assert.Equal(t, 4, limiterAllowed(l, limiterAddrA, 10))
}

func TestClientLimiter_RetryAfterIsTimeToOneToken(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Rate: 4, Burst: 2, Now: clk.Now})
	require.Equal(t, 2, limiterAllowed(l, limiterAddrA, 2))

	ok, retry := l.Allow(limiterAddrA)
	require.False(t, ok)
	assert.Equal(t, 250*time.Millisecond, retry)

	clk.Advance(100 * time.Millisecond)
	ok, retry = l.Allow(limiterAddrA)
	require.False(t, ok)
	assert.Equal(t, 150*time.Millisecond, retry, "refused calls take no token")

	clk.Advance(150 * time.Millisecond)
	ok, retry = l.Allow(limiterAddrA)
	assert.True(t, ok, "allowed exactly when Retry-After said")
	assert.Zero(t, retry)
}

func TestClientLimiter_PerKeyIsolation(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Rate: 1, Burst: 3, Now: clk.Now})
	require.Equal(t, 3, limiterAllowed(l, limiterAddrA, 10))
	assert.Equal(t, 3, limiterAllowed(l, limiterAddrB, 10), "another ClientIP has its own bucket")
	assert.Equal(t, 0, limiterAllowed(l, limiterAddrA, 1))
	assert.Equal(t, 2, l.Stats().Keys)
}

func TestClientLimiter_IPv6PrefixKeying(t *testing.T) {
	tests := []struct {
		name   string
		prefix int
		a, b   string
		shared bool
	}{
		{"same /64", 0, "2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", true},
		{"different /64", 0, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"same /48", 48, "2001:db8:1:2::1", "2001:db8:1:ff::1", true},
		{"different /48", 48, "2001:db8:1:2::1", "2001:db8:2:2::1", false},
		{"/128 keys each address", 128, "2001:db8::1", "2001:db8::2", false},
		{"zone ignored", 0, "fe80::1%eth0", "fe80::2%eth1", true},
		{"IPv4 keyed by address", 0, "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped keyed as IPv4", 0, "::ffff:192.0.2.1", "192.0.2.1", true},
		{"IPv4-mapped distinct addresses", 0, "::ffff:192.0.2.1", "::ffff:192.0.2.2", false},
		{"IPv6 /64 of :: is not IPv4 0.0.0.0", 0, "::1", "0.0.0.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newLimiterClock()
			l := newTestLimiter(t, LimiterOptions{Rate: 1, Burst: 2, IPv6Prefix: tc.prefix, Now: clk.Now})
			require.Equal(t, 2, limiterAllowed(l, netip.MustParseAddr(tc.a), 10))
			got := limiterAllowed(l, netip.MustParseAddr(tc.b), 10)
			if tc.shared {
				assert.Equal(t, 0, got, "%s shares %s's bucket", tc.b, tc.a)
				assert.Equal(t, 1, l.Stats().Keys)
			} else {
				assert.Equal(t, 2, got, "%s has its own bucket", tc.b)
				assert.Equal(t, 2, l.Stats().Keys)
			}
		})
	}
}

func TestClientLimiter_ExemptBypasses(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{
		Rate: 1, Burst: 1, Now: clk.Now,
		Exempt: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("2001:db8:aa::/48"),
			netip.MustParsePrefix("::ffff:198.51.100.0/120"), // mapped: means 198.51.100.0/24
		},
	})
	for _, s := range []string{"10.1.2.3", "::ffff:10.9.9.9", "2001:db8:aa:1::5", "198.51.100.7"} {
		assert.Equal(t, 100, limiterAllowed(l, netip.MustParseAddr(s), 100), "%s is exempt", s)
	}
	assert.Equal(t, 1, limiterAllowed(l, netip.MustParseAddr("11.0.0.1"), 100), "outside the exempt list")
	assert.Equal(t, 1, limiterAllowed(l, netip.MustParseAddr("2001:db8:ab::1"), 100))

	st := l.Stats()
	assert.Equal(t, uint64(400), st.Exempt)
	assert.Equal(t, 2, st.Keys, "exempt clients take no table space")
	assert.Equal(t, uint64(198), st.Limited)
}

func TestClientLimiter_RateInfNeverLimits(t *testing.T) {
	l := newTestLimiter(t, LimiterOptions{Rate: math.Inf(1), Burst: 1})
	assert.Equal(t, 1000, limiterAllowed(l, limiterAddrA, 1000))
	assert.Zero(t, l.Stats().Limited)
}

// TestClientLimiter_LRUBound_1MKeys drives a million distinct ClientIPs
// through a small table: it never grows past MaxKeys and every eviction is
// counted.
func TestClientLimiter_LRUBound_1MKeys(t *testing.T) {
	const maxKeys = 1000
	n := uint32(1_000_000)
	if testing.Short() {
		n = 100_000
	}
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{MaxKeys: maxKeys, Now: clk.Now})
	for i := range n {
		l.Allow(limiterIPv4(i))
		if i%4096 == 0 {
			require.LessOrEqual(t, l.Stats().Keys, maxKeys)
		}
	}
	st := l.Stats()
	assert.Equal(t, maxKeys, st.Keys)
	assert.Equal(t, uint64(n-maxKeys), st.Evictions)
}

// TestClientLimiter_FloodDoesNotRefillOverLimitKey is the "evicted limiter
// comes back with a full bucket" attack: drain one key, flood the table
// with distinct keys until it is evicted, then come back.
func TestClientLimiter_FloodDoesNotRefillOverLimitKey(t *testing.T) {
	const (
		maxKeys = 1000
		burst   = 40
		r       = 20
	)
	const n = 200 * maxKeys // distinct keys in the flood
	victim := netip.MustParseAddr("2001:db8:bad::1")

	t.Run("flood at one instant", func(t *testing.T) {
		clk := newLimiterClock()
		l := newTestLimiter(t, LimiterOptions{Rate: r, Burst: burst, MaxKeys: maxKeys, Now: clk.Now})
		require.Equal(t, burst, limiterAllowed(l, victim, 1000))
		for i := range n {
			l.Allow(limiterIPv4(uint32(i)))
		}
		require.Greater(t, l.Stats().Evictions, uint64(0), "the victim was evicted")

		ok, retry := l.Allow(victim)
		assert.False(t, ok, "no time passed, so no token: eviction must not refill")
		assert.Equal(t, time.Second/r, retry)
	})

	t.Run("flood over one second", func(t *testing.T) {
		clk := newLimiterClock()
		l := newTestLimiter(t, LimiterOptions{Rate: r, Burst: burst, MaxKeys: maxKeys, Now: clk.Now})
		require.Equal(t, burst, limiterAllowed(l, victim, 1000))
		step := time.Second / time.Duration(n)
		for i := range n {
			clk.Advance(step)
			l.Allow(limiterIPv4(uint32(i)))
		}
		// Kept in the table, the victim would now hold r tokens (one second
		// at r/s). It must not get more than that, let alone a full burst.
		got := limiterAllowed(l, victim, 1000)
		assert.LessOrEqual(t, got, r, "evicted key got more than it would have kept")
		assert.Less(t, got, burst)
	})
}

// TestClientLimiter_NewKeysAfterEviction checks the other side of the
// eviction horizon: when the table turns over slower than a bucket refills,
// new clients still get a full burst; when it turns over at once, they get
// only what has refilled.
func TestClientLimiter_NewKeysAfterEviction(t *testing.T) {
	const maxKeys, burst, r = 10, 40, 20 // a bucket refills in 2 s

	t.Run("slow churn", func(t *testing.T) {
		clk := newLimiterClock()
		l := newTestLimiter(t, LimiterOptions{Rate: r, Burst: burst, MaxKeys: maxKeys, Now: clk.Now})
		for i := range maxKeys {
			require.Equal(t, burst, limiterAllowed(l, limiterIPv4(uint32(i)), 1000))
		}
		clk.Advance(2 * time.Second)
		assert.Equal(t, burst, limiterAllowed(l, limiterAddrA, 1000), "full bucket for a new client")
		assert.Equal(t, uint64(1), l.Stats().Evictions)
	})

	t.Run("fast churn", func(t *testing.T) {
		clk := newLimiterClock()
		l := newTestLimiter(t, LimiterOptions{Rate: r, Burst: burst, MaxKeys: maxKeys, Now: clk.Now})
		for i := range maxKeys {
			l.Allow(limiterIPv4(uint32(i)))
		}
		clk.Advance(500 * time.Millisecond)
		assert.Equal(t, r/2, limiterAllowed(l, limiterAddrA, 1000),
			"evicted a key last used 0.5 s ago: a new key gets only what 0.5 s refills")

		for i := 1; i < maxKeys; i++ { // touch the rest of the table
			l.Allow(limiterIPv4(uint32(i)))
		}
		ok, retry := l.Allow(limiterAddrB)
		assert.False(t, ok, "evicted a key used just now: a new key starts empty")
		assert.Equal(t, time.Second/r, retry)
		clk.Advance(500 * time.Millisecond)
		assert.Equal(t, r/2, limiterAllowed(l, limiterAddrB, 1000), "and refills at the rate")
	})
}

func TestClientLimiter_ConcurrentUse(t *testing.T) {
	l := newTestLimiter(t, LimiterOptions{Rate: 1, Burst: 10, MaxKeys: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				l.Allow(limiterIPv4(uint32(g*100 + i%100)))
				if i%100 == 0 {
					_ = l.Stats()
				}
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, l.Stats().Keys, 64)
}

// TestClientLimiter_AllowDoesNotAllocate covers both paths of a full
// table: a hit, and a new key that evicts the least recently used one.
func TestClientLimiter_AllowDoesNotAllocate(t *testing.T) {
	const maxKeys = 64
	l := newTestLimiter(t, LimiterOptions{MaxKeys: maxKeys, Now: newLimiterClock().Now})
	for i := range uint32(maxKeys) {
		l.Allow(limiterIPv4(i))
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { l.Allow(limiterIPv4(0)) }), "hit")
	next := uint32(maxKeys)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		l.Allow(limiterIPv4(next))
		next++
	}), "new key evicting the oldest")
	assert.Equal(t, maxKeys, l.Stats().Keys)
}

// BenchmarkClientLimiter_Allow measures the hit path: the key is in the
// table and the call is allowed.
func BenchmarkClientLimiter_Allow(b *testing.B) {
	const ring = 1024
	addrs := make([]netip.Addr, ring)
	for i := range addrs {
		addrs[i] = limiterIPv4(uint32(i))
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newTestLimiter(b, LimiterOptions{Rate: 1e6, Burst: 10, Now: func() time.Time { return now }})
	for _, a := range addrs {
		l.Allow(a)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if ok, _ := l.Allow(addrs[i%ring]); !ok {
			b.Fatal("refused")
		}
		i++
	}
}

// BenchmarkClientLimiter_AllowParallel measures contention with the real
// clock.
func BenchmarkClientLimiter_AllowParallel(b *testing.B) {
	l := newTestLimiter(b, LimiterOptions{Rate: 1e9, Burst: 1 << 30})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := uint32(0)
		for pb.Next() {
			l.Allow(limiterIPv4(i % 1024))
			i++
		}
	})
}

// BenchmarkLimiterMemory_1MKeys reports the live heap (and, on Linux, the
// growth of the resident set) of a ClientLimiter tracking one million
// ClientIPs. Run with -benchtime=1x.
func BenchmarkLimiterMemory_1MKeys(b *testing.B) {
	const n = 1_000_000
	testkit.ReportMemory(b, n, func() any {
		l := newTestLimiter(b, LimiterOptions{MaxKeys: n})
		for i := range uint32(n) {
			l.Allow(limiterIPv4(i))
		}
		if got := l.Stats().Keys; got != n {
			b.Fatalf("Keys = %d, want %d", got, n)
		}
		return l
	})
}

// SetLimits changes rate, burst and exempt networks of a running limiter;
// a bad value changes nothing.
func TestClientLimiter_SetLimits(t *testing.T) {
	clk := newLimiterClock()
	l := newTestLimiter(t, LimiterOptions{Rate: 1, Burst: 2, Now: clk.Now})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	assert.Equal(t, 2, limiterAllowed(l, a, 10), "burst 2")

	require.NoError(t, l.SetLimits(100, 5, []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.2/128")}))
	clk.Advance(time.Second)
	assert.Equal(t, 5, limiterAllowed(l, a, 10), "refilled at the new rate, up to the new burst")
	assert.Equal(t, 10, limiterAllowed(l, b, 10), "newly exempt")

	assert.ErrorIs(t, l.SetLimits(0, 5, nil), ErrBadLimiterOptions)
	assert.ErrorIs(t, l.SetLimits(1, 5, []netip.Prefix{{}}), ErrBadLimiterOptions)
	assert.Equal(t, 10, limiterAllowed(l, b, 10), "a refused change kept the limits")
}
