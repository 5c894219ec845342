package forward

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/internal/testkit"
)

// TestOps_ListFiltersAndPages lists pending events by destination,
// command (exact and family), acceptance time and refs, a page at a time
// following Next; bodies and history are left out.
func TestOps_ListFiltersAndPages(t *testing.T) {
	start := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(start)
	clock.SetStep(time.Minute)
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now, Destinations: []string{"Group.*", "C2C.*"}})
	var evs []Event
	for i := range 12 {
		ev := routed([]string{"Group.*", "C2C.*", DefaultDestination}[i%3], i)
		ev.Command = []string{"Group.CallbackAfterSendMsg", "C2C.CallbackAfterSendMsg", "Sns.CallbackFriendDelete"}[i%3]
		require.NoError(t, ob.Append(t.Context(), ev))
		evs = append(evs, ev)
	}

	page := func(q Query) Page {
		p, err := ob.List(t.Context(), q)
		require.NoError(t, err)
		for _, e := range p.Entries {
			assert.Nil(t, e.Event.Body)
			assert.Nil(t, e.History)
		}
		return p
	}
	ids := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Event.ID)
		}
		return out
	}
	// Pages of two through the Group.* events.
	var got []Entry
	q := Query{Filter: Filter{Destination: "Group.*"}, Limit: 2}
	for range 10 {
		p := page(q)
		got = append(got, p.Entries...)
		if p.Next == 0 {
			break
		}
		q.After = p.Next
	}
	assert.Equal(t, []string{evs[0].ID, evs[3].ID, evs[6].ID, evs[9].ID}, ids(got))

	assert.Equal(t, []string{evs[1].ID, evs[4].ID, evs[7].ID, evs[10].ID}, ids(page(Query{Filter: Filter{Command: "C2C.*"}}).Entries))
	assert.Equal(t, []string{evs[2].ID}, ids(page(Query{Filter: Filter{Command: "Sns.CallbackFriendDelete", To: start.Add(4 * time.Minute)}}).Entries))
	window := page(Query{Filter: Filter{From: start.Add(3 * time.Minute), To: start.Add(6 * time.Minute)}})
	assert.Equal(t, []string{evs[2].ID, evs[3].ID, evs[4].ID}, ids(window.Entries), "acceptance times are 1 min apart from start+1m")
	assert.Equal(t, []string{evs[5].ID}, ids(page(Query{Filter: Filter{Refs: []string{evs[5].ID}}}).Entries))
	assert.Len(t, page(Query{}).Entries, 12)
	assert.Zero(t, page(Query{}).Next, "one page holds them all")
	assert.Empty(t, page(Query{State: StateDead}).Entries)
	assert.Empty(t, page(Query{State: StateDelivered}).Entries)

	e, err := ob.Show(t.Context(), strconv.FormatUint(got[1].Seq, 10))
	require.NoError(t, err)
	assert.Equal(t, evs[3].Body, e.Event.Body)
	assert.Equal(t, "Group.*", e.Event.Destination)
}

// TestOps_WhileRunning: on an outbox whose dispatchers deliver and whose
// callbacks keep arriving, an operator retries waiting events now, purges
// and replays dead letters and lists them, and every callback is still
// accepted; in the end every event is delivered once and nothing is
// counted twice.
func TestOps_WhileRunning(t *testing.T) {
	var groupUp, c2cUp atomic.Bool
	groupRecv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		if groupUp.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}}
	c2cRecv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int {
		if c2cUp.Load() {
			return http.StatusOK
		}
		return http.StatusUnprocessableEntity
	}}
	defRecv := &internal{}
	ob := openTestOutbox(t, OutboxOptions{Destinations: []string{"Group.*", "C2C.*"}})
	for _, d := range []struct {
		dest string
		recv *internal
	}{{"Group.*", groupRecv}, {"C2C.*", c2cRecv}, {DefaultDestination, defRecv}} {
		o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: startInternal(t, d.recv).URL}))
		o.Destination, o.PermanentStatus = d.dest, []int{http.StatusUnprocessableEntity}
		if d.dest == "Group.*" {
			o.BackoffBase, o.BackoffMax = time.Hour, 2*time.Hour // failed events wait
		}
		runDispatcher(t, newTestDispatcher(t, o))
	}

	// Callbacks keep arriving for the default destination throughout.
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	var sent atomic.Int64
	load.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			default:
			}
			if !assert.NoError(t, ob.Append(context.Background(), testEvent("steady", i))) {
				return
			}
			sent.Add(1)
		}
	})

	for i := range 10 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
		require.NoError(t, ob.Append(t.Context(), routed("C2C.*", i)))
	}
	require.Eventually(t, func() bool { return destStats(t, ob, "C2C.*").Dead == 10 }, waitFor, tick, "422 dead-letters")
	require.Eventually(t, func() bool {
		p, err := ob.List(t.Context(), Query{Filter: Filter{Destination: "Group.*"}})
		if err != nil || len(p.Entries) != 10 {
			return false
		}
		for _, e := range p.Entries {
			if e.Attempts == 0 {
				return false
			}
		}
		return true
	}, waitFor, tick, "every Group.* event failed once and waits an hour")

	dead, err := ob.List(t.Context(), Query{State: StateDead, Filter: Filter{Destination: "C2C.*"}})
	require.NoError(t, err)
	require.Len(t, dead.Entries, 10)
	n, err := ob.PurgeDead(t.Context(), Filter{Refs: []string{dead.Entries[0].Event.ID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	c2cUp.Store(true)
	n, err = ob.ReplayDead(t.Context(), Filter{Command: "Sns.*", Destination: "C2C.*"})
	require.NoError(t, err)
	assert.Equal(t, 9, n)
	groupUp.Store(true)
	n, err = ob.RetryNow(t.Context(), Filter{Destination: "Group.*"})
	require.NoError(t, err)
	assert.Equal(t, 10, n)

	require.Eventually(t, func() bool {
		return len(groupRecv.okByID()) == 10 && len(c2cRecv.okByID()) == 9
	}, waitFor, tick, "retried and replayed events are delivered")
	close(stopLoad)
	load.Wait()
	require.Eventually(t, func() bool {
		st, err := ob.Stats()
		return err == nil && st.Pending == 0
	}, waitFor, tick)
	assert.Equal(t, int(sent.Load()), len(defRecv.okByID()), "every steady callback delivered")
	for _, r := range []*internal{groupRecv, c2cRecv, defRecv} {
		for id, n := range r.okByID() {
			assert.Equal(t, 1, n, "event %s delivered once", id)
		}
	}
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Dead)
	assert.Equal(t, int(sent.Load())+19, st.Retained, "every delivered event is retained, once")
}

// TestOps_ReadOnlyOpenLooksButDoesNotTouch: a read-only open (a stopped
// instance's inspection) counts and lists, and refuses every change.
func TestOps_ReadOnlyOpenLooksButDoesNotTouch(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Destinations: []string{"Group.*"}})
	require.NoError(t, ob.Append(t.Context(), routed("Group.*", 0)))
	require.NoError(t, ob.Append(t.Context(), testEvent("ro", 1)))
	require.NoError(t, ob.Close())

	ro := openTestOutbox(t, OutboxOptions{Dir: dir, ReadOnly: true})
	assert.Equal(t, []string{"Group.*", DefaultDestination}, ro.Destinations(), "stored destinations, as found")
	assert.Equal(t, 1, destStats(t, ro, "Group.*").Pending)
	assert.Len(t, listAll(t, ro, StatePending), 2)
	for name, op := range map[string]func(context.Context, Filter) (int, error){
		"replay dead": ro.ReplayDead, "replay delivered": ro.ReplayDelivered, "purge": ro.PurgeDead, "retry": ro.RetryNow,
	} {
		_, err := op(t.Context(), Filter{})
		assert.ErrorIs(t, err, berrors.ErrDatabaseReadOnly, name)
	}
	_, err := NewDispatcher(DispatcherOptions{Outbox: ro, Deliverer: newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"})})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}
