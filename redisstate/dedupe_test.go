package redisstate_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/redisstate"
)

func newDedupe(t *testing.T, c *redisstate.Client, o redisstate.DedupeOptions) *redisstate.Dedupe {
	t.Helper()
	if o.Window == 0 {
		o.Window = time.Minute
	}
	d, err := c.NewDedupe(o)
	require.NoError(t, err)
	return d
}

func TestDedupe_ClaimSettleForget(t *testing.T) {
	s := startRedis(t)
	d := newDedupe(t, newClient(t, s, redisstate.Options{}), redisstate.DedupeOptions{})
	ctx := ctxT(t)

	ok, err := d.Claim(ctx, "ev-1")
	require.NoError(t, err)
	assert.True(t, ok, "a new key is claimed")
	v, err := s.direct(t).Get(ctx, redisstate.KeyPrefix+"ev-1").Result()
	require.NoError(t, err)
	assert.Contains(t, v, "inflight:", "the claim is marked in flight on redis")

	// A second identical request on the same instance waits for the first.
	got := make(chan error, 1)
	var dup atomic.Bool
	go func() {
		ok, err := d.Claim(ctx, "ev-1")
		dup.Store(!ok)
		got <- err
	}()
	require.Eventually(t, func() bool { return d.Waiting() == 1 }, 5*time.Second, time.Millisecond, "the copy waits")
	d.Settle("ev-1", true)
	require.NoError(t, <-got)
	assert.True(t, dup.Load(), "the waiter sees a duplicate once the holder accepted")

	v, err = s.direct(t).Get(ctx, redisstate.KeyPrefix+"ev-1").Result()
	require.NoError(t, err)
	assert.Equal(t, "accepted", v)
	ok, err = d.Claim(ctx, "ev-1")
	require.NoError(t, err)
	assert.False(t, ok, "an accepted key is a duplicate")

	// Not accepted: forgotten, so the retry goes through.
	ok, err = d.Claim(ctx, "ev-2")
	require.NoError(t, err)
	require.True(t, ok)
	d.Settle("ev-2", false)
	n, err := s.direct(t).Exists(ctx, redisstate.KeyPrefix+"ev-2").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "a failed claim is deleted")
	ok, err = d.Claim(ctx, "ev-2")
	require.NoError(t, err)
	assert.True(t, ok, "a forgotten key is new again")
	d.Settle("ev-2", true)
}

// errsOf reads *errs under mu.
func errsOf(mu *sync.Mutex, errs *[]error) []error {
	mu.Lock()
	defer mu.Unlock()
	return *errs
}

func TestDedupe_TwoInstancesExactlyOneClaims(t *testing.T) {
	s := startRedis(t)
	a := newDedupe(t, newClient(t, s, redisstate.Options{Instance: "a"}), redisstate.DedupeOptions{})
	b := newDedupe(t, newClient(t, s, redisstate.Options{Instance: "b"}), redisstate.DedupeOptions{})
	ctx := ctxT(t)

	const per = 8
	var wins, dups atomic.Int32
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 * per {
		d := a
		if i%2 == 1 {
			d = b
		}
		wg.Go(func() {
			ok, err := d.Claim(ctx, "same")
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			if ok {
				wins.Add(1)
				// Hold the key, as the sink write does, until every other
				// copy is waiting for it or was answered.
				assert.Eventually(t, func() bool {
					return a.Waiting()+b.Waiting()+int(dups.Load())+len(errsOf(&mu, &errs)) == 2*per-1
				}, 10*time.Second, time.Millisecond)
				d.Settle("same", true)
				return
			}
			dups.Add(1)
		})
	}
	wg.Wait()
	assert.Empty(t, errs)
	assert.Equal(t, int32(1), wins.Load(), "exactly one claim wins across both instances")
	assert.Equal(t, int32(2*per-1), dups.Load(), "all the others are duplicates")
}

func TestDedupe_RemoteHolderFails(t *testing.T) {
	s := startRedis(t)
	a := newDedupe(t, newClient(t, s, redisstate.Options{Instance: "a"}), redisstate.DedupeOptions{})
	b := newDedupe(t, newClient(t, s, redisstate.Options{Instance: "b"}), redisstate.DedupeOptions{WaitMax: 300 * time.Millisecond})
	ctx := ctxT(t)

	ok, err := a.Claim(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = b.Claim(ctx, "k")
	assert.ErrorIs(t, err, redisstate.ErrInFlightTimeout, "b gives up after WaitMax while a holds the key")

	got := make(chan error, 1)
	go func() { _, err := b.Claim(ctx, "k"); got <- err }()
	require.Eventually(t, func() bool { return b.Waiting() == 1 }, 5*time.Second, time.Millisecond, "b polls a's key")
	a.Settle("k", false)
	assert.ErrorIs(t, <-got, redisstate.ErrInFlightFailed, "b learns that a's copy failed")

	ok, err = b.Claim(ctx, "k")
	require.NoError(t, err)
	assert.True(t, ok, "the released key is free for the retry")
	b.Settle("k", true)
}

func TestDedupe_WindowIsTheTTL(t *testing.T) {
	s := startRedis(t)
	d := newDedupe(t, newClient(t, s, redisstate.Options{}), redisstate.DedupeOptions{Window: 300 * time.Millisecond})
	ctx := ctxT(t)
	ok, err := d.Claim(ctx, "short")
	require.NoError(t, err)
	require.True(t, ok)
	d.Settle("short", true)
	ttl, err := s.direct(t).PTTL(ctx, redisstate.KeyPrefix+"short").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0))
	assert.LessOrEqual(t, ttl, 300*time.Millisecond)

	ok, err = d.Claim(ctx, "short")
	require.NoError(t, err)
	assert.False(t, ok, "inside the window")
	require.Eventually(t, func() bool {
		ok, err := d.Claim(ctx, "short")
		if err == nil && ok {
			d.Settle("short", true)
		}
		return ok
	}, 5*time.Second, 50*time.Millisecond, "after the window the key is new again")
}

// TestDedupe_MemoryPerKey reports what one accepted key costs in Redis
// (MEMORY USAGE), for the sizing notes of docs/deploy.md.
func TestDedupe_MemoryPerKey(t *testing.T) {
	s := startRedis(t)
	d := newDedupe(t, newClient(t, s, redisstate.Options{}), redisstate.DedupeOptions{})
	ctx := ctxT(t)
	key := receiver.EventID("1400000000", "Sns.CallbackFriendDelete", []byte(`{"x":1}`)) // 64 hex digits
	ok, err := d.Claim(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	d.Settle(key, true)
	n, err := s.direct(t).MemoryUsage(ctx, redisstate.KeyPrefix+key).Result()
	require.NoError(t, err)
	assert.Positive(t, n)
	t.Logf("MEMORY USAGE of one accepted dedupe key (%d-byte id): %d bytes", len(key), n)
}

func TestPolicy_FailOpenFallsBackAndResumes(t *testing.T) {
	s := startRedis(t)
	c := newClient(t, s, redisstate.Options{Policy: redisstate.FailOpen})
	local, err := dedupe.New(dedupe.Options{TTL: time.Minute})
	require.NoError(t, err)
	d := newDedupe(t, c, redisstate.DedupeOptions{Local: local})
	ctx := ctxT(t)

	ok, err := d.Claim(ctx, "before")
	require.NoError(t, err)
	require.True(t, ok)
	d.Settle("before", true)
	require.True(t, c.Stats().Up)

	s.stop()
	ok, err = d.Claim(ctx, "during")
	require.NoError(t, err, "fail-open never refuses")
	assert.True(t, ok)
	d.Settle("during", true)
	ok, err = d.Claim(ctx, "during")
	require.NoError(t, err)
	assert.False(t, ok, "the local set still catches duplicates")
	ok, err = d.Claim(ctx, "before")
	require.NoError(t, err)
	assert.False(t, ok, "keys this instance accepted on redis were loaded locally too")
	st := c.Stats()
	assert.False(t, st.Up)
	assert.GreaterOrEqual(t, st.Fallbacks, uint64(3))
	assert.Positive(t, st.Errors)

	s.start()
	require.Eventually(t, func() bool { return c.Stats().Up }, 5*time.Second, 20*time.Millisecond, "the health loop sees redis back")
	ok, err = d.Claim(ctx, "after")
	require.NoError(t, err)
	require.True(t, ok)
	d.Settle("after", true)
	v, err := s.direct(t).Get(ctx, redisstate.KeyPrefix+"after").Result()
	require.NoError(t, err)
	assert.Equal(t, "accepted", v, "shared mode resumed: the key is on redis")
}

func TestPolicy_FailClosedRefusesAndResumes(t *testing.T) {
	s := startRedis(t)
	c := newClient(t, s, redisstate.Options{Policy: redisstate.FailClosed})
	d := newDedupe(t, c, redisstate.DedupeOptions{})
	l, err := c.NewLimiter(redisstate.LimiterOptions{Rate: 100, Burst: 10})
	require.NoError(t, err)
	ctx := ctxT(t)

	s.stop()
	_, err = d.Claim(ctx, "x")
	assert.ErrorIs(t, err, receiverErrStateUnavailable)
	_, _, err = l.AllowContext(ctx, addr("192.0.2.1"))
	assert.ErrorIs(t, err, receiverErrStateUnavailable)
	assert.False(t, c.Stats().Up)
	assert.GreaterOrEqual(t, c.Stats().Refused, uint64(2))
	assert.Zero(t, c.Stats().Fallbacks)

	s.start()
	require.Eventually(t, func() bool { return c.Stats().Up }, 5*time.Second, 20*time.Millisecond)
	ok, err := d.Claim(ctx, "x")
	require.NoError(t, err)
	assert.True(t, ok)
	d.Settle("x", true)
	ok, _, err = l.AllowContext(ctx, addr("192.0.2.1"))
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestDedupe_SameInstanceCopiesWaitLocally checks that identical requests
// on one instance wait for each other in process: Redis sees one claim and
// one settle, and no polling.
func TestDedupe_SameInstanceCopiesWaitLocally(t *testing.T) {
	s := startRedis(t)
	d := newDedupe(t, newClient(t, s, redisstate.Options{}), redisstate.DedupeOptions{})
	ctx := ctxT(t)
	ok, err := d.Claim(ctx, "hot") // also loads the script
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.direct(t).ConfigResetStat(ctx).Err())

	var wg sync.WaitGroup
	var dups atomic.Int32
	for range 5 {
		wg.Go(func() {
			ok, err := d.Claim(ctx, "hot")
			if err == nil && !ok {
				dups.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return d.Waiting() == 5 }, 5*time.Second, time.Millisecond, "all five wait locally")
	d.Settle("hot", true)
	wg.Wait()
	assert.Equal(t, int32(5), dups.Load())
	stats, err := s.direct(t).Info(ctx, "commandstats").Result()
	require.NoError(t, err)
	// Only the settle script ran: one GET (compare) and one SET (accepted).
	assert.Contains(t, stats, "cmdstat_get:calls=1,", "local waiters neither claim on nor poll redis")
	assert.Contains(t, stats, "cmdstat_set:calls=1,")
}
