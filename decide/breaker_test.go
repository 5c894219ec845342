package decide

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBreaker_OpensAfterConsecutiveFailures(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &breaker{threshold: 3, coolDown: time.Second}
	fail := func(at time.Time) transition {
		tk, ok := b.allow(at)
		require.True(t, ok)
		return b.report(tk, false, at)
	}
	fail(t0)
	fail(t0)
	tk, _ := b.allow(t0)
	b.report(tk, true, t0) // a success resets the count
	assert.Equal(t, 0, b.stats().fails)
	fail(t0)
	fail(t0)
	assert.Equal(t, opened, fail(t0), "three in a row")
	assert.Equal(t, Open, b.stats().state)
	assert.Equal(t, uint64(1), b.stats().opens)

	_, ok := b.allow(t0.Add(999 * time.Millisecond))
	assert.False(t, ok, "open: no call during the cool-down")
}

func TestBreaker_OneTrialAfterCoolDown(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &breaker{threshold: 1, coolDown: time.Second}
	tk, _ := b.allow(t0)
	b.report(tk, false, t0)
	require.Equal(t, Open, b.stats().state)

	late, ok := b.allow(t0.Add(time.Second))
	require.True(t, ok, "the cool-down has passed: one trial")
	assert.True(t, late.trial)
	assert.Equal(t, HalfOpen, b.stats().state)
	_, ok = b.allow(t0.Add(2 * time.Second))
	assert.False(t, ok, "one trial at a time")

	assert.Equal(t, reopened, b.report(late, false, t0.Add(3*time.Second)), "a failed trial opens it again")
	assert.Equal(t, Open, b.stats().state)
	_, ok = b.allow(t0.Add(3*time.Second + 500*time.Millisecond))
	assert.False(t, ok, "for another cool-down, counted from the failed trial")
	assert.Equal(t, uint64(1), b.stats().opens, "re-opening is not a new opening")

	trial, ok := b.allow(t0.Add(4 * time.Second))
	require.True(t, ok)
	assert.Equal(t, closed, b.report(trial, true, t0.Add(4*time.Second)), "a successful trial closes it")
	assert.Equal(t, Closed, b.stats().state)
	_, ok = b.allow(t0.Add(4 * time.Second))
	assert.True(t, ok)
}

func TestBreaker_LateResultsDoNotMoveIt(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &breaker{threshold: 2, coolDown: time.Second}
	slow, _ := b.allow(t0) // admitted while closed, ends after it opened
	for range 2 {
		tk, _ := b.allow(t0)
		b.report(tk, false, t0)
	}
	require.Equal(t, Open, b.stats().state)
	assert.Equal(t, unchanged, b.report(slow, true, t0))
	assert.Equal(t, Open, b.stats().state, "only the trial closes the circuit")
}

func TestState_String(t *testing.T) {
	assert.Equal(t, "closed", Closed.String())
	assert.Equal(t, "open", Open.String())
	assert.Equal(t, "half_open", HalfOpen.String())
	assert.Equal(t, "invalid", State(9).String())
}
