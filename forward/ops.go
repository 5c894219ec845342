package forward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imedge/imedge/forward/internal/store"
)

// The operator's methods of Outbox: counts, listing, one event, replay,
// purge and retry. Each waits for the applier first, so it sees every
// event appended so far, and is safe while Dispatchers deliver.

// totals sums the queues' counts.
func (o *Outbox) totals() Stats {
	var s Stats
	for _, q := range o.queueList() {
		d := q.stats()
		s.Pending += d.Pending
		s.PendingBytes += d.PendingBytes
		s.Dead += d.Dead
		s.DeadBytes += d.DeadBytes
		s.Retained += d.Retained
		s.RetainedBytes += d.RetainedBytes
		s.Destinations = append(s.Destinations, d)
	}
	return s
}

// Stats returns the current counts, in total and per destination, and the
// age of the oldest pending event.
func (o *Outbox) Stats() (Stats, error) {
	if o.closed.Load() {
		return Stats{}, ErrClosed
	}
	o.waitApplied()
	s := o.totals()
	s.Remembered = int(o.st.Remembered())
	s.MaxEvents, s.MaxBytes = o.maxEvents, o.maxBytes
	if o.ap != nil {
		s.Absorbed = o.ap.absorbed.Load()
		s.StoreFailing = o.ap.failing()
	}
	s.Unapplied = len(o.unapplied)
	// The oldest pending event of each destination: the first record of
	// it in sequence order.
	want := 0
	for _, d := range s.Destinations {
		if d.Pending > 0 {
			want++
		}
	}
	index := func(name string) int {
		return slices.IndexFunc(s.Destinations, func(d DestinationStats) bool { return d.Name == name })
	}
	found := 0
	err := o.st.OldestPending(func(dest string, at time.Time) bool {
		if s.OldestPending.IsZero() {
			s.OldestPending = at
		}
		if i := index(o.queueFor(dest).name); i >= 0 && s.Destinations[i].OldestPending.IsZero() {
			s.Destinations[i].OldestPending = at
			found++
		}
		return found < want
	})
	if err != nil {
		return s, fmt.Errorf("reading outbox stats: %w", err)
	}
	for _, e := range o.unapplied { // read-only: newer than anything stored
		if s.OldestPending.IsZero() {
			s.OldestPending = e.At()
		}
		if i := index(e.q.name); i >= 0 && s.Destinations[i].OldestPending.IsZero() {
			s.Destinations[i].OldestPending = e.At()
		}
	}
	return s, nil
}

// AcceptedSince calls fn, oldest first (events appended concurrently may
// come a few milliseconds out of order), for every event id accepted at or
// after since that is still remembered (see RememberFor), whether
// delivered or not. It is meant for reloading a dedupe window at start. fn
// runs inside a read transaction and must not call the Outbox.
func (o *Outbox) AcceptedSince(since time.Time, fn func(id string, at time.Time)) error {
	if o.closed.Load() {
		return ErrClosed
	}
	o.waitApplied()
	if err := o.st.AcceptedSince(since, fn); err != nil {
		return fmt.Errorf("reading accepted ids: %w", err)
	}
	return nil
}

// begin checks that an operator method may run, and waits for the
// applier.
func (o *Outbox) begin(ctx context.Context, write bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.closed.Load() {
		return ErrClosed
	}
	if write && o.readOnly {
		return store.ErrReadOnly
	}
	o.waitApplied()
	return nil
}

// List returns one page of the stored events in q.State that match
// q.Filter, in sequence order, without bodies or history. A read-only
// open lists the journal's unapplied records after the stored pending
// events.
func (o *Outbox) List(ctx context.Context, q Query) (Page, error) {
	if err := o.begin(ctx, false); err != nil {
		return Page{}, fmt.Errorf("listing outbox: %w", err)
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	state := q.State
	if state == "" {
		state = StatePending
	}
	f := store.Filter(q.Filter)
	items, more, err := o.st.List(state.kind(), &f, q.After, limit)
	if err != nil {
		return Page{}, fmt.Errorf("listing outbox: %w", err)
	}
	var p Page
	for i := range items {
		p.Entries = append(p.Entries, entryOf(&items[i], false))
	}
	if state == StatePending && !more && len(o.unapplied) > 0 {
		more, err = o.listUnapplied(&p, &f, q.After, limit)
		if err != nil {
			return Page{}, fmt.Errorf("listing outbox: %w", err)
		}
	}
	if more && len(p.Entries) > 0 {
		p.Next = p.Entries[len(p.Entries)-1].Seq
	}
	return p, nil
}

// listUnapplied adds the journal's unapplied records that match f to p
// (read-only opens).
func (o *Outbox) listUnapplied(p *Page, f *store.Filter, after uint64, limit int) (more bool, err error) {
	for _, e := range o.unapplied {
		if e.Seq <= after {
			continue
		}
		it, ok, err := unappliedItem(e, f, false)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		if limit > 0 && len(p.Entries) >= limit {
			return true, nil
		}
		p.Entries = append(p.Entries, entryOf(&it, false))
	}
	return false, nil
}

// unappliedItem describes an unapplied journal record as a pending item,
// if it matches f.
func unappliedItem(e *journalEntry, f *store.Filter, withBody bool) (store.Item, bool, error) {
	r, bodySize, err := store.DecodeRecord(e.Rec, withBody)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("journal record %d: %w", e.Seq, err)
	}
	if !store.MatchFilter(f, e.Seq, &r) {
		return store.Item{}, false, nil
	}
	return store.Item{Kind: store.KindPending, Seq: e.Seq, Record: r, BodySize: bodySize, Size: len(e.Rec)}, true, nil
}

// Show returns the entry named by ref, body and attempt history included:
// ref is an event id or a sequence number in decimal. Pending entries are
// searched before dead ones, then retained delivered ones, each oldest
// first. It returns an error wrapping ErrNotFound when nothing matches.
func (o *Outbox) Show(ctx context.Context, ref string) (Entry, error) {
	if err := o.begin(ctx, false); err != nil {
		return Entry{}, fmt.Errorf("showing %q: %w", ref, err)
	}
	it, err := o.st.Find(ref)
	if errors.Is(err, store.ErrNotFound) {
		f := store.Filter{Refs: []string{ref}}
		for _, e := range o.unapplied {
			u, ok, uerr := unappliedItem(e, &f, true)
			if uerr != nil {
				return Entry{}, fmt.Errorf("showing %q: %w", ref, uerr)
			}
			if ok {
				return entryOf(&u, true), nil
			}
		}
	}
	if err != nil {
		return Entry{}, fmt.Errorf("showing %q: %w", ref, err)
	}
	return entryOf(&it, true), nil
}

// notFound returns an error wrapping ErrNotFound for each ref that
// matched nothing, joined; nil when every ref matched.
func notFound(op string, refs []string, matched []bool) error {
	var missing []error
	for i, ok := range matched {
		if !ok {
			missing = append(missing, fmt.Errorf("%s %q: %w", op, refs[i], ErrNotFound))
		}
	}
	return errors.Join(missing...)
}

// ReplayDead moves the dead letters that match f (all of them for the
// zero Filter) back to their destinations' queues, due now with a fresh
// attempt count; their history stays. It returns how many it moved; refs
// that match no dead letter are reported in an error wrapping ErrNotFound,
// after the others were replayed.
func (o *Outbox) ReplayDead(ctx context.Context, f Filter) (int, error) {
	if err := o.begin(ctx, true); err != nil {
		return 0, fmt.Errorf("replaying dead letters: %w", err)
	}
	sf := store.Filter(f)
	moved, matched, err := o.st.ReplayDead(&sf)
	if err != nil {
		return 0, fmt.Errorf("replaying dead letters: %w", err)
	}
	for _, m := range moved {
		q := o.queueFor(m.Destination)
		q.mu.Lock()
		q.deadN--
		q.deadBytes -= m.Size
		q.pendingN++
		q.pendingBytes += m.Size
		q.sched.add(m.Seq, time.Time{})
		q.mu.Unlock()
		q.signal()
	}
	return len(moved), notFound("replaying", f.Refs, matched)
}

// PurgeDead deletes the dead letters that match f (all of them for the
// zero Filter) and returns how many it deleted; refs that match no dead
// letter are reported in an error wrapping ErrNotFound.
func (o *Outbox) PurgeDead(ctx context.Context, f Filter) (int, error) {
	if err := o.begin(ctx, true); err != nil {
		return 0, fmt.Errorf("purging dead letters: %w", err)
	}
	sf := store.Filter(f)
	removed, matched, err := o.st.PurgeDead(&sf)
	if err != nil {
		return 0, fmt.Errorf("purging dead letters: %w", err)
	}
	for _, r := range removed {
		q := o.queueFor(r.Destination)
		q.mu.Lock()
		q.deadN--
		q.deadBytes -= r.Size
		q.mu.Unlock()
	}
	return len(removed), notFound("purging", f.Refs, matched)
}

// RetryNow makes the pending events that match f due now, ending their
// backoff; their attempt count and history stay (so MaxAttempts still
// applies). Events in flight are left to their attempt. It returns how
// many pending events matched; refs that match no pending event are
// reported in an error wrapping ErrNotFound.
func (o *Outbox) RetryNow(ctx context.Context, f Filter) (int, error) {
	if err := o.begin(ctx, true); err != nil {
		return 0, fmt.Errorf("retrying pending events: %w", err)
	}
	sf := store.Filter(f)
	due, matched, err := o.st.RetryNow(&sf)
	if err != nil {
		return 0, fmt.Errorf("retrying pending events: %w", err)
	}
	for _, d := range due {
		q := o.queueFor(d.Destination)
		q.mu.Lock()
		promoted := q.sched.promote(d.Seq)
		q.mu.Unlock()
		if promoted {
			q.signal()
		}
	}
	return len(due), notFound("retrying", f.Refs, matched)
}

// ReplayDelivered moves the retained delivered events that match f back
// to their destinations' queues, due now with a fresh attempt count, so
// they are delivered again (their history stays). Each counts against its
// destination's share again: those that do not fit stay retained and are
// reported in an error wrapping ErrFull. It returns how many it moved;
// refs that match no retained event are reported in an error wrapping
// ErrNotFound.
func (o *Outbox) ReplayDelivered(ctx context.Context, f Filter) (int, error) {
	if err := o.begin(ctx, true); err != nil {
		return 0, fmt.Errorf("replaying delivered events: %w", err)
	}
	sf := store.Filter(f)
	held, matched, err := o.st.SelectDelivered(&sf)
	if err != nil {
		return 0, fmt.Errorf("replaying delivered events: %w", err)
	}
	var fits []store.Held
	var full []error
	for _, h := range held {
		if err := o.queueFor(h.Destination).reserve(h.Size); err != nil {
			full = append(full, fmt.Errorf("replaying event %d: %w", h.Seq, err))
			continue
		}
		fits = append(fits, h)
	}
	moved, err := o.st.MoveDelivered(fits)
	if err != nil {
		for _, h := range fits {
			o.queueFor(h.Destination).unreserve(h.Size)
		}
		return 0, fmt.Errorf("replaying delivered events: %w", err)
	}
	wasMoved := make(map[uint64]bool, len(moved))
	for _, m := range moved {
		wasMoved[m.Seq] = true
	}
	for _, h := range fits {
		q := o.queueFor(h.Destination)
		if !wasMoved[h.Seq] {
			q.unreserve(h.Size) // dropped since selected
			continue
		}
		q.mu.Lock()
		q.retainedN--
		q.retainedBytes -= h.Size
		q.sched.add(h.Seq, time.Time{})
		q.mu.Unlock()
		q.signal()
	}
	return len(moved), errors.Join(append(full, notFound("replaying", f.Refs, matched))...)
}
