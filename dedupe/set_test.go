package dedupe_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/internal/testkit"
)

// fakeClock is the shared manual clock of the tests.
type fakeClock = testkit.Clock

func newClock() *fakeClock {
	return testkit.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

func key(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

func newSet(t *testing.T, o dedupe.Options) *dedupe.Set {
	t.Helper()
	s, err := dedupe.New(o)
	require.NoError(t, err)
	return s
}

// hold claims key, requires that it is new, and leaves it held (in flight).
func hold(t *testing.T, s *dedupe.Set, k string) {
	t.Helper()
	ok, err := s.Claim(t.Context(), k)
	require.NoError(t, err)
	require.True(t, ok, "key should be new")
}

// accept claims key, requires that it is new, and settles it as accepted.
func accept(t *testing.T, s *dedupe.Set, k string) {
	t.Helper()
	hold(t, s, k)
	s.Settle(k, true)
}

// assertWindowEndsIn advances clk to just before d from now, where k must
// still be a duplicate, then to d, where it must be new again.
func assertWindowEndsIn(t *testing.T, clk *fakeClock, s *dedupe.Set, k string, d time.Duration, msg string) {
	t.Helper()
	clk.Advance(d - time.Nanosecond)
	assert.False(t, isNew(t, s, k), "%s: still inside the window", msg)
	clk.Advance(time.Nanosecond)
	assert.True(t, isNew(t, s, k), "%s: the window has ended", msg)
}

func isNew(t *testing.T, s *dedupe.Set, k string) bool {
	t.Helper()
	ok, err := s.Claim(t.Context(), k)
	require.NoError(t, err)
	if ok {
		s.Settle(k, false) // release without marking seen
	}
	return ok
}

func TestNew_RejectsNegativeOptions(t *testing.T) {
	tests := []struct {
		name string
		o    dedupe.Options
		want []error
	}{
		{"size", dedupe.Options{Size: -1}, []error{dedupe.ErrBadSize}},
		{"size above 2^30", dedupe.Options{Size: 1<<30 + 1}, []error{dedupe.ErrBadSize}},
		{"ttl", dedupe.Options{TTL: -time.Second}, []error{dedupe.ErrBadTTL}},
		{"both", dedupe.Options{Size: -1, TTL: -1}, []error{dedupe.ErrBadSize, dedupe.ErrBadTTL}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dedupe.New(tc.o)
			require.Error(t, err)
			assert.Nil(t, s)
			for _, w := range tc.want {
				assert.ErrorIs(t, err, w)
			}
		})
	}
}

func TestNew_ZeroOptionsUseTenMinuteWindow(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{Now: clk.Now})
	accept(t, s, key(1))

	assertWindowEndsIn(t, clk, s, key(1), 10*time.Minute, "default window is 10 minutes")
}

func TestSet_Claim_DuplicateWithinWindow(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{TTL: time.Minute, Now: clk.Now})
	accept(t, s, key(1))

	clk.Advance(30 * time.Second)
	ok, err := s.Claim(t.Context(), key(1))
	require.NoError(t, err)
	assert.False(t, ok, "a retry inside the window is a duplicate")
	assert.True(t, isNew(t, s, key(2)), "other keys are unaffected")

	st := s.Stats()
	assert.Equal(t, uint64(1), st.Hits)
	assert.Equal(t, 1, st.Len)
	assert.Equal(t, 0, st.InFlight)
}

func TestSet_Window_RunsFromFirstAcceptanceAndIsNotExtended(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{TTL: time.Minute, Now: clk.Now})
	accept(t, s, key(1))

	// Duplicates during the window must not push its end out.
	for range 5 {
		clk.Advance(11 * time.Second)
		assert.False(t, isNew(t, s, key(1)))
	}
	clk.Advance(5*time.Second - time.Nanosecond) // 1m - 1ns after acceptance
	assert.False(t, isNew(t, s, key(1)))
	clk.Advance(time.Nanosecond)
	assert.True(t, isNew(t, s, key(1)), "window ends one TTL after first acceptance")
	assert.Equal(t, uint64(6), s.Stats().Hits)
}

func TestSet_Settle_NotAcceptedForgetsKey(t *testing.T) {
	s := newSet(t, dedupe.Options{})
	hold(t, s, key(1))
	s.Settle(key(1), false)

	assert.Equal(t, dedupe.Stats{}, s.Stats(), "nothing remembered after a failed accept")
	ok, err := s.Claim(t.Context(), key(1))
	require.NoError(t, err)
	assert.True(t, ok, "the sender's retry goes through")
}

func TestSet_Settle_UnheldKeyIsNoop(t *testing.T) {
	s := newSet(t, dedupe.Options{})
	s.Settle(key(1), true)
	assert.Equal(t, dedupe.Stats{}, s.Stats())
	assert.True(t, isNew(t, s, key(1)))
}

func TestSet_Claim_InFlightReportedInStats(t *testing.T) {
	s := newSet(t, dedupe.Options{})
	hold(t, s, key(1))
	assert.Equal(t, 1, s.Stats().InFlight)
	s.Settle(key(1), true)
	assert.Equal(t, dedupe.Stats{Len: 1}, s.Stats())
}

// TestSet_Claim_ConcurrentIdentical runs identical Claims at the same moment:
// exactly one holds the key, the others wait for its outcome and all get the
// same answer.
func TestSet_Claim_ConcurrentIdentical(t *testing.T) {
	const n = 8
	for _, accepted := range []bool{true, false} {
		t.Run("accepted="+strconv.FormatBool(accepted), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSet(t, dedupe.Options{})
				type result struct {
					ok  bool
					err error
				}
				results := make(chan result, n)
				var start sync.WaitGroup
				start.Add(1)
				for range n {
					go func() {
						start.Wait()
						ok, err := s.Claim(t.Context(), key(1))
						results <- result{ok, err}
					}()
				}
				start.Done()

				first := <-results // only the holder can return before Settle
				require.NoError(t, first.err)
				require.True(t, first.ok, "one Claim holds the key")
				synctest.Wait() // every other Claim is now blocked on the holder
				assert.Len(t, results, 0, "the others wait for the holder's outcome")
				assert.Equal(t, 1, s.Stats().InFlight)

				s.Settle(key(1), accepted)
				for range n - 1 {
					r := <-results
					assert.False(t, r.ok)
					if accepted {
						assert.NoError(t, r.err)
					} else {
						assert.ErrorIs(t, r.err, dedupe.ErrInFlightFailed)
					}
				}
				st := s.Stats()
				assert.Equal(t, 0, st.InFlight)
				if accepted {
					assert.Equal(t, uint64(n-1), st.Hits)
					assert.Equal(t, 1, st.Len)
				} else {
					assert.Equal(t, uint64(0), st.Hits)
					assert.Equal(t, 0, st.Len)
				}
			})
		})
	}
}

// TestSet_Claim_RaceHammer races many identical Claims on many keys with real
// scheduling: each key is won exactly once.
func TestSet_Claim_RaceHammer(t *testing.T) {
	const keys, perKey = 200, 8
	s := newSet(t, dedupe.Options{})
	var wins [keys]atomic.Int32
	var wg sync.WaitGroup
	for i := range keys {
		for range perKey {
			wg.Go(func() {
				ok, err := s.Claim(t.Context(), key(i))
				if !assert.NoError(t, err) {
					return
				}
				if ok {
					wins[i].Add(1)
					s.Settle(key(i), true)
				}
			})
		}
	}
	wg.Wait()
	for i := range keys {
		assert.Equal(t, int32(1), wins[i].Load(), "key %d", i)
	}
	st := s.Stats()
	assert.Equal(t, keys, st.Len)
	assert.Equal(t, uint64(keys*(perKey-1)), st.Hits)
	assert.Equal(t, 0, st.InFlight)
}

func TestSet_Claim_ContextEndsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, dedupe.Options{})
		ok, err := s.Claim(t.Context(), key(1))
		require.NoError(t, err)
		require.True(t, ok)

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			ok, err := s.Claim(ctx, key(1))
			assert.False(t, ok)
			errc <- err
		}()
		synctest.Wait()
		require.Len(t, errc, 0, "waiter blocks while the key is held")
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)

		// The holder is unaffected and the key is still settled normally.
		s.Settle(key(1), true)
		assert.Equal(t, dedupe.Stats{Len: 1}, s.Stats())
	})
}

func TestSet_Claim_ContextAlreadyDone(t *testing.T) {
	s := newSet(t, dedupe.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ok, err := s.Claim(ctx, key(1))
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.Stats().InFlight, "nothing is held")
}

func TestSet_Load_RestoresKeysAcceptedWithinWindow(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	s := newSet(t, dedupe.Options{TTL: 10 * time.Minute, Now: clk.Now})

	s.Load(key(1), now.Add(-9*time.Minute))  // inside the window
	s.Load(key(2), now.Add(-10*time.Minute)) // window just ended
	s.Load(key(3), now.Add(-time.Hour))      // long gone
	assert.Equal(t, 1, s.Stats().Len, "expired keys are ignored")

	assert.False(t, isNew(t, s, key(1)), "a retry after restart is still a duplicate")
	assert.True(t, isNew(t, s, key(2)))
	assert.True(t, isNew(t, s, key(3)))

	// The restored window still ends 10 minutes after the original acceptance.
	assertWindowEndsIn(t, clk, s, key(1), time.Minute, "restored window")
}

func TestSet_Load_KeepsEarliestAcceptance(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	s := newSet(t, dedupe.Options{TTL: 10 * time.Minute, Now: clk.Now})
	s.Load(key(1), now.Add(-8*time.Minute))
	s.Load(key(1), now.Add(-1*time.Minute)) // later copy must not extend

	assertWindowEndsIn(t, clk, s, key(1), 2*time.Minute, "window runs from the earliest acceptance")
}

func TestSet_Load_DoesNotReleaseKeyInFlight(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{TTL: 10 * time.Minute, Now: clk.Now})
	hold(t, s, key(1))

	s.Load(key(1), clk.Now().Add(-5*time.Minute))
	assert.Equal(t, 1, s.Stats().InFlight)
	s.Settle(key(1), true)

	clk.Advance(5 * time.Minute) // the loaded (earlier) window wins
	assert.True(t, isNew(t, s, key(1)))
}

func TestSet_Settle_ReplacesALaterLoadedWindow(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{TTL: 10 * time.Minute, Now: clk.Now})
	hold(t, s, key(1))

	s.Load(key(1), clk.Now().Add(time.Hour)) // a later acceptance, loaded while in flight
	s.Settle(key(1), true)                   // this acceptance is earlier: its window counts
	assert.Equal(t, 1, s.Stats().Len)

	assertWindowEndsIn(t, clk, s, key(1), 10*time.Minute, "window runs from the earlier acceptance")
}

func TestSet_Settle_ReplacesAnExpiredLoadedWindow(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{TTL: 10 * time.Minute, Now: clk.Now})
	accept(t, s, key(2)) // older than key(1)'s entry: pruning stops here
	hold(t, s, key(1))
	s.Load(key(1), clk.Now().Add(-9*time.Minute))

	clk.Advance(2 * time.Minute) // the loaded window has ended, key(2)'s has not
	s.Settle(key(1), true)       // a new window from now
	assert.Equal(t, 2, s.Stats().Len)

	assertWindowEndsIn(t, clk, s, key(1), 10*time.Minute, "the expired window was replaced by a new one")
}

func TestSet_Eviction_OldestAcceptedFirst(t *testing.T) {
	s := newSet(t, dedupe.Options{Size: 3})
	accept(t, s, key(1))
	accept(t, s, key(2))
	accept(t, s, key(3))
	// A duplicate does not make key 1 "recent": order is acceptance order.
	assert.False(t, isNew(t, s, key(1)))
	accept(t, s, key(4)) // evicts key 1

	assert.Equal(t, uint64(1), s.Stats().Evictions)
	assert.False(t, isNew(t, s, key(2)))
	assert.False(t, isNew(t, s, key(3)))
	assert.False(t, isNew(t, s, key(4)))
	assert.True(t, isNew(t, s, key(1)), "the oldest accepted key was evicted")
}

func TestSet_SizeBound(t *testing.T) {
	const size, total = 100, 1000
	s := newSet(t, dedupe.Options{Size: size})
	for i := range total {
		accept(t, s, key(i))
		require.LessOrEqual(t, s.Stats().Len, size)
	}
	st := s.Stats()
	assert.Equal(t, size, st.Len)
	assert.Equal(t, uint64(total-size), st.Evictions)
	for i := total - size; i < total; i++ {
		assert.False(t, isNew(t, s, key(i)), "newest keys kept")
	}
}

func TestSet_ExpiredKeysDroppedBeforeEvicting(t *testing.T) {
	clk := newClock()
	s := newSet(t, dedupe.Options{Size: 3, TTL: time.Minute, Now: clk.Now})
	accept(t, s, key(1))
	accept(t, s, key(2))
	clk.Advance(time.Minute)
	accept(t, s, key(3))
	accept(t, s, key(4))

	st := s.Stats()
	assert.Equal(t, 2, st.Len, "expired keys are dropped on insert")
	assert.Equal(t, uint64(0), st.Evictions, "dropping expired keys is not an eviction")
}

func TestSet_InFlightKeysAreNeverEvicted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, dedupe.Options{Size: 1})
		ok, err := s.Claim(t.Context(), key(0))
		require.NoError(t, err)
		require.True(t, ok)
		for i := 1; i <= 10; i++ {
			accept(t, s, key(i))
		}

		done := make(chan bool, 1)
		go func() {
			ok, err := s.Claim(t.Context(), key(0))
			assert.NoError(t, err)
			done <- ok
		}()
		synctest.Wait()
		assert.Len(t, done, 0, "key 0 is still held after the LRU churned")
		s.Settle(key(0), true)
		assert.False(t, <-done)
	})
}

func TestSet_HugeTTLDoesNotWrap(t *testing.T) {
	s := newSet(t, dedupe.Options{TTL: time.Duration(1<<63 - 1)})
	accept(t, s, key(1))
	assert.False(t, isNew(t, s, key(1)))
}
