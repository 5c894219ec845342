package dedupe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/internal/lrutable"
)

// DefaultSize is the number of keys a [Set] remembers when [Options.Size] is
// zero. At about 40 bytes of heap per key (BenchmarkMemory_1MKeys) a full
// Set of this size holds about 40 MiB; the window normally keeps it far
// from full, and memory grows only with the keys actually held.
const DefaultSize = 1 << 20

// maxSize bounds [Options.Size]: the table numbers its slots with int32.
const maxSize = lrutable.MaxLen

// DefaultTTL is the window used when [Options.TTL] is zero; see the package
// documentation for why it is ten minutes.
const DefaultTTL = 10 * time.Minute

// Options configures a [Set]. The zero value is valid and gives the defaults.
type Options struct {
	// Size is the maximum number of seen keys kept; when full, the key
	// accepted longest ago is evicted. Zero means [DefaultSize]; negative or
	// above 2³⁰ is an error. Keys in flight are not counted against it.
	Size int
	// TTL is the window, measured from first acceptance, during which a key
	// counts as a duplicate. Zero means [DefaultTTL]; negative is an error.
	TTL time.Duration
	// Now is the clock; nil means time.Now. Windows are computed from its
	// wall-clock reading, so a large step of the system clock shortens or
	// lengthens the windows in progress.
	Now func() time.Time
}

// Stats is a snapshot of a [Set]'s counters.
type Stats struct {
	// Len is the number of seen keys held (some may have expired but not yet
	// been dropped).
	Len int
	// InFlight is the number of keys claimed and not yet settled.
	InFlight int
	// Hits counts Claims answered as duplicates, including waiters whose
	// holder's copy was accepted.
	Hits uint64
	// Evictions counts seen keys pushed out by the size bound. Expired keys
	// at the old end are dropped first and not counted, so each eviction is
	// a key whose retry would no longer be recognised: size the set so this
	// stays at zero.
	Evictions uint64
}

// Set reports whether a key was already accepted within a window that starts
// at its first acceptance. It remembers at most [Options.Size] accepted keys,
// evicting the one accepted longest ago, plus the keys currently in flight.
//
// Use it as: ok, err := s.Claim(ctx, key); if ok, accept the event and call
// s.Settle(key, accepted) exactly once. Settle must not be skipped (use
// defer), or callers waiting on the key wait until their context ends.
//
// A Set is created with [New]; the zero value is not usable. It is safe for
// concurrent use, holds no goroutines and needs no Close.
type Set struct {
	ttl  time.Duration
	now  func() time.Time
	size int
	salt salt // keys are stored as digests; see digest

	hits      atomic.Uint64
	evictions atomic.Uint64

	mu sync.Mutex
	// seen maps a key to the end of its window (Unix nanoseconds), at most
	// size keys. Entries are added in acceptance order and read only with
	// Peek, which does not refresh them (a replaced window becomes the
	// newest, as a new one), so the table's order of use is acceptance
	// order and also expiry order (Load of out-of-order times aside).
	seen *lrutable.Table[int64]
	// inflight holds claimed keys, by the caller's key, with their digest
	// so that Settle does not hash the key again. c is nil until a second
	// Claim has to wait, which keeps the uncontended path allocation-free.
	inflight map[string]held
}

// held is a claimed key's entry in Set.inflight.
type held struct {
	digest digest
	c      *claim
}

// claim is what waiters of an in-flight key block on. done is closed by
// Settle after accepted is written.
type claim struct {
	done     chan struct{}
	accepted bool
}

// New returns an empty Set configured by o. It fails, wrapping [ErrBadSize]
// or [ErrBadTTL], when o.Size or o.TTL is out of range.
func New(o Options) (*Set, error) {
	var errs []error
	if o.Size < 0 || o.Size > maxSize {
		errs = append(errs, fmt.Errorf("size %d must be 0 to %d: %w", o.Size, maxSize, ErrBadSize))
	}
	if o.TTL < 0 {
		errs = append(errs, fmt.Errorf("ttl %s: %w", o.TTL, ErrBadTTL))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("checking dedupe options: %w", errors.Join(errs...))
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{
		ttl:      o.TTL,
		now:      o.Now,
		size:     o.Size,
		salt:     newSalt(),
		inflight: make(map[string]held),
		// Digests are salted SHA-256, uniformly random and unknown to
		// senders, so their first bytes are the hash. The table grows with
		// use up to Size, never beyond.
		seen: lrutable.New[int64](lrutable.Options{Max: o.Size, Hash: lrutable.DigestHash}),
	}
	return s, nil
}

// pruneExpired drops expired keys from the old end of seen, so that the size
// bound only ever evicts live keys. Each key is dropped at most once, so the
// cost is amortised O(1) per insertion. s.mu must be held.
func (s *Set) pruneExpired(now int64) {
	for {
		_, exp, ok := s.seen.Oldest()
		if !ok || *exp > now {
			return
		}
		s.seen.RemoveOldest()
	}
}

// Claim decides what to do with key:
//
//   - not accepted within the window and not in flight: the caller now holds
//     key and Claim returns true; the caller must call [Set.Settle];
//   - accepted within the window: Claim returns false (a duplicate, counted
//     in [Stats.Hits]);
//   - held by another caller: Claim waits for that caller's Settle and
//     returns false if it accepted, or an error wrapping [ErrInFlightFailed]
//     if it did not.
//
// If ctx ends first, Claim returns an error wrapping ctx.Err() and the caller
// holds nothing. Claim never extends a key's window.
func (s *Set) Claim(ctx context.Context, k string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("claiming key: %w", err)
	}
	key := s.salt.digestOf(k)
	s.mu.Lock()
	if h, ok := s.inflight[k]; ok {
		if h.c == nil {
			h.c = &claim{done: make(chan struct{})}
			s.inflight[k] = h
		}
		s.mu.Unlock()
		return s.wait(ctx, h.c)
	}
	if exp, ok := s.seen.Peek(key); ok {
		if s.now().UnixNano() < *exp {
			s.mu.Unlock()
			s.hits.Add(1)
			return false, nil
		}
		s.seen.Remove(key) // lazy expiry
	}
	s.inflight[k] = held{digest: key}
	s.mu.Unlock()
	return true, nil
}

// wait blocks until the holder of c settles or ctx ends.
func (s *Set) wait(ctx context.Context, c *claim) (bool, error) {
	select {
	case <-c.done:
		if c.accepted {
			s.hits.Add(1)
			return false, nil
		}
		return false, fmt.Errorf("waiting for in-flight copy: %w", ErrInFlightFailed)
	case <-ctx.Done():
		return false, fmt.Errorf("waiting for in-flight copy: %w", ctx.Err())
	}
}

// Settle releases key, which the caller holds from a [Set.Claim] that
// returned true. If accepted, key is marked seen until its acceptance time
// plus the TTL (an existing unexpired entry, for example from [Set.Load], is
// kept as is); callers waiting on key get false. If not accepted, key is
// forgotten so the sender's retry is treated as new; waiters get
// [ErrInFlightFailed]. Settle on a key that is not held does nothing.
func (s *Set) Settle(k string, accepted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.inflight[k]
	if !ok {
		return
	}
	delete(s.inflight, k)
	if accepted {
		now := s.now().UnixNano()
		s.markSeen(h.digest, now, now)
	}
	if h.c != nil {
		h.c.accepted = accepted
		close(h.c.done)
	}
}

// markSeen records key as accepted at acceptedAt unless it is already seen
// with an earlier acceptance. Times are Unix nanoseconds. s.mu must be held.
func (s *Set) markSeen(key digest, acceptedAt, now int64) {
	exp := acceptedAt + int64(s.ttl)
	if exp < acceptedAt {
		exp = math.MaxInt64 // a TTL of centuries: saturate rather than wrap
	}
	if exp <= now {
		return
	}
	old, seen := s.seen.Peek(key)
	if seen && *old > now && *old <= exp {
		return // window runs from the first acceptance
	}
	s.pruneExpired(now)
	// Looked up again only if it was there: pruning may have removed it.
	if seen {
		if old, ok := s.seen.Get(key); ok { // an expired or later window: replace it
			*old = exp
			return
		}
	}
	if s.seen.Len() >= s.size {
		s.seen.RemoveOldest()
		s.evictions.Add(1)
	}
	*s.seen.Add(key) = exp
}

// Load marks key as accepted at acceptedAt, typically for each event the
// outbox holds when the process starts, so that a retry arriving after a
// restart is still recognised. Keys whose window has already ended are
// ignored, and a key already seen with an earlier acceptance keeps it. Call
// Load in order of acceptance (oldest first) so that eviction order stays
// acceptance order. It counts no hits and does not release a key in flight
// (that key's Settle keeps the loaded window).
func (s *Set) Load(k string, acceptedAt time.Time) {
	key := s.salt.digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markSeen(key, acceptedAt.UnixNano(), s.now().UnixNano())
}

// Stats returns a snapshot of the Set's counters.
func (s *Set) Stats() Stats {
	s.mu.Lock()
	n, f := s.seen.Len(), len(s.inflight)
	s.mu.Unlock()
	return Stats{
		Len:       n,
		InFlight:  f,
		Hits:      s.hits.Load(),
		Evictions: s.evictions.Load(),
	}
}
