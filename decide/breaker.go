package decide

import (
	"sync"
	"time"
)

// State is a circuit breaker's state.
type State uint8

// The circuit states.
const (
	// Closed: calls go to the decision service.
	Closed State = iota
	// Open: every callback is answered with its fallback at once.
	Open
	// HalfOpen: one trial call is in flight; every other callback is
	// answered with its fallback at once.
	HalfOpen
)

// String returns "closed", "open" or "half_open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "invalid"
}

// breaker is one decision service's circuit breaker; the rule is in the
// package documentation. It is safe for concurrent use.
type breaker struct {
	threshold int
	coolDown  time.Duration

	mu       sync.Mutex
	state    State
	fails    int       // consecutive failures while closed
	openedAt time.Time // when the circuit last opened
	opens    uint64    // times it opened from Closed
}

// ticket is a call's admission: whether it is the trial call of a half-open
// circuit.
type ticket struct{ trial bool }

// allow admits a call at now, or reports false when the circuit answers
// the fallback instead.
func (b *breaker) allow(now time.Time) (ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return ticket{}, true
	case Open:
		if now.Sub(b.openedAt) >= b.coolDown {
			b.state = HalfOpen
			return ticket{trial: true}, true
		}
	}
	return ticket{}, false
}

// transition is a change of a circuit's state that report made.
type transition uint8

const (
	unchanged transition = iota
	opened               // Closed to Open: consecutive failures
	reopened             // HalfOpen to Open: the trial call failed
	closed               // HalfOpen to Closed: the trial call succeeded
)

// report records the end of an admitted call at now: ok when the service
// answered 2xx. It returns the change it made to the circuit.
func (b *breaker) report(t ticket, ok bool, now time.Time) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.trial {
		if ok {
			b.state, b.fails = Closed, 0
			return closed
		}
		b.state, b.openedAt = Open, now // re-opened: not counted in opens
		return reopened
	}
	if b.state != Closed {
		// A call admitted before the circuit opened: the trial call
		// alone decides when it closes.
		return unchanged
	}
	if ok {
		b.fails = 0
		return unchanged
	}
	b.fails++
	if b.fails < b.threshold {
		return unchanged
	}
	b.state, b.openedAt, b.fails = Open, now, 0
	b.opens++
	return opened
}

// breakerStats is a snapshot of a breaker.
type breakerStats struct {
	state    State
	fails    int
	openedAt time.Time
	opens    uint64
}

func (b *breaker) stats() breakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return breakerStats{state: b.state, fails: b.fails, openedAt: b.openedAt, opens: b.opens}
}
