package forward

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func requireDrained(t *testing.T, ob *Outbox) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := ob.Stats()
		return err == nil && st.Pending == 0 && ob.def.inFlight() == 0
	}, waitFor, tick)
}

func TestDispatcher_AppendThenDeliver(t *testing.T) {
	secret := []byte("a-32-byte-secret-for-the-tests!!")
	recv := &internal{}
	srv := startInternal(t, recv)
	c := newTestClient(t, ClientOptions{URL: srv.URL + "/im", SigningSecret: []byte("whsec_" + base64.StdEncoding.EncodeToString(secret))})
	ob := openTestOutbox(t, OutboxOptions{})
	d := newTestDispatcher(t, fastDispatcher(ob, c))
	runDispatcher(t, d)

	ev := testEvent("e2e", 1)
	require.NoError(t, ob.Append(t.Context(), ev))
	requireDrained(t, ob)

	got := recv.deliveries()
	require.Len(t, got, 1)
	assert.Equal(t, ev.Body, got[0].Body)
	assert.Equal(t, ev.ID, got[0].Header.Get(HeaderEventID))
	assert.Equal(t, ev.RequestID, got[0].Header.Get(HeaderRequestID))
	assert.Equal(t, ev.ReceivedAt.UTC().Format(time.RFC3339Nano), got[0].Header.Get(HeaderReceivedAt))
	assert.Equal(t, "1", got[0].Header.Get(HeaderAttempt))
	verifySignature(t, secret, got[0].Header, got[0].Body)

	s := d.Stats()
	assert.Equal(t, uint64(1), s.Attempts)
	assert.Equal(t, uint64(1), s.Successes)
	assert.Zero(t, s.Failures)
}

func TestDispatcher_InternalURLDownThenUp(t *testing.T) {
	// Reserve a loopback port, then leave it closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c := newTestClient(t, ClientOptions{URL: "http://" + addr + "/hook"})
	ob := openTestOutbox(t, OutboxOptions{})
	d := newTestDispatcher(t, fastDispatcher(ob, c))
	runDispatcher(t, d)

	want := appendConcurrently(t, ob, "down")
	require.Eventually(t, func() bool { return d.Stats().Failures >= 50 }, waitFor, tick, "deliveries fail while the URL is down")
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 200, st.Pending, "nothing is lost while down")

	// Up again on the same address, first answering 500 for a while.
	ln2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n < 40 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}}
	srv := httptest.NewUnstartedServer(recv)
	require.NoError(t, srv.Listener.Close())
	srv.Listener = ln2
	srv.Start()
	t.Cleanup(srv.Close)

	for i := range 50 {
		ev := testEvent("up", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		want = append(want, ev.ID)
	}
	requireDrained(t, ob)

	ok := recv.okByID()
	assert.Len(t, ok, len(want))
	for _, id := range want {
		assert.Equal(t, 1, ok[id], "event %s delivered exactly once", id)
	}
	assert.Equal(t, uint64(len(want)), d.Stats().Successes)
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Dead)
}

func TestDispatcher_RetriesOn500(t *testing.T) {
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	d := newTestDispatcher(t, fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL})))
	runDispatcher(t, d)

	require.NoError(t, ob.Append(t.Context(), testEvent("500", 0)))
	requireDrained(t, ob)
	got := recv.deliveries()
	require.Len(t, got, 4)
	for i, g := range got {
		assert.Equal(t, fmt.Sprint(i+1), g.Attempt, "attempt header counts up")
	}
	s := d.Stats()
	assert.Equal(t, uint64(3), s.Failures)
	assert.Equal(t, uint64(1), s.Successes)
	assert.Contains(t, s.LastError, "500")
}

func TestDispatcher_HonoursRetryAfterOn429(t *testing.T) {
	recv := &internal{respond: func(n int, w http.ResponseWriter, _ *http.Request) int {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	// Backoff alone would retry within milliseconds; Retry-After is capped
	// at BackoffMax, so that is above it.
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BackoffMax = 5 * time.Second
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)

	require.NoError(t, ob.Append(t.Context(), testEvent("429", 0)))
	requireDrained(t, ob)
	got := recv.deliveries()
	require.Len(t, got, 2)
	assert.GreaterOrEqual(t, got[1].At.Sub(got[0].At), time.Second, "waited at least Retry-After")
}

// TestDispatcher_PermanentStatusDeadLettersThenReplayAndPurge: a status
// listed in PermanentStatus dead-letters at its first answer, with its
// error and history; a replayed dead letter is delivered once the
// internal service is fixed, and the rest can be purged.
func TestDispatcher_PermanentStatusDeadLettersThenReplayAndPurge(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		if bad.Load() {
			return http.StatusBadRequest
		}
		return http.StatusOK
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.PermanentStatus = []int{400}
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)

	first, second := testEvent("400", 0), testEvent("400", 1)
	require.NoError(t, ob.Append(t.Context(), first))
	require.NoError(t, ob.Append(t.Context(), second))
	requireDrained(t, ob)

	assert.Len(t, recv.deliveries(), 2, "a permanent failure is not retried")
	dead := listAll(t, ob, StateDead)
	require.Len(t, dead, 2)
	assert.Equal(t, StateDead, dead[0].State)
	assert.Equal(t, 1, dead[0].Attempts)
	assert.Contains(t, dead[0].LastError, "HTTP 400 Bad Request")
	assert.Contains(t, dead[0].LastError, "permanent")
	assert.False(t, dead[0].DeadAt.IsZero())
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 2, st.Dead)
	assert.Positive(t, st.DeadBytes)
	// The counter follows the store's move, so it may lag the outbox by a
	// moment.
	assert.Eventually(t, func() bool { return d.Stats().DeadLettered == 2 }, 5*time.Second, time.Millisecond)

	shown, err := ob.Show(t.Context(), first.ID)
	require.NoError(t, err)
	assert.Equal(t, StateDead, shown.State)
	assert.Equal(t, first.Body, shown.Event.Body)
	require.Len(t, shown.History, 1)
	assert.Equal(t, http.StatusBadRequest, shown.History[0].Status)
	assert.Equal(t, "HTTP 400 Bad Request", shown.History[0].Error)
	assert.Positive(t, shown.History[0].Duration)

	// The internal service is fixed; replay one dead letter.
	bad.Store(false)
	n, err := ob.ReplayDead(t.Context(), Filter{Refs: []string{first.ID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	requireDrained(t, ob)
	assert.Equal(t, 1, recv.okByID()[first.ID])
	assert.Zero(t, recv.okByID()[second.ID])

	n, err = ob.PurgeDead(t.Context(), Filter{})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Dead)
	assert.Zero(t, st.DeadBytes)
	assert.Zero(t, st.Pending)
}

// TestDispatcher_4xxIsRetriedByDefault: a 404 (a mis-routed URL, fixed
// later) no longer dead-letters: the event is retried, its history keeps
// the last HistoryLen attempts, and once the service answers it is
// delivered.
func TestDispatcher_4xxIsRetriedByDefault(t *testing.T) {
	var fixed atomic.Bool
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusNotFound
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.PermanentStatus = []int{410} // listed: only it dead-letters
	d := newTestDispatcher(t, o)
	stop := runDispatcher(t, d)
	ev := testEvent("404", 0)
	require.NoError(t, ob.Append(t.Context(), ev))
	require.Eventually(t, func() bool { return d.Stats().Failures >= HistoryLen+2 }, waitFor, tick)
	stop()

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Dead, "a 404 is retried")
	assert.Equal(t, 1, st.Pending)
	e, err := ob.Show(t.Context(), ev.ID)
	require.NoError(t, err)
	failures := int(d.Stats().Failures)
	assert.Equal(t, failures, e.Attempts)
	require.Len(t, e.History, HistoryLen, "the last attempts only")
	for i, a := range e.History {
		assert.Equal(t, http.StatusNotFound, a.Status)
		assert.Equal(t, "HTTP 404 Not Found", a.Error)
		if i > 0 {
			assert.False(t, a.At.Before(e.History[i-1].At), "oldest first")
		}
	}
	assert.False(t, e.LastAttempt.Before(e.History[HistoryLen-1].At), "the last attempt is the history's last")

	fixed.Store(true)
	runDispatcher(t, newTestDispatcher(t, o))
	requireDrained(t, ob)
	assert.Equal(t, 1, recv.okByID()[ev.ID])
}

func TestNewDispatcher_PermanentStatusMustBeAnError(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	c := newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"})
	for _, code := range []int{200, 302, 399, 600, 0} {
		_, err := NewDispatcher(DispatcherOptions{Outbox: ob, Deliverer: c, PermanentStatus: []int{404, code}})
		assert.ErrorIs(t, err, ErrInvalidOptions, "status %d", code)
	}
}

func TestDispatcher_DeadLettersPastMaxAge(t *testing.T) {
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusInternalServerError }}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Now = func() time.Time { return time.Now().Add(73 * time.Hour) } // default MaxAge is 72h
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)

	require.NoError(t, ob.Append(t.Context(), testEvent("old", 0)))
	requireDrained(t, ob)
	assert.Len(t, recv.deliveries(), 1)
	dead := listAll(t, ob, StateDead)
	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].LastError, "500")
	assert.Contains(t, dead[0].LastError, "max age 72h")
}

func TestDispatcher_DeadLettersAfterMaxAttempts(t *testing.T) {
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusBadGateway }}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.MaxAttempts = 3
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)

	require.NoError(t, ob.Append(t.Context(), testEvent("attempts", 0)))
	requireDrained(t, ob)
	assert.Len(t, recv.deliveries(), 3)
	dead := listAll(t, ob, StateDead)
	require.Len(t, dead, 1)
	assert.Equal(t, 3, dead[0].Attempts)
	assert.Contains(t, dead[0].LastError, "502")
	assert.Contains(t, dead[0].LastError, "after 3 attempts")
}

func TestDispatcher_OldestFirstWithConcurrencyOne(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	var want []string
	for i := range 30 {
		ev := testEvent("fifo", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		want = append(want, ev.ID)
	}
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Concurrency = 1
	runDispatcher(t, newTestDispatcher(t, o))
	requireDrained(t, ob)

	var got []string
	for _, d := range recv.deliveries() {
		got = append(got, d.ID)
	}
	assert.Equal(t, want, got)
}

func TestDispatcher_ConcurrencyIsBounded(t *testing.T) {
	var cur, peak atomic.Int64
	release := make(chan struct{})
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		v := cur.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		<-release
		cur.Add(-1)
		return http.StatusOK
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	for i := range 20 {
		require.NoError(t, ob.Append(t.Context(), testEvent("conc", i)))
	}
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL, MaxConns: 3}))
	o.Concurrency = 3
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)
	require.Eventually(t, func() bool { return cur.Load() == 3 }, waitFor, tick)
	assert.Equal(t, 3, d.Stats().InFlight)
	close(release)
	requireDrained(t, ob)
	assert.Equal(t, int64(3), peak.Load())
}

// With the internal URL down, the outbox fills and then refuses: the
// receiver answers 503 instead of acknowledging and losing.
func TestDispatcher_DownFillsOutboxThenErrFullThenDrains(t *testing.T) {
	var up atomic.Bool
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{MaxEvents: 5})
	d := newTestDispatcher(t, fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL})))
	runDispatcher(t, d)

	for i := range 5 {
		require.NoError(t, ob.Append(t.Context(), testEvent("fill", i)))
	}
	require.Eventually(t, func() bool { return d.Stats().Failures >= 10 }, waitFor, tick)
	require.ErrorIs(t, ob.Append(t.Context(), testEvent("fill", 5)), ErrFull)

	up.Store(true)
	requireDrained(t, ob)
	require.NoError(t, ob.Append(t.Context(), testEvent("fill", 6)))
	requireDrained(t, ob)
	assert.Len(t, recv.okByID(), 6)
}

func TestDispatcher_RestartRespectsPersistedBackoff(t *testing.T) {
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusInternalServerError }}
	srv := startInternal(t, recv)
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir})
	require.NoError(t, err)
	ev := testEvent("persist", 0)
	require.NoError(t, ob.Append(t.Context(), ev))

	o := DispatcherOptions{
		Outbox: ob, Deliverer: newTestClient(t, ClientOptions{URL: srv.URL}),
		BackoffBase: time.Hour, BackoffMax: 2 * time.Hour,
		Rand: func(n int64) int64 { return n - 1 }, // the top of the jitter range
	}
	d := newTestDispatcher(t, o)
	stop := runDispatcher(t, d)
	require.Eventually(t, func() bool { return d.Stats().Failures == 1 && d.Stats().InFlight == 0 }, waitFor, tick)
	require.Eventually(t, func() bool {
		p, err := ob.List(t.Context(), Query{})
		return err == nil && len(p.Entries) == 1 && p.Entries[0].Attempts == 1
	}, waitFor, tick)
	stop()
	require.NoError(t, ob.Close())

	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	list := listAll(t, re, StatePending)
	require.Len(t, list, 1)
	e := list[0]
	assert.Equal(t, 1, e.Attempts)
	assert.Contains(t, e.LastError, "500")
	assert.WithinDuration(t, time.Now().Add(time.Hour), e.NextAttempt, time.Minute)

	_, wait, ok := re.def.claim(time.Now())
	require.False(t, ok, "not due before its next attempt")
	assert.InDelta(t, time.Hour.Seconds(), wait.Seconds(), 60)

	n, err := re.RetryNow(t.Context(), Filter{})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	seq, _, ok := re.def.claim(time.Now())
	require.True(t, ok, "retry-now makes it due now")
	assert.Equal(t, e.Seq, seq)
	l, err := re.loadOne(re.def, seq)
	require.NoError(t, err)
	assert.Equal(t, 1, l.st.Attempts, "retry-now keeps the attempt count")
	assert.True(t, l.st.NextAttempt.IsZero())
}

func TestDispatcher_StopAbandonsInFlightKeepingItPending(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client going away
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.DrainTimeout = -1
	reports := make(chan AttemptReport, 1)
	o.OnAttempt = func(r AttemptReport) { reports <- r }
	d := newTestDispatcher(t, o)
	stop := runDispatcher(t, d)

	require.NoError(t, ob.Append(t.Context(), testEvent("abandon", 0)))
	<-started
	begin := time.Now()
	stop()
	assert.Less(t, time.Since(begin), 5*time.Second)
	r := <-reports
	assert.True(t, r.Abandoned, "the hook says the attempt was cut short")
	assert.Error(t, r.Err)

	list := listAll(t, ob, StatePending)
	require.Len(t, list, 1)
	assert.Zero(t, list[0].Attempts, "an abandoned attempt is not a failure")
	assert.Zero(t, d.Stats().Failures)
	assert.Equal(t, uint64(1), d.Stats().Abandoned)
	assert.Zero(t, ob.def.inFlight())
}

func TestDispatcher_StopLetsInFlightFinish(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		started <- struct{}{}
		<-release
		return http.StatusOK
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	d := newTestDispatcher(t, fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL})))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()

	require.NoError(t, ob.Append(t.Context(), testEvent("finish", 0)))
	<-started
	cancel()
	close(release)
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Pending, "the in-flight delivery finished and was removed")
	assert.Equal(t, uint64(1), d.Stats().Successes)
}

func TestDispatcher_RunTwiceAndClosedOutbox(t *testing.T) {
	srv := startInternal(t, &internal{})
	ob, err := OpenOutbox(OutboxOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	d := newTestDispatcher(t, fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL})))
	errc := make(chan error, 1)
	go func() { errc <- d.Run(t.Context()) }()
	require.Eventually(t, func() bool { return d.running.Load() }, waitFor, tick)
	require.ErrorIs(t, d.Run(t.Context()), ErrRunning)

	require.NoError(t, ob.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(waitFor):
		t.Fatal("Run did not notice the closed outbox")
	}
}

func TestNewDispatcher_RejectsBadOptions(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	c := newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"})
	for name, o := range map[string]DispatcherOptions{
		"no outbox":         {Deliverer: c},
		"no deliverer":      {Outbox: ob},
		"base above max":    {Outbox: ob, Deliverer: c, BackoffBase: time.Hour, BackoffMax: time.Minute},
		"default base, max": {Outbox: ob, Deliverer: c, BackoffMax: time.Millisecond},
	} {
		_, err := NewDispatcher(o)
		assert.ErrorIs(t, err, ErrInvalidOptions, name)
	}
}

func TestDispatcher_BackoffIsCappedFullJitter(t *testing.T) {
	var lastN atomic.Int64
	top := func(n int64) int64 { lastN.Store(n); return n - 1 }
	d := newTestDispatcher(t, DispatcherOptions{
		Outbox: openTestOutbox(t, OutboxOptions{}), Deliverer: newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"}),
		BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second, Rand: top,
	})
	for failures, ceil := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 60: time.Second, 1 << 20: time.Second,
	} {
		assert.Equal(t, ceil, d.backoff(failures, 0), "failures %d", failures)
		assert.Equal(t, int64(ceil)+1, lastN.Load(), "draws from [0, ceiling]")
	}
	d.rand = func(int64) int64 { return 0 }
	assert.Zero(t, d.backoff(3, 0), "full jitter reaches zero")
	assert.Equal(t, 700*time.Millisecond, d.backoff(3, 700*time.Millisecond), "at least Retry-After")
	assert.Equal(t, time.Second, d.backoff(1, time.Hour), "Retry-After capped at BackoffMax")
	d.rand = top
	assert.Equal(t, 400*time.Millisecond, d.backoff(3, 10*time.Millisecond), "backoff wins when longer")
}

func TestDispatcher_LogsNeverCarryBodyOrSecret(t *testing.T) {
	var buf syncBuffer
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusBadRequest
	}}
	srv := startInternal(t, recv)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("topsecretvalue-topsecretvalue!!"))
	ob := openTestOutbox(t, OutboxOptions{Logger: buf.logger()})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL, SigningSecret: []byte(secret)}))
	o.Logger, o.PermanentStatus = buf.logger(), []int{400}
	d := newTestDispatcher(t, o)
	d.warnEvery = 20 * time.Millisecond
	runDispatcher(t, d)
	ev := testEvent("logs", 0)
	require.NoError(t, ob.Append(t.Context(), ev))
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "events dead-lettered") }, waitFor, tick)

	out := buf.String()
	assert.Contains(t, out, ev.ID)
	assert.NotContains(t, out, "friend_0", "no body")
	assert.NotContains(t, out, "topsecretvalue")
	assert.NotContains(t, out, strings.TrimPrefix(secret, "whsec_"))
}
