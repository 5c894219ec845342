package decide

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/internal/testkit"
	"github.com/imedge/imedge/receiver"
)

func keyN(n int) key {
	return keyOf(&receiver.Event{ID: strconv.Itoa(n)})
}

func TestCache_RemembersDecisionsForTheTTL(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	c := newCache(10, 1<<20, time.Minute)
	calls := 0
	call := func() result { calls++; return result{body: []byte(`{"d":1}`), outcome: catalog.Deny} }

	res, src := c.do(t.Context(), keyN(1), clk.Now, call)
	assert.Equal(t, fresh, src)
	clk.Advance(59 * time.Second)
	res2, src := c.do(t.Context(), keyN(1), clk.Now, call)
	assert.Equal(t, cached, src)
	assert.Equal(t, res, res2)
	assert.Equal(t, 1, calls)

	clk.Advance(time.Second)
	_, src = c.do(t.Context(), keyN(1), clk.Now, call)
	assert.Equal(t, fresh, src, "stale after the TTL: asked again")
	assert.Equal(t, 2, calls)
	assert.Equal(t, uint64(1), c.stats().Hits)
}

func TestCache_NeverRemembersFallbacks(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	c := newCache(10, 1<<20, time.Minute)
	calls := 0
	call := func() result { calls++; return result{reason: audit.DecideTimeout} }
	for range 3 {
		res, src := c.do(t.Context(), keyN(1), clk.Now, call)
		assert.Equal(t, fresh, src)
		assert.Equal(t, audit.DecideTimeout, res.reason)
	}
	assert.Equal(t, 3, calls)
	assert.Zero(t, c.stats().Entries)
}

func TestCache_Bounded(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	t.Run("entries", func(t *testing.T) {
		c := newCache(3, 1<<20, time.Minute)
		for i := range 5 {
			c.do(t.Context(), keyN(i), clk.Now, func() result { return result{body: []byte("x")} })
		}
		st := c.stats()
		assert.Equal(t, 3, st.Entries)
		assert.Equal(t, uint64(2), st.Evictions)
		assert.Equal(t, int64(3*(1+entryOverhead)), st.Bytes)
		_, src := c.do(t.Context(), keyN(0), clk.Now, func() result { return result{body: []byte("x")} })
		assert.Equal(t, fresh, src, "the oldest went first")
		_, src = c.do(t.Context(), keyN(4), clk.Now, func() result { return result{} })
		assert.Equal(t, cached, src)
	})
	t.Run("bytes", func(t *testing.T) {
		body := make([]byte, 1000)
		c := newCache(100, 3*(1000+entryOverhead), time.Minute)
		for i := range 5 {
			c.do(t.Context(), keyN(i), clk.Now, func() result { return result{body: body} })
		}
		st := c.stats()
		assert.Equal(t, 3, st.Entries)
		assert.LessOrEqual(t, st.Bytes, int64(3*(1000+entryOverhead)))
		c.do(t.Context(), keyN(9), clk.Now, func() result { return result{body: make([]byte, 4000)} })
		assert.Equal(t, 3, c.stats().Entries, "a body over the whole bound is not remembered")
	})
	t.Run("off", func(t *testing.T) {
		c := newCache(100, 1<<20, -1)
		for range 2 {
			_, src := c.do(t.Context(), keyN(1), clk.Now, func() result { return result{body: []byte("x")} })
			assert.Equal(t, fresh, src)
		}
	})
}

// TestCache_IdenticalCallsShareOne: callbacks that arrive while an
// identical one is being decided wait for its call and get its answer.
func TestCache_IdenticalCallsShareOne(t *testing.T) {
	c := newCache(10, 1<<20, time.Minute)
	release := make(chan struct{})
	var calls atomic.Int32
	call := func() result {
		calls.Add(1)
		<-release
		return result{body: []byte("decided"), outcome: catalog.Allow}
	}
	const n = 4
	var wg sync.WaitGroup
	got := make([]result, n)
	srcs := make([]source, n)
	for i := range n {
		wg.Go(func() { got[i], srcs[i] = c.do(t.Context(), keyN(7), time.Now, call) })
	}
	require.Eventually(t, func() bool { return c.stats().Joined == n-1 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), calls.Load())
	for i := range n {
		assert.Equal(t, "decided", string(got[i].body))
	}
	assert.ElementsMatch(t, []source{fresh, joined, joined, joined}, srcs)

	// A waiter whose request ends stops waiting.
	block := make(chan struct{})
	defer close(block)
	go c.do(t.Context(), keyN(8), time.Now, func() result { <-block; return result{} })
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.flights) == 1 }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, src := c.do(ctx, keyN(8), time.Now, func() result { t.Error("second call"); return result{} })
	assert.Equal(t, joined, src)
	assert.Equal(t, audit.DecideTimeout, res.reason)
}

// TestPlainAllow: for every command whose allow reply has no per-target or
// RspData field, the plain allow reply is what CheckReply relays for it, so
// the Service may relay it without checking it.
func TestPlainAllow(t *testing.T) {
	s, err := New(Options{})
	require.NoError(t, err)
	plain := 0
	for _, c := range s.order {
		relay, outcome, err := c.cmd.CheckReply(c.cmd.Example(), []byte(okBodyText))
		if !c.plainOK {
			assert.True(t, err != nil || string(relay) != okBodyText, "%s needs its reply checked", c.cmd.Name)
			continue
		}
		plain++
		require.NoError(t, err, c.cmd.Name)
		assert.Equal(t, okBodyText, string(relay), c.cmd.Name)
		assert.Equal(t, catalog.Allow, outcome, c.cmd.Name)
	}
	assert.Equal(t, 9, plain, "all but the two friend requests and the chatbot")
}
