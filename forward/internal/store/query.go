package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Filter selects stored events. The zero value selects every event.
type Filter struct {
	Destination string    // exact destination name; empty: any
	Command     string    // exact command, "Family.*" for a family, or "*"; empty: any
	From, To    time.Time // acceptance time in [From, To); zero: unbounded
	// Refs are event ids or sequence numbers in decimal; empty: any. An
	// event matches when it matches one of them (and the fields above).
	Refs []string
}

// IsZero reports whether f selects every event (a nil f does).
func (f *Filter) IsZero() bool {
	return f == nil || (f.Destination == "" && f.Command == "" && f.From.IsZero() && f.To.IsZero() && len(f.Refs) == 0)
}

// matcher applies a Filter and notes which of its Refs matched something.
type matcher struct {
	f       *Filter
	matched []bool
}

func newMatcher(f *Filter) *matcher {
	if f == nil {
		f = &Filter{}
	}
	return &matcher{f: f, matched: make([]bool, len(f.Refs))}
}

// reset forgets the refs matched (a transaction is run again).
func (m *matcher) reset() { clear(m.matched) }

func (m *matcher) match(seq uint64, r *Record) bool {
	f := m.f
	if f.Destination != "" && r.Destination != f.Destination {
		return false
	}
	if !MatchCommand(f.Command, r.Command) {
		return false
	}
	if !f.From.IsZero() && r.AcceptedAt.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !r.AcceptedAt.Before(f.To) {
		return false
	}
	if len(f.Refs) == 0 {
		return true
	}
	hit := false
	for i, ref := range f.Refs {
		if MatchRef(ref, seq, r.ID) {
			m.matched[i] = true
			hit = true
		}
	}
	return hit
}

// MatchFilter reports whether the record r of sequence seq matches f.
func MatchFilter(f *Filter, seq uint64, r *Record) bool { return newMatcher(f).match(seq, r) }

// MatchCommand reports whether command matches pattern: empty or "*"
// match everything, "Family.*" every command of the family, anything else
// only itself.
func MatchCommand(pattern, command string) bool {
	switch {
	case pattern == "" || pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(command, pattern[:len(pattern)-1])
	}
	return pattern == command
}

// Item is one stored event as the operator queries give it.
type Item struct {
	Kind     Kind   // where it is
	Seq      uint64 // its sequence number
	Record   Record // Body set by Find only
	BodySize int    // the body's length
	Size     int    // the record's stored length
	State    State  // its delivery state
}

func item(kind Kind, seq uint64, rec []byte, st State, withBody bool) (Item, error) {
	r, bodySize, err := DecodeRecord(rec, withBody)
	if err != nil {
		return Item{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	return Item{Kind: kind, Seq: seq, Record: r, BodySize: bodySize, Size: len(rec), State: st}, nil
}

// List returns up to limit (every one when limit <= 0) events of kind
// that match f and have a sequence number above after, in sequence order,
// without bodies; more reports whether further ones match.
func (s *Store) List(kind Kind, f *Filter, after uint64, limit int) (items []Item, more bool, err error) {
	m := newMatcher(f)
	full := func() bool { return limit > 0 && len(items) >= limit }
	err = s.db.View(func(tx *bolt.Tx) error {
		return s.each(tx, kind, after, func(seq uint64, _ []byte, rec []byte, st func() State) (bool, error) {
			r, bodySize, err := DecodeRecord(rec, false)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", seq, err)
			}
			if !m.match(seq, &r) {
				return true, nil
			}
			if full() {
				more = true
				return kind == KindDelivered, nil // delivered events come out of sequence order
			}
			items = append(items, Item{Kind: kind, Seq: seq, Record: r, BodySize: bodySize, Size: len(rec), State: st()})
			return true, nil
		})
	})
	if err != nil {
		return nil, false, err
	}
	if kind == KindDelivered {
		// Scanned in delivery order, in full: keep the lowest sequences.
		slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return items, more, nil
}

// each walks the events of kind with a sequence number above after:
// pending and dead ones in sequence order, delivered ones in delivery
// order. fn gets the key, the record and a function decoding the state;
// it returns false to stop.
func (s *Store) each(tx *bolt.Tx, kind Kind, after uint64, fn func(seq uint64, key, rec []byte, st func() State) (bool, error)) error {
	switch kind {
	case KindPending:
		p, sb := tx.Bucket(bucketPending), tx.Bucket(bucketState)
		if p == nil {
			return nil
		}
		c := p.Cursor()
		for k, v := c.Seek(SeqKey(after + 1)); k != nil; k, v = c.Next() {
			st := func() State {
				var st State
				if sb != nil {
					if sv := sb.Get(k); sv != nil {
						st, _ = DecodeState(sv)
					}
				}
				return st
			}
			if more, err := fn(keySeq(k), k, v, st); err != nil || !more {
				return err
			}
		}
	case KindDead, KindDelivered:
		name, seqOf := bucketDead, keySeq
		if kind == KindDelivered {
			name, seqOf = bucketDelivered, deliveredKeySeq
		}
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if kind == KindDead {
			k, v = c.Seek(SeqKey(after + 1))
		}
		for ; k != nil; k, v = c.Next() {
			seq := seqOf(k)
			if seq <= after {
				continue
			}
			st, rec, err := splitHeld(v)
			if err != nil {
				return fmt.Errorf("entry %d: %w", seq, err)
			}
			if more, err := fn(seq, k, rec, func() State { return st }); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// Find returns the event ref names (an event id or a sequence number),
// body included, searching pending events, then dead letters, then
// retained delivered events, each in their order. It returns an error
// wrapping ErrNotFound when nothing matches.
func (s *Store) Find(ref string) (Item, error) {
	m := newMatcher(&Filter{Refs: []string{ref}})
	var found *Item
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, kind := range []Kind{KindPending, KindDead, KindDelivered} {
			err := s.each(tx, kind, 0, func(seq uint64, _, rec []byte, st func() State) (bool, error) {
				r, _, err := DecodeRecord(rec, false)
				if err != nil {
					return false, fmt.Errorf("entry %d: %w", seq, err)
				}
				if !m.match(seq, &r) {
					return true, nil
				}
				it, err := item(kind, seq, rec, st(), true)
				found = &it
				return false, err
			})
			if err != nil || found != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Item{}, err
	}
	if found == nil {
		return Item{}, fmt.Errorf("finding %q: %w", ref, ErrNotFound)
	}
	return *found, nil
}
