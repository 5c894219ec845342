package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The operator's writes below run in transactions of their own (not
// shared through the group commit): each is rare, and may scan.

// ReplayDead moves the dead letters that match f back to the pending
// events, due now with a fresh attempt count (their history and last
// error stay), and returns them; matched[i] says whether f.Refs[i] matched
// a dead letter.
func (s *Store) ReplayDead(f *Filter) (moved []Removed, matched []bool, err error) {
	m := newMatcher(f)
	err = s.db.Update(func(tx *bolt.Tx) error {
		moved = moved[:0]
		m.reset()
		p, sb, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDead)
		err := s.each(tx, KindDead, 0, func(seq uint64, _, rec []byte, st func() State) (bool, error) {
			r, _, err := DecodeRecord(rec, false)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", seq, err)
			}
			if !m.match(seq, &r) {
				return true, nil
			}
			moved = append(moved, Removed{Seq: seq, Destination: r.Destination, Size: int64(len(rec))})
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, r := range moved {
			k := SeqKey(r.Seq)
			st, rec, err := splitHeld(d.Get(k))
			if err != nil {
				return fmt.Errorf("entry %d: %w", r.Seq, err)
			}
			if err := p.Put(k, append([]byte{}, rec...)); err != nil {
				return err
			}
			if err := sb.Put(k, EncodeState(requeued(st))); err != nil {
				return err
			}
			if err := d.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return moved, m.matched, nil
}

// requeued is st for an event made pending again: due now, with a fresh
// attempt count, keeping its history and last error.
func requeued(st State) State {
	st.Attempts = 0
	st.NextAttempt, st.DeadAt, st.DeliveredAt = time.Time{}, time.Time{}, time.Time{}
	return st
}

// PurgeDead deletes the dead letters that match f and returns them;
// matched is as for ReplayDead.
func (s *Store) PurgeDead(f *Filter) (removed []Removed, matched []bool, err error) {
	m := newMatcher(f)
	err = s.db.Update(func(tx *bolt.Tx) error {
		removed = removed[:0]
		m.reset()
		var keys [][]byte
		err := s.each(tx, KindDead, 0, func(seq uint64, k, rec []byte, _ func() State) (bool, error) {
			r, _, err := DecodeRecord(rec, false)
			if err != nil {
				// A dead letter that does not parse matches only an
				// unfiltered purge.
				if !f.IsZero() {
					return true, nil
				}
				r = Record{Destination: DefaultDestination}
			} else if !m.match(seq, &r) {
				return true, nil
			}
			keys = append(keys, append([]byte{}, k...))
			removed = append(removed, Removed{Seq: seq, Destination: r.Destination, Size: int64(len(rec))})
			return true, nil
		})
		if err != nil {
			return err
		}
		d := tx.Bucket(bucketDead)
		for _, k := range keys {
			if err := d.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return removed, m.matched, nil
}

// RetryNow makes the pending events that match f due now (their attempt
// count and history stay) and returns them; matched is as for ReplayDead.
func (s *Store) RetryNow(f *Filter) (due []Removed, matched []bool, err error) {
	m := newMatcher(f)
	err = s.db.Update(func(tx *bolt.Tx) error {
		due = due[:0]
		m.reset()
		sb := tx.Bucket(bucketState)
		var waiting []uint64
		err := s.each(tx, KindPending, 0, func(seq uint64, _, rec []byte, st func() State) (bool, error) {
			r, _, err := DecodeRecord(rec, false)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", seq, err)
			}
			if !m.match(seq, &r) {
				return true, nil
			}
			due = append(due, Removed{Seq: seq, Destination: r.Destination, Size: int64(len(rec))})
			if !st().NextAttempt.IsZero() {
				waiting = append(waiting, seq)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, seq := range waiting {
			k := SeqKey(seq)
			st, err := DecodeState(sb.Get(k))
			if err != nil {
				continue
			}
			st.NextAttempt = time.Time{}
			if err := sb.Put(k, EncodeState(st)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return due, m.matched, nil
}

// Held is a retained delivered event selected for replay.
type Held struct {
	Removed
	key []byte
}

// SelectDelivered returns the retained delivered events that match f, in
// sequence order, for MoveDelivered; matched is as for ReplayDead.
func (s *Store) SelectDelivered(f *Filter) (held []Held, matched []bool, err error) {
	items, _, err := s.List(KindDelivered, f, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	m := newMatcher(f)
	for _, it := range items {
		m.match(it.Seq, &it.Record)
		held = append(held, Held{
			Removed: Removed{Seq: it.Seq, Destination: it.Record.Destination, Size: int64(it.Size)},
			key:     deliveredKey(it.State.DeliveredAt, it.Seq),
		})
	}
	return held, m.matched, nil
}

// MoveDelivered moves the selected retained events back to the pending
// events, due now with a fresh attempt count (their history stays), and
// returns those it moved: one dropped since it was selected is left out.
func (s *Store) MoveDelivered(held []Held) (moved []Removed, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		moved = moved[:0]
		p, sb, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDelivered)
		for _, h := range held {
			v := d.Get(h.key)
			if v == nil {
				continue
			}
			st, rec, err := splitHeld(v)
			if err != nil {
				return fmt.Errorf("entry %d: %w", h.Seq, err)
			}
			k := SeqKey(h.Seq)
			if err := p.Put(k, append([]byte{}, rec...)); err != nil {
				return err
			}
			if err := sb.Put(k, EncodeState(requeued(st))); err != nil {
				return err
			}
			if err := d.Delete(h.key); err != nil {
				return err
			}
			moved = append(moved, h.Removed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}
