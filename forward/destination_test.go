package forward

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// routed returns test event i for destination dest, its command in the
// destination's family.
func routed(dest string, i int) Event {
	ev := testEvent(dest, i)
	ev.Destination = dest
	return ev
}

// destStats returns the stats of destination name.
func destStats(t *testing.T, ob *Outbox, name string) DestinationStats {
	t.Helper()
	st, err := ob.Stats()
	require.NoError(t, err)
	i := slicesIndex(st.Destinations, name)
	require.GreaterOrEqual(t, i, 0, "destination %q in stats", name)
	return st.Destinations[i]
}

// TestDestinations_ShareFullRefusesOnlyThatDestination: the limits are
// split equally; when one destination's share is full (its internal
// service down), only its Appends fail with ErrFull, the others keep
// accepting, and a delivery frees its room again.
func TestDestinations_ShareFullRefusesOnlyThatDestination(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{MaxEvents: 10, Destinations: []string{"Group.*", "C2C.*"}})
	assert.Equal(t, []string{"C2C.*", "Group.*", DefaultDestination}, ob.Destinations())
	assert.Equal(t, 4, destStats(t, ob, DefaultDestination).MaxEvents, "the remainder goes to default")
	assert.Equal(t, 3, destStats(t, ob, "Group.*").MaxEvents)
	assert.Equal(t, 3, destStats(t, ob, "C2C.*").MaxEvents)

	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
	}
	err := ob.Append(t.Context(), routed("Group.*", 3))
	require.ErrorIs(t, err, ErrFull)
	assert.ErrorContains(t, err, `destination "Group.*"`)
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), routed("C2C.*", i)), "another destination keeps accepting")
	}
	require.NoError(t, ob.Append(t.Context(), testEvent("default", 0)), "so does the default one")
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 7, st.Pending)
	assert.Equal(t, 3, destStats(t, ob, "Group.*").Pending)

	// Delivering one Group.* event makes room for one more.
	recv := &internal{}
	srv := startInternal(t, recv)
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Destination, o.Concurrency = "Group.*", 1
	stop := runDispatcher(t, newTestDispatcher(t, o))
	require.Eventually(t, func() bool { return destStats(t, ob, "Group.*").Pending == 0 }, waitFor, tick)
	stop()
	require.NoError(t, ob.Append(t.Context(), routed("Group.*", 4)))
	assert.Len(t, recv.okByID(), 3)
}

// TestDestinations_ShareOfBytes: the byte limit is split the same way.
func TestDestinations_ShareOfBytes(t *testing.T) {
	size := int64(len(encodeRecord(routed("Group.*", 0), testEvent("x", 0).ReceivedAt)))
	ob := openTestOutbox(t, OutboxOptions{MaxBytes: 4 * size, Destinations: []string{"Group.*"}})
	for i := range 2 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
	}
	require.ErrorIs(t, ob.Append(t.Context(), routed("Group.*", 2)), ErrFull)
	require.NoError(t, ob.Append(t.Context(), testEvent("default", 0)))
}

// stoppableServer is an internal service on a fixed loopback address
// that can be stopped and started again there.
type stoppableServer struct {
	t    *testing.T
	addr string
	recv *internal
	srv  *httptest.Server
}

func newStoppableServer(t *testing.T, recv *internal) *stoppableServer {
	s := &stoppableServer{t: t, recv: recv}
	s.srv = httptest.NewServer(recv)
	s.addr = s.srv.Listener.Addr().String()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *stoppableServer) url() string { return "http://" + s.addr + "/hook" }

func (s *stoppableServer) stop() { s.srv.Close() }

func (s *stoppableServer) start() {
	ln, err := net.Listen("tcp", s.addr)
	require.NoError(s.t, err)
	s.srv = httptest.NewUnstartedServer(s.recv)
	require.NoError(s.t, s.srv.Listener.Close())
	s.srv.Listener = ln
	s.srv.Start()
}

// TestDestinations_DownOrSlowDestinationDoesNotDelayOthers: with one
// destination's internal service stopped (or answering nothing until
// released), another destination's events, appended at full rate from
// several goroutines, are all delivered meanwhile; once the service is
// back, its own backlog drains too, each event once.
func TestDestinations_DownOrSlowDestinationDoesNotDelayOthers(t *testing.T) {
	for _, mode := range []string{"down", "slow"} {
		t.Run(mode, func(t *testing.T) {
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			groupRecv := &internal{}
			if mode == "slow" {
				groupRecv.respond = func(int, http.ResponseWriter, *http.Request) int {
					<-release
					return http.StatusOK
				}
			}
			group := newStoppableServer(t, groupRecv)
			c2cRecv := &internal{}
			c2c := startInternal(t, c2cRecv)
			if mode == "down" {
				group.stop()
			}

			ob := openTestOutbox(t, OutboxOptions{Destinations: []string{"Group.*", "C2C.*"}})
			for _, d := range []struct{ dest, url string }{{"Group.*", group.url()}, {"C2C.*", c2c.URL}} {
				o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: d.url}))
				o.Destination = d.dest
				runDispatcher(t, newTestDispatcher(t, o))
			}

			const per = 150
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < per; i += 4 {
						assert.NoError(t, ob.Append(context.Background(), routed("Group.*", i)))
						assert.NoError(t, ob.Append(context.Background(), routed("C2C.*", i)))
					}
				})
			}
			wg.Wait()

			require.Eventually(t, func() bool { return len(c2cRecv.okByID()) == per }, waitFor, tick,
				"every C2C.* event is delivered while Group.* is %s", mode)
			assert.Equal(t, 0, destStats(t, ob, "C2C.*").Pending)
			assert.Equal(t, per, destStats(t, ob, "Group.*").Pending, "Group.* keeps its events")
			assert.Empty(t, groupRecv.okByID())

			if mode == "down" {
				group.start()
			} else {
				releaseOnce.Do(func() { close(release) })
			}
			require.Eventually(t, func() bool { return destStats(t, ob, "Group.*").Pending == 0 }, waitFor, tick)
			ok := groupRecv.okByID()
			assert.Len(t, ok, per)
			for id, n := range ok {
				assert.Equal(t, 1, n, "event %s delivered once", id)
			}
			for _, d := range c2cRecv.deliveries() {
				assert.True(t, bytes.Contains(d.Body, []byte(`"From_Account":"C2C.*`)), "only C2C.* events reach C2C.*'s service")
			}
		})
	}
}

// TestDestinations_RemovedRouteDeliversThroughDefault: events stored
// under a destination that is no longer configured are counted against,
// and delivered by, the default destination, with a warning naming the
// destination and how many.
func TestDestinations_RemovedRouteDeliversThroughDefault(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Destinations: []string{"Group.*"}})
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
	}
	require.NoError(t, ob.Close())

	var logs syncBuffer
	re := openTestOutbox(t, OutboxOptions{Dir: dir, Logger: logs.logger()})
	assert.Contains(t, logs.String(), `"msg":"outbox holds events of a destination no longer configured; delivering them through the default destination","destination":"Group.*","pending":3,"dead":0`)
	def := destStats(t, re, DefaultDestination)
	assert.Equal(t, 3, def.Pending)
	assert.Equal(t, 3, def.Rerouted)
	assert.Equal(t, []string{DefaultDestination}, re.Destinations())

	recv := &internal{}
	srv := startInternal(t, recv)
	runDispatcher(t, newTestDispatcher(t, fastDispatcher(re, newTestClient(t, ClientOptions{URL: srv.URL}))))
	requireDrained(t, re)
	assert.Len(t, recv.okByID(), 3)
}

// TestDestinations_ChangedURLRedirectsPendingEvents: the store keeps the
// destination's name, so a Dispatcher built from a new URL for the same
// name delivers what is pending there.
func TestDestinations_ChangedURLRedirectsPendingEvents(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Destinations: []string{"Group.*"}})
	for i := range 5 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
	}
	require.NoError(t, ob.Close())

	re := openTestOutbox(t, OutboxOptions{Dir: dir, Destinations: []string{"Group.*"}})
	moved := &internal{}
	srv := startInternal(t, moved)
	o := fastDispatcher(re, newTestClient(t, ClientOptions{URL: srv.URL + "/new-home"}))
	o.Destination = "Group.*"
	runDispatcher(t, newTestDispatcher(t, o))
	requireDrained(t, re)
	assert.Len(t, moved.okByID(), 5)
	assert.Empty(t, listAll(t, re, StatePending))
}

func TestDestinations_UnknownAndInvalidNames(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{Destinations: []string{"Group.*"}})
	ev := testEvent("nope", 0)
	ev.Destination = "C2C.*"
	err := ob.Append(t.Context(), ev)
	require.ErrorIs(t, err, ErrUnknownDestination)
	assert.ErrorContains(t, err, `"C2C.*"`)
	c := newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"})
	_, err = NewDispatcher(DispatcherOptions{Outbox: ob, Deliverer: c, Destination: "C2C.*"})
	require.ErrorIs(t, err, ErrUnknownDestination)

	for _, dests := range [][]string{{""}, {"Group.*", "Group.*"}, {"https://user:secret@internal.example/hook"}} {
		_, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), Destinations: dests})
		require.ErrorIs(t, err, ErrInvalidOptions, fmt.Sprint(dests))
		assert.NotContains(t, err.Error(), "secret")
	}
	again := openTestOutbox(t, OutboxOptions{Destinations: []string{DefaultDestination, "Group.*"}})
	assert.Equal(t, []string{"Group.*", DefaultDestination}, again.Destinations(), "naming default is allowed")
}

// TestDestinations_OneDispatcherPerDestination: a second Dispatcher of the
// same destination cannot run beside the first; one of another can.
func TestDestinations_OneDispatcherPerDestination(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{Destinations: []string{"Group.*"}})
	srv := startInternal(t, &internal{})
	mk := func(dest string) *Dispatcher {
		o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
		o.Destination = dest
		return newTestDispatcher(t, o)
	}
	first := mk("Group.*")
	runDispatcher(t, first)
	require.Eventually(t, func() bool { return first.running.Load() }, waitFor, tick)
	require.Eventually(t, func() bool { return ob.queues["Group.*"].running.Load() }, waitFor, tick)
	assert.ErrorIs(t, mk("Group.*").Run(t.Context()), ErrRunning)
	other := mk("")
	runDispatcher(t, other)
	require.Eventually(t, func() bool { return other.running.Load() }, waitFor, tick)
	assert.Equal(t, DefaultDestination, other.Stats().Destination)
}
