package forward

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDispatcher_UnreachableURLPausesAttempts: while the internal URL
// refuses connections, the dispatcher does not try every pending event
// against it (each try costs a dial and an outbox write); it probes with a
// growing pause, and once the URL is back everything drains.
func TestDispatcher_UnreachableURLPausesAttempts(t *testing.T) {
	for _, batch := range []int{0, 16} {
		t.Run("batch="+strconv.Itoa(batch), func(t *testing.T) {
			// Down: every connection is accepted (and counted) and closed
			// at once, so no attempt gets an answer.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := ln.Addr().String()
			var conns atomic.Int64
			acceptDone := make(chan struct{})
			go func() {
				defer close(acceptDone)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					conns.Add(1)
					c.Close()
				}
			}()

			logs := &syncBuffer{}
			ob := openTestOutbox(t, OutboxOptions{})
			o := DispatcherOptions{Outbox: ob, Deliverer: newTestClient(t, ClientOptions{URL: "http://" + addr + "/hook"}),
				BackoffBase: 50 * time.Millisecond, BackoffMax: 5 * time.Second, Logger: logs.logger(), BatchSize: batch}
			d := newTestDispatcher(t, o)
			for i := range 200 {
				require.NoError(t, ob.Append(t.Context(), testEvent("pause", i)))
			}
			runDispatcher(t, d)
			require.Eventually(t, func() bool { return !d.Stats().PausedUntil.IsZero() }, waitFor, tick, "the dispatcher pauses")
			paused := d.Stats().Failures
			require.Eventually(t, func() bool { return d.Stats().Failures >= paused+3 }, waitFor, tick, "it probes a few times")

			// Per-event backoff alone would have tried each of the 200 events
			// (or 13 batches) again and again (a first attempt each at once,
			// then each again within its 50 ms, 100 ms, ... backoff); paused,
			// a few probes per pause fail.
			assert.Less(t, conns.Load(), int64(40), "connections while down")
			assert.Positive(t, d.Stats().Failures)
			assert.Equal(t, 1, strings.Count(logs.String(), "internal URL unreachable"), "one warning per outage")

			// Up again on the same address: the next probe succeeds and the
			// backlog drains.
			require.NoError(t, ln.Close())
			<-acceptDone
			ln2, err := net.Listen("tcp", addr)
			require.NoError(t, err)
			recv := &internal{}
			srv := httptest.NewUnstartedServer(recv)
			require.NoError(t, srv.Listener.Close())
			srv.Listener = ln2
			srv.Start()
			t.Cleanup(srv.Close)
			requireDrained(t, ob)
			assert.True(t, d.Stats().PausedUntil.IsZero(), "the pause ends with an answer")
			assert.Contains(t, logs.String(), "internal URL reachable again")
			ids := map[string]bool{}
			for _, dl := range recv.deliveries() {
				if batch == 0 {
					ids[dl.ID] = true
					continue
				}
				for _, e := range decodeBatch(t, dl) {
					ids[e.ID] = true
				}
			}
			assert.Len(t, ids, 200)
		})
	}
}

// An answered failure (here 500) is a failure of the event, not an outage:
// it does not pause the other deliveries.
func TestDispatcher_AnsweredFailuresDoNotPause(t *testing.T) {
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusInternalServerError }}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.MaxAttempts = 3
	d := newTestDispatcher(t, o)
	for i := range 20 {
		require.NoError(t, ob.Append(t.Context(), testEvent("500", i)))
	}
	runDispatcher(t, d)
	requireDrained(t, ob)
	assert.Len(t, recv.deliveries(), 60, "every event had its three attempts")
	assert.True(t, d.Stats().PausedUntil.IsZero())
}
