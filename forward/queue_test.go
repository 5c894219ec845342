package forward

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueue_ReserveCountsPendingAndDeadNotRetained: a queue refuses an
// event past its share of events or bytes, counting pending events and
// dead letters but never retained ones, and takes back a reservation.
func TestQueue_ReserveCountsPendingAndDeadNotRetained(t *testing.T) {
	q := newQueue("Group.*", 3, 100, 10)
	require.NoError(t, q.reserve(40))
	q.mu.Lock()
	q.deadN, q.deadBytes = 1, 10
	q.retainedN, q.retainedBytes = 50, 5000
	q.mu.Unlock()
	require.NoError(t, q.reserve(40))
	assert.ErrorIs(t, q.reserve(1), ErrFull, "two pending and a dead letter fill three")
	q.unreserve(40)
	assert.ErrorIs(t, q.reserve(51), ErrFull, "40 + 10 + 51 bytes exceed 100")
	require.NoError(t, q.reserve(50))
	s := q.stats()
	assert.Equal(t, DestinationStats{Name: "Group.*", Pending: 2, PendingBytes: 90, Dead: 1, DeadBytes: 10,
		Retained: 50, RetainedBytes: 5000, MaxEvents: 3, MaxBytes: 100}, s)
}

// TestQueue_FreshIsBoundedPerQueue: each queue keeps at most its share of
// events for their first attempt (a destination that is down does not
// take the others' room); each is taken once.
func TestQueue_FreshIsBoundedPerQueue(t *testing.T) {
	assert.Equal(t, maxFresh, freshShare(1))
	assert.Equal(t, maxFresh/4, freshShare(4))
	assert.Equal(t, minFresh, freshShare(100))
	a, b := newQueue("a", 10, 10, 2), newQueue("b", 10, 10, 2)
	entry := func(seq uint64) *journalEntry {
		e := &journalEntry{ev: Event{ID: fmt.Sprint("id", seq)}}
		e.Seq = seq
		return e
	}
	a.mu.Lock()
	assert.True(t, a.keepFresh(entry(1)))
	assert.True(t, a.keepFresh(entry(2)))
	assert.False(t, a.keepFresh(entry(3)), "a's share is full")
	a.mu.Unlock()
	b.mu.Lock()
	assert.True(t, b.keepFresh(entry(4)), "b keeps its own room")
	assert.False(t, b.keepFresh(&journalEntry{}), "a recovered entry has no event to keep")
	b.mu.Unlock()
	got, ok := a.takeFresh(1)
	require.True(t, ok)
	assert.Equal(t, uint64(1), got.Seq)
	_, ok = a.takeFresh(1)
	assert.False(t, ok)
	a.mu.Lock()
	assert.True(t, a.keepFresh(entry(5)), "room again")
	a.mu.Unlock()
}

// TestQueue_ClaimRequeueForget: a claimed event leaves the schedule until
// it is requeued (due at the given time) or forgotten.
func TestQueue_ClaimRequeueForget(t *testing.T) {
	q := newQueue("a", 10, 10, 10)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	q.mu.Lock()
	q.sched.add(7, time.Time{})
	q.sched.add(3, now.Add(time.Minute))
	q.mu.Unlock()
	seq, _, ok := q.claim(now)
	require.True(t, ok)
	assert.Equal(t, uint64(7), seq)
	assert.Equal(t, 1, q.inFlight())
	_, wait, ok := q.claim(now)
	assert.False(t, ok)
	assert.Equal(t, time.Minute, wait)
	q.requeue(7, now.Add(time.Second))
	assert.Zero(t, q.inFlight())
	seq, _, ok = q.claim(now.Add(2 * time.Second))
	require.True(t, ok)
	assert.Equal(t, uint64(7), seq)
	q.forget(7)
	seq, _, ok = q.claim(now.Add(time.Hour))
	require.True(t, ok)
	assert.Equal(t, uint64(3), seq)
	_, _, ok = q.claim(now.Add(time.Hour))
	assert.False(t, ok)
}
