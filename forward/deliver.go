package forward

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/imedge/imedge/forward/internal/store"
)

// The Dispatcher's side of the outbox: reading claimed events and
// recording the outcome of their attempts.

// loaded is a claimed event read back for delivery.
type loaded struct {
	seq        uint64
	ev         Event
	st         *store.State // nil for a fresh event: never attempted
	acceptedAt time.Time
}

// fromFresh is a fresh entry as delivered from memory: never attempted.
func fromFresh(e *journalEntry) loaded {
	return loaded{seq: e.Seq, ev: e.ev, acceptedAt: e.At()}
}

// loadOne reads a claimed event of q. It returns ErrNotFound when the
// event is no longer pending.
func (o *Outbox) loadOne(q *queue, seq uint64) (loaded, error) {
	if o.closed.Load() {
		return loaded{}, ErrClosed
	}
	if e, ok := q.takeFresh(seq); ok {
		return fromFresh(e), nil
	}
	found, gone, err := o.loadStored([]uint64{seq})
	switch {
	case err != nil:
		return loaded{}, err
	case len(gone) > 0:
		return loaded{}, ErrNotFound
	}
	return found[0], nil
}

// loadClaimed reads claimed events of q, oldest first, in one read
// transaction for those not fresh. Events no longer pending are left out
// and returned in gone.
func (o *Outbox) loadClaimed(q *queue, seqs []uint64) (found []loaded, gone []uint64, err error) {
	if o.closed.Load() {
		return nil, nil, ErrClosed
	}
	found = make([]loaded, 0, len(seqs))
	var stored []uint64 // not fresh: read from the store
	for _, seq := range seqs {
		if e, ok := q.takeFresh(seq); ok {
			found = append(found, fromFresh(e))
		} else {
			stored = append(stored, seq)
		}
	}
	if len(stored) > 0 {
		more, g, err := o.loadStored(stored)
		if err != nil {
			return nil, nil, err
		}
		found, gone = append(found, more...), g
	}
	// Oldest first, as claimed, whichever source an event came from.
	slices.SortFunc(found, func(a, b loaded) int { return cmp.Compare(a.seq, b.seq) })
	return found, gone, nil
}

// loadStored reads pending events from the store.
func (o *Outbox) loadStored(seqs []uint64) (found []loaded, gone []uint64, err error) {
	o.ap.waitSeq(slices.Max(seqs)) // an early event may not be stored yet
	ps, gone, err := o.st.GetPending(seqs)
	if err != nil {
		return nil, nil, err
	}
	found = make([]loaded, len(ps))
	for i := range ps {
		found[i] = loaded{seq: ps[i].Seq, ev: eventOf(&ps[i].Record), st: &ps[i].State, acceptedAt: ps[i].Record.AcceptedAt}
	}
	return found, gone, nil
}

// complete hands delivered events to the applier, which removes them from
// the pending events (or retains them) with its next transaction; they
// stay claimed until then.
func (o *Outbox) complete(d success) {
	o.ap.queueDeletes(d)
}

// state returns l's delivery state, the zero State for a fresh event.
func (l *loaded) state() store.State {
	if l.st == nil {
		return store.State{}
	}
	return *l.st
}

// failedEntry is the outcome of a failed attempt: the event's new state,
// and whether it goes to the dead letters.
type failedEntry struct {
	seq     uint64
	st      store.State
	dead    bool
	retryAt time.Time // when a store error leaves a dead-lettered event pending
}

// settle persists failed attempts of q's events in one transaction: dead
// ones move to the dead letters, the others get their next attempt. It
// reports which were dead-lettered. On a store error nothing changed on
// disk; the events are scheduled again (at their next attempt, or retryAt
// for dead ones).
func (o *Outbox) settle(q *queue, fs []failedEntry) (buried []bool, err error) {
	var last uint64
	for _, f := range fs {
		last = max(last, f.seq)
	}
	o.ap.waitSeq(last) // an event delivered early may not be stored yet
	sf := make([]store.Failure, len(fs))
	for i, f := range fs {
		sf[i] = store.Failure{Seq: f.seq, State: f.st, Dead: f.dead}
	}
	sizes, err := o.st.Fail(sf)
	buried = make([]bool, len(fs))
	q.mu.Lock()
	for i, f := range fs {
		switch {
		case err != nil && f.dead:
			q.sched.finish(f.seq, true, f.retryAt)
		case !f.dead:
			q.sched.finish(f.seq, true, f.st.NextAttempt)
		default:
			if sizes[i] > 0 {
				q.pendingN--
				q.pendingBytes -= sizes[i]
				q.deadN++
				q.deadBytes += sizes[i]
				buried[i] = true
			}
			q.sched.finish(f.seq, false, time.Time{})
		}
	}
	q.mu.Unlock()
	q.signal()
	if err != nil {
		return buried, fmt.Errorf("recording failed attempts: %w", err)
	}
	return buried, nil
}
