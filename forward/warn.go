package forward

import (
	"context"
	"errors"
	"sync"
	"time"
)

// warnWindow is how often a Dispatcher logs its failures and dead letters
// at most: one warning per kind and window, with the count and the last
// error, instead of one per event (a failing internal service would
// otherwise flood the log at the callback rate).
const warnWindow = 10 * time.Second

// sampler counts events between two warnings and keeps the last one's
// text. Safe for concurrent use.
type sampler struct {
	mu     sync.Mutex
	n      int
	last   string
	lastID string
}

// add counts n events whose last error is msg (and event id, if any).
func (s *sampler) add(msg string, n int, id string) {
	s.mu.Lock()
	s.n += n
	s.last, s.lastID = msg, id
	s.mu.Unlock()
}

// take returns what was counted since the last take and starts over.
func (s *sampler) take() (n int, last, lastID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, last, lastID = s.n, s.last, s.lastID
	s.n, s.last, s.lastID = 0, "", ""
	return n, last, lastID
}

// warnLoop logs the sampled warnings every warnEvery until done is
// closed, then once more for what is left.
func (d *Dispatcher) warnLoop(done <-chan struct{}) {
	t := time.NewTicker(d.warnEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.warn()
		case <-done:
			d.warn()
			return
		}
	}
}

// warn logs the failures and dead letters counted since the last call.
func (d *Dispatcher) warn() {
	window := d.warnEvery.String()
	if n, last, _ := d.failing.take(); n > 0 {
		d.log.Warn("delivery failing", "destination", d.dest, "failures", n, "window", window, "last_error", last)
	}
	if n, last, id := d.burying.take(); n > 0 {
		d.log.Warn("events dead-lettered", "destination", d.dest, "events", n, "window", window, "last_error", last, "last_event_id", id)
	}
}

// buried counts and logs (at debug level; warnings are sampled) an event
// moved to the dead letters.
func (d *Dispatcher) buried(id string, seq uint64, attempt int, lastError string) {
	d.dead.Add(1)
	d.burying.add(lastError, 1, id)
	d.log.Debug("event dead-lettered", "destination", d.dest, "event_id", id, "seq", seq, "attempt", attempt, "err", lastError)
}

// report passes an attempt of events events that took took and ended with
// err to the OnAttempt hook, if any.
func (d *Dispatcher) report(ctx context.Context, events int, took time.Duration, err error) {
	if d.onAttempt == nil {
		return
	}
	r := AttemptReport{Destination: d.dest, Events: events, Duration: took, Err: err, Abandoned: err != nil && ctx.Err() != nil}
	var de *DeliveryError
	if errors.As(err, &de) {
		r.Status = de.StatusCode
	}
	d.onAttempt(r)
}
