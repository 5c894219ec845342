package store

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = berrors.ErrDatabaseNotOpen

// Entry is a journaled record on its way into the store, as the outbox's
// applier hands it over.
type Entry struct {
	Seq uint64     // its journal sequence number, the store's key
	Rec []byte     // EncodeRecord's form
	ID  AcceptedID // the event id and its acceptance time
}

// At returns the entry's acceptance time.
func (e *Entry) At() time.Time { return fromUnixNano(e.ID.at) }

// Done is a delivered event and its successful attempt.
type Done struct {
	Seq      uint64        // the event's sequence number
	At       time.Time     // when the attempt started
	Duration time.Duration // how long it took
}

func (d *Done) attempt() Attempt { return Attempt{At: d.At, Duration: d.Duration} }

// Evict says which retained delivered events an applier transaction
// drops, oldest delivery first: enough to free Events events and Bytes
// bytes, and those delivered before Before (at most MaxAged of those).
type Evict struct {
	Events  int       // events to free; zero or less: none
	Bytes   int64     // bytes to free; zero or less: none
	Before  time.Time // drop deliveries older than it; zero: none
	MaxAged int       // at most this many of those
}

// Apply is one applier transaction.
type Apply struct {
	Entries []*Entry // new records, in sequence order
	// Absorbed lists, in sequence order, events of Entries delivered before
	// they were stored: each is kept as a retained delivered event (when
	// retaining) or only its id is remembered.
	Absorbed []Done
	Done     []Done // stored pending events delivered
	// Retain keeps delivered events (with their history) instead of
	// deleting them.
	Retain bool
	Evict  Evict     // retained events to drop
	Now    time.Time // for pruning accepted ids
}

// Removed is an event an operation took out of one part of the store.
type Removed struct {
	Seq         uint64 // its sequence number
	Destination string // the destination its record names
	Size        int64  // the record's length
}

// Applied is what an Apply changed.
type Applied struct {
	// DoneSizes[i] is the stored size of Done[i]'s record, zero when it was
	// no longer pending.
	DoneSizes []int64
	Evicted   []Removed // retained events dropped
	Pruned    int       // accepted ids pruned
}

// Apply stores a's entries as pending (or, absorbed, as retained or not at
// all) and remembers their ids, moves the journal-applied mark
// to the last of them, removes (or, retaining, moves to the retained
// events) the delivered events of a.Done, and evicts retained events, all
// in one transaction shared with concurrent writes. On error nothing
// changed.
func (s *Store) Apply(a *Apply) (Applied, error) {
	var res Applied
	err := s.update(func(tx *bolt.Tx) error {
		res = Applied{}
		var err error
		if res.DoneSizes, err = s.delivered(tx, a.Done, a.Retain); err != nil {
			return err
		}
		if len(a.Entries) > 0 {
			if err := s.putEntries(tx, a.Entries, a.Absorbed, a.Retain); err != nil {
				return err
			}
			if res.Pruned, err = s.pruneAccepted(tx.Bucket(bucketAccepted), a.Now, len(a.Entries)); err != nil {
				return err
			}
		}
		res.Evicted, err = evict(tx, a.Evict)
		return err
	})
	if err != nil {
		return Applied{}, err
	}
	s.remembered.Add(int64(len(a.Entries) - res.Pruned))
	return res, nil
}

// putEntries stores entries, except those absorbed (which are retained
// when retaining), remembers their ids and moves the journal-applied mark
// to the last of them. Both lists are in sequence order.
func (s *Store) putEntries(tx *bolt.Tx, entries []*Entry, absorbed []Done, retain bool) error {
	p, d := tx.Bucket(bucketPending), tx.Bucket(bucketDelivered)
	for _, e := range entries {
		for len(absorbed) > 0 && absorbed[0].Seq < e.Seq {
			absorbed = absorbed[1:]
		}
		if len(absorbed) == 0 || absorbed[0].Seq != e.Seq {
			if err := p.Put(SeqKey(e.Seq), e.Rec); err != nil {
				return err
			}
			continue
		}
		if !retain {
			continue
		}
		one := [1]Attempt{absorbed[0].attempt()}
		st := State{DeliveredAt: absorbed[0].At, History: one[:]}
		if err := d.Put(deliveredKey(absorbed[0].At, e.Seq), encodeHeld(&st, e.Rec)); err != nil {
			return err
		}
	}
	if err := putAccepted(tx.Bucket(bucketAccepted), entries); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyJournalApplied, SeqKey(entries[len(entries)-1].Seq))
}

// delivered removes the delivered events dones from the pending events
// (keeping them, with their history, when retaining) and returns the
// stored size of each (0: already gone).
func (s *Store) delivered(tx *bolt.Tx, dones []Done, retain bool) ([]int64, error) {
	if len(dones) == 0 {
		return nil, nil
	}
	p, st, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDelivered)
	sizes := make([]int64, len(dones))
	for i, done := range dones {
		k := SeqKey(done.Seq)
		rec := p.Get(k)
		sizes[i] = int64(len(rec))
		if rec != nil && retain {
			var state State
			if sv := st.Get(k); sv != nil {
				state, _ = DecodeState(sv)
			}
			state.AddAttempt(done.attempt())
			state.DeliveredAt, state.NextAttempt = done.At, time.Time{}
			if err := d.Put(deliveredKey(done.At, done.Seq), encodeHeld(&state, rec)); err != nil {
				return nil, err
			}
		}
		if err := p.Delete(k); err != nil {
			return nil, err
		}
		if err := st.Delete(k); err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// evict drops retained events, oldest delivery first, as e says.
func evict(tx *bolt.Tx, e Evict) ([]Removed, error) {
	if e.Events <= 0 && e.Bytes <= 0 && e.Before.IsZero() {
		return nil, nil
	}
	var out []Removed
	var events int
	var bytes int64
	aged := 0
	c := tx.Bucket(bucketDelivered).Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		need := events < e.Events || bytes < e.Bytes
		old := deliveredKeyTime(k).Before(e.Before) && aged < e.MaxAged
		if !need && !old {
			break
		}
		if !need {
			aged++
		}
		rec, _ := heldRecord(v)
		r := Removed{Seq: deliveredKeySeq(k), Destination: destOf(rec), Size: int64(len(rec))}
		if err := c.Delete(); err != nil {
			return nil, err
		}
		events++
		bytes += r.Size
		out = append(out, r)
	}
	return out, nil
}

// PutDirect stores one entry as pending outside the journal (too large for
// it), remembers its id and moves the journal-applied mark to it: the
// caller has had every journaled record before it applied.
func (s *Store) PutDirect(e *Entry, now time.Time) error {
	var pruned int
	err := s.update(func(tx *bolt.Tx) error {
		if err := s.putEntries(tx, []*Entry{e}, nil, false); err != nil {
			return err
		}
		var err error
		pruned, err = s.pruneAccepted(tx.Bucket(bucketAccepted), now, 1)
		return err
	})
	if err != nil {
		return err
	}
	s.remembered.Add(int64(1 - pruned))
	return nil
}

// Recover stores entries found in the journal past the applied mark (a
// crash left them there), in one transaction.
func (s *Store) Recover(entries []*Entry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return s.putEntries(tx, entries, nil, false) })
	if err != nil {
		return fmt.Errorf("applying %d journal records: %w", len(entries), err)
	}
	s.remembered.Add(int64(len(entries)))
	return nil
}

// IsClosed reports whether err says the store was closed.
func IsClosed(err error) bool { return errors.Is(err, berrors.ErrDatabaseNotOpen) }
