package forward

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// deliverAll appends evs and delivers them, one at a time (so in order),
// to recv through the destination of the first (default when none), and
// stops the dispatcher.
func deliverAll(t *testing.T, ob *Outbox, recv *internal, now func() time.Time, evs ...Event) {
	t.Helper()
	srv := startInternal(t, recv)
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Concurrency, o.Now = 1, now
	if len(evs) > 0 {
		o.Destination = evs[0].Destination
	}
	stop := runDispatcher(t, newTestDispatcher(t, o))
	for _, ev := range evs {
		require.NoError(t, ob.Append(t.Context(), ev))
	}
	requireDrained(t, ob)
	stop()
}

// TestRetention_KeepsAndReplaysADeliveredEvent: a delivered event is kept,
// body and history included, and replaying it delivers it again (its
// attempt count starts over), after which it is kept again.
func TestRetention_KeepsAndReplaysADeliveredEvent(t *testing.T) {
	start := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(start)
	clock.SetStep(10 * time.Millisecond) // the retry's backoff ends
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now})
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n == 0 {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	}}
	ev := testEvent("keep", 0)
	deliverAll(t, ob, recv, clock.Now, ev)

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Pending)
	assert.Equal(t, 1, st.Retained)
	assert.Positive(t, st.RetainedBytes)
	kept := listAll(t, ob, StateDelivered)
	require.Len(t, kept, 1)
	assert.Equal(t, ev.ID, kept[0].Event.ID)
	assert.True(t, kept[0].DeliveredAt.After(start) && kept[0].DeliveredAt.Before(clock.Now()))
	e, err := ob.Show(t.Context(), ev.ID)
	require.NoError(t, err)
	assert.Equal(t, StateDelivered, e.State)
	assert.Equal(t, ev.Body, e.Event.Body, "the body is kept")
	require.Len(t, e.History, 2, "the failure and the success")
	assert.Equal(t, http.StatusBadGateway, e.History[0].Status)
	assert.Empty(t, e.History[1].Error)

	// The internal service "lost" it: replay.
	n, err := ob.ReplayDelivered(t.Context(), Filter{Refs: []string{ev.ID}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	deliverAll(t, ob, recv, clock.Now)
	got := recv.deliveries()
	require.Len(t, got, 3)
	assert.Equal(t, ev.Body, got[2].Body)
	assert.Equal(t, "1", got[2].Attempt, "a replay starts the attempt count over")
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Retained, "kept again after its second delivery")
	e, err = ob.Show(t.Context(), ev.ID)
	require.NoError(t, err)
	assert.Len(t, e.History, 3)

	_, err = ob.ReplayDelivered(t.Context(), Filter{Refs: []string{"no-such-event"}})
	assert.ErrorIs(t, err, ErrNotFound)
}

// TestRetention_DroppedBeforeErrFull: retained events fill the room the
// limits leave, and are dropped, oldest delivery first, as new events
// need it: no Append is refused because of them.
func TestRetention_DroppedBeforeErrFull(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))
	clock.SetStep(time.Millisecond)
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now, MaxEvents: 5})
	var delivered []Event
	for i := range 5 {
		delivered = append(delivered, testEvent("old", i))
	}
	deliverAll(t, ob, &internal{}, clock.Now, delivered...)
	st, err := ob.Stats()
	require.NoError(t, err)
	require.Equal(t, 5, st.Retained, "the whole limit holds retained events")

	// Nothing delivers now; three new events come.
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), testEvent("new", i)), "a retained event never causes ErrFull")
	}
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Pending)
	assert.Equal(t, 2, st.Retained)
	kept := listAll(t, ob, StateDelivered)
	require.Len(t, kept, 2)
	assert.Equal(t, delivered[3].ID, kept[0].Event.ID, "the oldest deliveries went first")
	assert.Equal(t, delivered[4].ID, kept[1].Event.ID)

	for i := 3; i < 5; i++ {
		require.NoError(t, ob.Append(t.Context(), testEvent("new", i)))
	}
	require.ErrorIs(t, ob.Append(t.Context(), testEvent("new", 5)), ErrFull, "pending events alone fill it now")
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 5, st.Pending)
	assert.Zero(t, st.Retained)
}

// TestRetention_PrunedByAge: retained events older than RetainDelivered
// go at the next transaction, or, idle, at the next check.
func TestRetention_PrunedByAge(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now, RetainDelivered: time.Hour})
	deliverAll(t, ob, &internal{}, clock.Now, testEvent("age", 0), testEvent("age", 1))
	clock.Advance(30 * time.Minute)
	deliverAll(t, ob, &internal{}, clock.Now, testEvent("age", 2))
	st, err := ob.Stats()
	require.NoError(t, err)
	require.Equal(t, 3, st.Retained)

	clock.Advance(45 * time.Minute) // the first two are 75 min old, the third 45
	require.NoError(t, ob.Append(t.Context(), testEvent("age", 3)))
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Retained)
	kept := listAll(t, ob, StateDelivered)
	require.Len(t, kept, 1)
	assert.Equal(t, testEvent("age", 2).ID, kept[0].Event.ID)

	// Idle: with a short retention on the real clock, the check drops it.
	idle := openTestOutbox(t, OutboxOptions{RetainDelivered: 20 * time.Millisecond})
	deliverAll(t, idle, &internal{}, time.Now, testEvent("idle", 0))
	require.Eventually(t, func() bool {
		st, err := idle.Stats()
		return err == nil && st.Retained == 0
	}, waitFor, tick)
	assert.Empty(t, listAll(t, idle, StateDelivered))
}

// TestRetention_Off keeps nothing, and a reopen with retention off drops
// what an earlier open kept.
func TestRetention_Off(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	deliverAll(t, ob, &internal{}, time.Now, testEvent("off", 0), testEvent("off", 1))
	require.Len(t, listAll(t, ob, StateDelivered), 2)
	require.NoError(t, ob.Close())

	off := openTestOutbox(t, OutboxOptions{Dir: dir, RetainDelivered: -1})
	require.Eventually(t, func() bool { return len(listAll(t, off, StateDelivered)) == 0 }, waitFor, tick)
	deliverAll(t, off, &internal{}, time.Now, testEvent("off", 2))
	st, err := off.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Retained)
	assert.Empty(t, listAll(t, off, StateDelivered))
}

// TestRetention_ReplayCountsAgainstTheShare: replayed events are pending
// again, so only as many as the destination's share holds are replayed
// (a destination's retained events may take more than its share: they
// fill whatever room the limits leave); the rest stay retained and the
// error says so.
func TestRetention_ReplayCountsAgainstTheShare(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{MaxEvents: 4, Destinations: []string{"Group.*"}})
	for i := range 3 {
		deliverAll(t, ob, &internal{}, time.Now, routed("Group.*", i))
	}
	require.Equal(t, 3, destStats(t, ob, "Group.*").Retained)
	require.Equal(t, 2, destStats(t, ob, "Group.*").MaxEvents)

	n, err := ob.ReplayDelivered(t.Context(), Filter{Destination: "Group.*"})
	assert.Equal(t, 2, n)
	require.ErrorIs(t, err, ErrFull)
	assert.NotErrorIs(t, err, ErrNotFound)
	g := destStats(t, ob, "Group.*")
	assert.Equal(t, 2, g.Pending)
	assert.Equal(t, 1, g.Retained)
	kept := listAll(t, ob, StateDelivered)
	require.Len(t, kept, 1)
	assert.Equal(t, routed("Group.*", 2).ID, kept[0].Event.ID, "the lowest sequences are replayed first")
	require.NoError(t, ob.Append(t.Context(), testEvent("default", 0)), "other destinations keep their room")
}
