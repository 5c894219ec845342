package egress_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/egress"
)

// manualAfter stands in for time.After: Run reports each delay it asks
// for on asked and wakes when the test sends on fire.
type manualAfter struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newManualAfter() *manualAfter {
	return &manualAfter{asked: make(chan time.Duration), fire: make(chan time.Time)}
}

func (m *manualAfter) after(d time.Duration) <-chan time.Time {
	m.asked <- d
	return m.fire
}

// next waits for Run's next wait and returns its delay.
func (m *manualAfter) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-m.asked:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not schedule its next fetch")
		return 0
	}
}

// Run fetches at once, retries a failure after a jittered, doubling delay
// capped at RetryMax, returns to the interval after a success, and stops
// with its context.
func TestSource_RunSchedulesRetriesAndRefreshes(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
	e.opts.Interval = time.Minute
	e.opts.RetryMin = time.Second
	e.opts.RetryMax = 3 * time.Second
	m := newManualAfter()
	e.opts.After = m.after
	e.im.answer("5", reply{status: 500})
	s := e.source(t)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()

	for i, bounds := range [][2]time.Duration{
		{500 * time.Millisecond, time.Second},
		{time.Second, 2 * time.Second},
		{1500 * time.Millisecond, 3 * time.Second}, // 4s capped at RetryMax
		{1500 * time.Millisecond, 3 * time.Second},
	} {
		d := m.next(t)
		assert.GreaterOrEqual(t, d, bounds[0], "failure %d", i+1)
		assert.LessOrEqual(t, d, bounds[1], "failure %d", i+1)
		st := s.Status()
		assert.Equal(t, i+1, st.ConsecutiveFailures)
		assert.Equal(t, e.clock.Now().Add(d), st.NextAttempt)
		assert.False(t, st.Ready)
		m.fire <- e.clock.Now()
	}

	e.im.answer("5", okReply("10.5.0.0/24"))
	assert.Equal(t, time.Minute, m.next(t), "after a success, the interval")
	st := s.Status()
	assert.True(t, st.Ready)
	assert.Zero(t, st.ConsecutiveFailures)
	assert.Equal(t, uint64(5), st.Refreshes)
	assert.Len(t, e.logs.records(t, "im egress list: retrying"), 4)

	// An empty answer is retried like a failure.
	e.im.answer("5", okReply())
	m.fire <- e.clock.Now()
	d := m.next(t)
	assert.LessOrEqual(t, d, time.Second)
	assert.True(t, s.Contains(addr("10.5.0.1")))

	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	calls, problems := e.im.seen()
	assert.Empty(t, problems)
	assert.Len(t, calls, 6)
}

func TestSource_WaitReadyDuringRun(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("10.5.0.0/24"))
	e.im.answer("6", okReply("10.6.0.0/24"))
	m := newManualAfter()
	e.opts.After = m.after
	s := e.source(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()

	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	require.NoError(t, s.WaitReady(wctx), "the first fetch, at once, makes the source ready")
	assert.True(t, s.Contains(addr("10.6.0.1")))
	assert.Equal(t, egress.DefaultInterval, m.next(t))
	cancel()
	<-done
}
