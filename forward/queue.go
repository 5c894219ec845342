package forward

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// queue is one destination's part of the outbox in memory: its share of
// the limits and what counts against it, its delivery schedule, the
// events kept for their first attempt (fresh), and the channel that wakes
// its Dispatcher. The store holds every event; a queue holds one small
// item per pending event. Its methods are safe for concurrent use.
type queue struct {
	name      string
	maxEvents int   // share of OutboxOptions.MaxEvents
	maxBytes  int64 // share of OutboxOptions.MaxBytes
	wake      chan struct{}
	running   atomic.Bool // a Dispatcher runs on it
	maxFresh  int         // bounds fresh (freshShare)

	mu            sync.Mutex
	pendingN      int
	pendingBytes  int64
	deadN         int
	deadBytes     int64
	retainedN     int
	retainedBytes int64
	rerouted      int // events of destinations no longer configured, counted here
	sched         schedule
	// fresh holds events stored but not yet attempted, as appended, so
	// that their first delivery needs no store read: their journal
	// entries, a pointer each rather than a copy of the event.
	fresh map[uint64]*journalEntry
}

func newQueue(name string, maxEvents int, maxBytes int64, maxFresh int) *queue {
	return &queue{
		name: name, maxEvents: maxEvents, maxBytes: maxBytes, maxFresh: maxFresh,
		wake: make(chan struct{}, 1), sched: newSchedule(), fresh: make(map[uint64]*journalEntry),
	}
}

// maxFresh bounds the fresh events of all queues together: enough for the
// events between their store and their first attempt under load (a
// dispatcher claims at most concurrency × batch at a time); beyond it, and
// for every retry, the dispatcher reads the store (once the applier stored
// the event). About 1 KiB an event.
const maxFresh = 8192

// freshShare is each of n queues' bound on its fresh events: an equal
// share of maxFresh, so that the events of a destination whose service is
// down (which wait in memory) do not take the room of the others, but at
// least minFresh.
func freshShare(n int) int { return max(maxFresh/max(n, 1), minFresh) }

// minFresh is the least a queue may keep fresh.
const minFresh = 1024

// reserve counts a new event of size bytes as pending, or fails with
// ErrFull when the destination's share has no room for it. Dead letters
// count against the share; retained delivered events never do.
func (q *queue) reserve(size int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pendingN+q.deadN+1 > q.maxEvents {
		return fmt.Errorf("storing event for destination %q: %w (%d events stored, its share is %d)", q.name, ErrFull, q.pendingN+q.deadN, q.maxEvents)
	}
	if q.pendingBytes+q.deadBytes+size > q.maxBytes {
		return fmt.Errorf("storing event for destination %q: %w (%d bytes stored, its share is %d)", q.name, ErrFull, q.pendingBytes+q.deadBytes, q.maxBytes)
	}
	q.pendingN++
	q.pendingBytes += size
	return nil
}

// unreserve takes back a reservation whose event was not stored.
func (q *queue) unreserve(size int64) {
	q.mu.Lock()
	q.pendingN--
	q.pendingBytes -= size
	q.mu.Unlock()
}

// signal wakes the queue's Dispatcher; it never blocks.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// claim takes the oldest due pending event for delivery (see
// schedule.take).
func (q *queue) claim(now time.Time) (seq uint64, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sched.take(now)
}

// inFlight returns how many events are claimed.
func (q *queue) inFlight() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sched.inFlight()
}

// requeue ends the flight of seq and schedules it again at at (zero: now).
func (q *queue) requeue(seq uint64, at time.Time) {
	q.mu.Lock()
	q.sched.finish(seq, true, at)
	q.mu.Unlock()
	q.signal()
}

// forget drops a claimed event that is no longer stored.
func (q *queue) forget(seq uint64) {
	q.mu.Lock()
	q.sched.drop(seq)
	q.mu.Unlock()
}

// keepFresh keeps e for its first attempt while there is room. q.mu held.
func (q *queue) keepFresh(e *journalEntry) bool {
	if e.ev.ID == "" || len(q.fresh) >= q.maxFresh {
		return false
	}
	q.fresh[e.Seq] = e
	return true
}

// takeFresh removes and returns seq's fresh entry, if kept.
func (q *queue) takeFresh(seq uint64) (*journalEntry, bool) {
	q.mu.Lock()
	e, ok := q.fresh[seq]
	if ok {
		delete(q.fresh, seq)
	}
	q.mu.Unlock()
	return e, ok
}

// stats returns the queue's counts.
func (q *queue) stats() DestinationStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return DestinationStats{
		Name: q.name, Pending: q.pendingN, PendingBytes: q.pendingBytes, Dead: q.deadN, DeadBytes: q.deadBytes,
		Retained: q.retainedN, RetainedBytes: q.retainedBytes, MaxEvents: q.maxEvents, MaxBytes: q.maxBytes,
		Rerouted: q.rerouted,
	}
}
