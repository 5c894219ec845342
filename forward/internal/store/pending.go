package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Pending is a pending event read back for delivery.
type Pending struct {
	Seq    uint64 // its sequence number
	Record Record // with its body
	State  State  // its delivery state; zero before a failed attempt
}

// GetPending reads the pending events seqs, in the order given, with
// their bodies and states, in one read transaction. Those no longer
// pending are returned in gone.
func (s *Store) GetPending(seqs []uint64) (found []Pending, gone []uint64, err error) {
	found = make([]Pending, 0, len(seqs))
	err = s.db.View(func(tx *bolt.Tx) error {
		p, st := tx.Bucket(bucketPending), tx.Bucket(bucketState)
		for _, seq := range seqs {
			k := SeqKey(seq)
			v := p.Get(k)
			if v == nil {
				gone = append(gone, seq)
				continue
			}
			e := Pending{Seq: seq}
			var derr error
			if e.Record, _, derr = DecodeRecord(v, true); derr != nil {
				return fmt.Errorf("entry %d: %w", seq, derr)
			}
			if sv := st.Get(k); sv != nil {
				e.State, _ = DecodeState(sv)
			}
			found = append(found, e)
		}
		return nil
	})
	return found, gone, err
}

// Failure is the outcome of a failed attempt to persist: the event's new
// state, and whether it goes to the dead letters.
type Failure struct {
	Seq   uint64 // the event's sequence number
	State State  // its new state, the failed attempt in its history
	Dead  bool   // move it to the dead letters
}

// Fail persists failed attempts in one transaction shared with concurrent
// writes: dead ones move to the dead letters with their state, the others
// get their new state. sizes[i] is the stored size of fs[i]'s record, zero
// when it was no longer pending (then nothing was written for it). On
// error nothing changed.
func (s *Store) Fail(fs []Failure) (sizes []int64, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		p, st, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDead)
		sizes = make([]int64, len(fs))
		for i, f := range fs {
			k := SeqKey(f.Seq)
			rec := p.Get(k)
			if rec == nil {
				continue
			}
			sizes[i] = int64(len(rec))
			if !f.Dead {
				if err := st.Put(k, EncodeState(f.State)); err != nil {
					return err
				}
				continue
			}
			if err := d.Put(k, encodeHeld(&f.State, rec)); err != nil {
				return err
			}
			if err := p.Delete(k); err != nil {
				return err
			}
			if err := st.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sizes, nil
}

// OldestPending calls fn with the destination and acceptance time of
// pending events in sequence order (oldest first) until fn returns false.
func (s *Store) OldestPending(fn func(dest string, at time.Time) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketPending)
		if p == nil {
			return nil
		}
		c := p.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !fn(destOf(v), recordAcceptedAt(v)) {
				return nil
			}
		}
		return nil
	})
}

// AcceptedSince calls fn, oldest first (ids applied concurrently may come
// a few milliseconds out of order), for every id accepted at or after
// since that is still remembered. fn runs inside a read transaction.
func (s *Store) AcceptedSince(since time.Time, fn func(id string, at time.Time)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAccepted)
		if a == nil {
			return nil
		}
		c := a.Cursor()
		for k, v := c.Seek(acceptedKey(since, 0)); k != nil; k, v = c.Next() {
			eachAccepted(k, v, func(id string, at time.Time) {
				if !at.Before(since) {
					fn(id, at)
				}
			})
		}
		return nil
	})
}
