package redisstate_test

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/redisstate"
)

var receiverErrStateUnavailable = receiver.ErrStateUnavailable

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLimiter_BurstSharedAndRefill(t *testing.T) {
	s := startRedis(t)
	o := redisstate.LimiterOptions{Rate: 5, Burst: 3, Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	a, err := newClient(t, s, redisstate.Options{}).NewLimiter(o)
	require.NoError(t, err)
	b, err := newClient(t, s, redisstate.Options{}).NewLimiter(o)
	require.NoError(t, err)
	ctx := ctxT(t)

	ip := addr("192.0.2.7")
	allowed := 0
	for i := range 3 {
		l := a
		if i%2 == 1 {
			l = b
		}
		ok, _, err := l.AllowContext(ctx, ip)
		require.NoError(t, err)
		if ok {
			allowed++
		}
	}
	assert.Equal(t, 3, allowed, "the burst is spent across both instances")
	ok, wait, err := b.AllowContext(ctx, ip)
	require.NoError(t, err)
	assert.False(t, ok, "the fourth call over the burst is refused on either instance")
	assert.Greater(t, wait, time.Duration(0))
	assert.LessOrEqual(t, wait, 200*time.Millisecond, "one token comes back after 1/rate")

	ok, _, err = a.AllowContext(ctx, addr("192.0.2.8"))
	require.NoError(t, err)
	assert.True(t, ok, "another client has its own bucket")
	for range 10 {
		ok, _, err = a.AllowContext(ctx, addr("198.51.100.9"))
		require.NoError(t, err)
		require.True(t, ok, "exempt networks are never limited")
	}

	mem, err := s.direct(t).MemoryUsage(ctx, redisstate.RateKeyPrefix+"192.0.2.7").Result()
	require.NoError(t, err)
	t.Logf("MEMORY USAGE of one rate-limit key (IPv4): %d bytes", mem)

	start := time.Now()
	require.Eventually(t, func() bool {
		ok, _, err := a.AllowContext(ctx, ip) // a refused call takes no token
		return err == nil && ok
	}, 5*time.Second, 10*time.Millisecond, "a token refills")
	assert.GreaterOrEqual(t, time.Since(start)+20*time.Millisecond, wait, "not before Retry-After")
}

func TestLimiter_IPv6KeyedByPrefix(t *testing.T) {
	s := startRedis(t)
	l, err := newClient(t, s, redisstate.Options{}).NewLimiter(redisstate.LimiterOptions{Rate: 1, Burst: 1})
	require.NoError(t, err)
	ctx := ctxT(t)
	ok, _, err := l.AllowContext(ctx, addr("2001:db8:1:2::1"))
	require.NoError(t, err)
	require.True(t, ok)
	ok, _, err = l.AllowContext(ctx, addr("2001:db8:1:2::ffff"))
	require.NoError(t, err)
	assert.False(t, ok, "the same /64 shares one bucket")
	ok, _, err = l.AllowContext(ctx, addr("2001:db8:1:3::1"))
	require.NoError(t, err)
	assert.True(t, ok, "another /64 does not")
	n, err := s.direct(t).Exists(ctx, redisstate.RateKeyPrefix+"2001:db8:1:2::/64").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the key is receiver.LimiterKey's")
}

func TestLimiter_FailOpenUsesLocal(t *testing.T) {
	s := startRedis(t)
	c := newClient(t, s, redisstate.Options{})
	local, err := receiver.NewClientLimiter(receiver.LimiterOptions{Rate: 1, Burst: 2})
	require.NoError(t, err)
	l, err := c.NewLimiter(redisstate.LimiterOptions{Rate: 1, Burst: 2, Local: local})
	require.NoError(t, err)
	ctx := ctxT(t)
	s.stop()
	var got []bool
	for range 3 {
		ok, _, err := l.AllowContext(ctx, addr("192.0.2.1"))
		require.NoError(t, err)
		got = append(got, ok)
	}
	assert.Equal(t, []bool{true, true, false}, got, "the local bucket limits while redis is down")
	assert.Positive(t, c.Stats().Fallbacks)
}

func TestNew_RejectsPasswordInURL(t *testing.T) {
	for _, u := range []string{"redis://:secret@127.0.0.1:6379", "redis://user:secret@127.0.0.1:6379/0", "redis://127.0.0.1:6379?password=secret"} {
		_, err := redisstate.New(redisstate.Options{URL: u})
		assert.ErrorIs(t, err, redisstate.ErrPasswordInURL, u)
		if err != nil {
			assert.NotContains(t, err.Error(), "secret", "the error does not echo the password")
		}
	}
	_, err := redisstate.New(redisstate.Options{URL: "http://127.0.0.1:6379"})
	assert.ErrorIs(t, err, redisstate.ErrBadOptions)
	_, err = redisstate.New(redisstate.Options{URL: "redis://127.0.0.1:6379", CAFile: "/nonexistent"})
	assert.ErrorIs(t, err, redisstate.ErrBadOptions, "a CA needs rediss://")
}

func TestNew_PasswordAuth(t *testing.T) {
	s := startRedis(t, "--requirepass", "s3cret-pw")
	good := newClient(t, s, redisstate.Options{Password: "s3cret-pw"})
	assert.True(t, good.Stats().Up)
	bad, err := redisstate.New(redisstate.Options{URL: s.url(), Password: "wrong", Timeout: time.Second})
	require.NoError(t, err)
	defer bad.Close()
	assert.False(t, bad.Stats().Up, "a wrong password leaves redis down")
}

// The shared limiter exempts exactly the ClientIPs the in-process limiter
// exempts, whichever spelling (IPv4, IPv4-mapped IPv6) the exempt network
// and the ClientIP use. (The shared limiter used to compare mapped prefixes
// unmapped, so ::ffff:10.0.0.0/104 exempted nothing on Redis.)
func TestLimiter_ExemptAgreesWithInProcessLimiter(t *testing.T) {
	s := startRedis(t)
	exempt := []netip.Prefix{
		netip.MustParsePrefix("::ffff:10.0.0.0/104"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	// One token a second, burst 1: a second call within the second is
	// limited unless exempt.
	shared, err := newClient(t, s, redisstate.Options{}).NewLimiter(redisstate.LimiterOptions{Rate: 1, Burst: 1, Exempt: exempt})
	require.NoError(t, err)
	local, err := receiver.NewClientLimiter(receiver.LimiterOptions{Rate: 1, Burst: 1, Exempt: exempt})
	require.NoError(t, err)
	for _, ip := range []string{"10.1.2.3", "::ffff:10.1.2.3", "192.0.2.9", "::ffff:192.0.2.9", "2001:db8::7",
		"10.0.0.1", "11.0.0.1", "::ffff:11.0.0.1", "2001:db9::1"} {
		a := netip.MustParseAddr(ip)
		localOK := true
		for range 2 {
			ok, _ := local.Allow(a)
			localOK = localOK && ok
		}
		sharedOK := true
		for range 2 {
			ok, _, err := shared.AllowContext(ctxT(t), a)
			require.NoError(t, err)
			sharedOK = sharedOK && ok
		}
		assert.Equal(t, localOK, sharedOK, "%s: in-process and shared limiters agree on the exemption", ip)
	}
	st := local.Stats()
	assert.Equal(t, uint64(2*6), st.Exempt, "six of the addresses are exempt, checked twice each")
}

// go-redis's own log lines, plain text by default, arrive as JSON records
// of the logger they are routed to.
func TestRouteLibraryLog_LinesBecomeJSONRecords(t *testing.T) {
	var buf strings.Builder
	redisstate.LibraryLogPrintf(slog.New(slog.NewJSONHandler(&buf, nil)), "dial tcp %s: connection refused\n", "127.0.0.1:1")
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &m), "one JSON record: %q", buf.String())
	assert.Equal(t, "dial tcp 127.0.0.1:1: connection refused", m["msg"])
	assert.Equal(t, "WARN", m["level"])
	assert.Equal(t, "go-redis", m["component"])
}

// SetLimits changes a running shared limiter's burst and exemptions.
func TestLimiter_SetLimits(t *testing.T) {
	s := startRedis(t)
	l, err := newClient(t, s, redisstate.Options{}).NewLimiter(redisstate.LimiterOptions{Rate: 1, Burst: 1})
	require.NoError(t, err)
	a := netip.MustParseAddr("192.0.2.77")
	allowed := func(n int) int {
		ok := 0
		for range n {
			if pass, _, err := l.AllowContext(ctxT(t), a); err == nil && pass {
				ok++
			}
		}
		return ok
	}
	assert.Equal(t, 1, allowed(5), "burst 1")
	require.NoError(t, l.SetLimits(1, 1, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}))
	assert.Equal(t, 5, allowed(5), "exempt after SetLimits")
	assert.ErrorIs(t, l.SetLimits(-1, 1, nil), redisstate.ErrBadOptions)
	assert.Equal(t, 5, allowed(5), "a refused change kept the limits")
}
