package egress

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxLoggedChanges bounds the networks a change log line lists, per side.
const maxLoggedChanges = 20

// Result is the outcome of a refresh.
type Result string

// The results of a refresh, as Status reports them.
const (
	ResultNone  Result = ""      // no refresh yet
	ResultOK    Result = "ok"    // every list fetched, at least one entry
	ResultEmpty Result = "empty" // every list fetched, no usable entry; previous list kept
	ResultError Result = "error" // a fetch failed; previous list kept for the lists that failed
)

// Source keeps IM's callback egress list current: Run fetches it at start
// and every interval, Contains answers the edge listener's per-connection
// question from the list last published.
//
// Keep-last-good: each nettype's list is replaced only by a successful,
// non-empty answer, so a failed or empty fetch never shrinks what is
// enforced; the merged list is published with one atomic store. Until the
// first successful fetch the list is empty and Contains admits nothing.
//
// Create it with New (the zero value is not usable) and call Run on a
// goroutine the caller owns; Refresh fetches once, on demand. All methods
// are safe for concurrent use.
type Source struct {
	o      Options
	client *Client
	cur    atomic.Pointer[Set] // the enforced list; never nil
	ready  chan struct{}       // closed once a list is held
	once   sync.Once

	refreshMu sync.Mutex // serialises Refresh

	mu    sync.Mutex // guards the fields below
	lists map[NetType]*listState
	st    Status
	stale bool // the stale state last logged
}

// listState is one nettype's last good list and last result.
type listState struct {
	set       *Set
	updatedAt time.Time
	result    Result
	err       string
	skipped   int
}

// New returns a Source for o. It makes no call yet. Errors wrap
// ErrBadOption or ErrUnknownRegion.
func New(o Options) (*Source, error) {
	base, err := o.normalise()
	if err != nil {
		return nil, err
	}
	s := &Source{
		o:      o,
		client: newClient(o, base),
		ready:  make(chan struct{}),
		lists:  make(map[NetType]*listState, len(o.NetTypes)),
	}
	s.cur.Store(NewSet(nil))
	for _, n := range o.NetTypes {
		s.lists[n] = &listState{set: NewSet(nil)}
	}
	s.st = Status{Region: o.Region, Host: s.client.Host(), NetTypes: o.NetTypes,
		IntervalSeconds: o.Interval.Seconds(), StaleAfterSeconds: s.staleAfter().Seconds()}
	if o.BaseURL != "" {
		s.st.Region = ""
	}
	return s, nil
}

// Contains reports whether a is on the list last published. It takes no
// lock and allocates nothing: it is called for every new connection.
func (s *Source) Contains(a netip.Addr) bool { return s.cur.Load().Contains(a) }

// Set returns the list last published (empty before the first successful
// fetch). The Set is immutable.
func (s *Source) Set() *Set { return s.cur.Load() }

// WaitReady waits until a list is held or ctx ends, and returns ctx's
// error in the second case. Callers bound the wait (DefaultStartWait).
func (s *Source) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready: // first, so that a held list wins over an ended ctx
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for IM's egress list: %w", ctx.Err())
	}
}

// Run fetches the list now and then after every Interval, or after a
// jittered, doubling retry delay (RetryMin up to RetryMax) when a fetch
// fails or comes back empty. It returns when ctx ends. Call it once, on a
// goroutine the caller waits for.
func (s *Source) Run(ctx context.Context) {
	defer s.client.CloseIdleConnections()
	failures := 0
	for {
		err := s.Refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		delay := s.o.Interval
		if err != nil {
			failures++
			delay = s.retryDelay(failures)
		} else {
			failures = 0
		}
		next := s.o.Now().Add(delay)
		s.mu.Lock()
		s.st.NextAttempt = next
		s.st.ConsecutiveFailures = failures
		s.mu.Unlock()
		if err != nil {
			s.o.Logger.Warn("im egress list: retrying", "retry_in", delay.String(), "consecutive_failures", failures)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.o.After(delay):
		}
	}
}

// retryDelay is the delay after the n-th failure in a row: RetryMin
// doubled n-1 times, capped at RetryMax, then jittered to between half and
// all of itself so that many instances do not retry in step.
func (s *Source) retryDelay(n int) time.Duration {
	d := s.o.RetryMin
	for i := 1; i < n && d < s.o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.o.RetryMax)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// Refresh fetches every configured list once (concurrently), keeps the
// last good list of each nettype whose fetch failed or came back empty,
// and publishes the merged list if it changed. It returns nil when every
// fetch succeeded with at least one entry between them, ErrEmptyAnswer
// when they succeeded with none, and the fetch errors joined otherwise.
// Calls are serialised.
func (s *Source) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()

	attempt := s.o.Now()
	answers := make([]Answer, len(s.o.NetTypes))
	errs := make([]error, len(s.o.NetTypes))
	var wg sync.WaitGroup
	for i, n := range s.o.NetTypes {
		wg.Go(func() { answers[i], errs[i] = s.client.Fetch(ctx, n) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// Shutting down: not a failure of IM's, and nothing to record.
		return fmt.Errorf("refreshing IM's egress list: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur.Load()
	entries, skipped := 0, 0
	for i, n := range s.o.NetTypes {
		ls := s.lists[n]
		ls.skipped = answers[i].Skipped
		skipped += answers[i].Skipped
		switch {
		case errs[i] != nil:
			ls.result, ls.err = ResultError, errs[i].Error()
		case len(answers[i].Prefixes) == 0:
			ls.result, ls.err = ResultEmpty, ""
		default:
			ls.result, ls.err = ResultOK, ""
			ls.set, ls.updatedAt = NewSet(answers[i].Prefixes), attempt
			entries += len(answers[i].Prefixes)
		}
		if answers[i].Skipped > 0 {
			s.o.Logger.Warn("im egress list: entries skipped", "nettype", int(n),
				"skipped", answers[i].Skipped, "sample", answers[i].SkippedSample)
		}
	}
	err := errors.Join(errs...)
	result := ResultOK
	switch {
	case err != nil:
		result = ResultError
	case entries == 0:
		result, err = ResultEmpty, ErrEmptyAnswer
	}

	var all []netip.Prefix
	for _, n := range s.o.NetTypes {
		all = append(all, s.lists[n].set.sorted()...)
	}
	next := NewSet(all)
	if !next.Equal(prev) {
		s.cur.Store(next)
		s.st.Changes++
		s.logChange(prev, next)
	}
	if next.Len() > 0 {
		s.once.Do(func() { close(s.ready) })
	}

	s.st.Refreshes++
	s.st.LastAttempt, s.st.LastResult, s.st.LastError, s.st.Skipped = attempt, result, "", skipped
	switch result {
	case ResultOK:
		s.st.UpdatedAt = attempt
	case ResultEmpty:
		s.st.EmptyAnswers++
		s.o.Logger.Warn("im egress list: empty answer; keeping the previous list", "entries", next.Len())
	case ResultError:
		s.st.Failures++
		s.st.LastError = err.Error()
		s.o.Logger.Warn("im egress list: fetch failed; keeping the previous list", "entries", next.Len(), "err", err)
	}
	s.noteStale(attempt)
	return err
}

// logChange logs the networks added to and removed from the published
// list, at most maxLoggedChanges of each.
func (s *Source) logChange(prev, next *Set) {
	added, removed := diff(prev, next)
	msg := "im egress list changed"
	if prev.Len() == 0 {
		msg = "im egress list loaded"
	}
	s.o.Logger.Info(msg, "entries", next.Len(),
		"added_count", len(added), "added", firstStrings(added, maxLoggedChanges),
		"removed_count", len(removed), "removed", firstStrings(removed, maxLoggedChanges))
}

func firstStrings(ps []netip.Prefix, n int) []string {
	out := make([]string, 0, min(len(ps), n))
	for _, p := range ps[:min(len(ps), n)] {
		out = append(out, p.String())
	}
	return out
}

// noteStale logs when the list becomes stale or fresh again. s.mu is held.
func (s *Source) noteStale(now time.Time) {
	stale := s.isStale(now)
	if stale == s.stale {
		return
	}
	s.stale = stale
	if stale {
		s.o.Logger.Warn("im egress list: stale", "updated_at", s.st.UpdatedAt.UTC().Format(time.RFC3339),
			"stale_after", s.staleAfter().String())
	} else {
		s.o.Logger.Info("im egress list: fresh again")
	}
}

// isStale: a list is held and its last successful fetch is older than
// StaleAfter intervals. s.mu is held.
func (s *Source) isStale(now time.Time) bool {
	return s.cur.Load().Len() > 0 && now.Sub(s.st.UpdatedAt) > s.staleAfter()
}

// staleAfter is the age at which a held list is stale.
func (s *Source) staleAfter() time.Duration { return time.Duration(s.o.StaleAfter) * s.o.Interval }

// Status returns a snapshot for /status and metrics.
func (s *Source) Status() Status {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.NetTypes = append([]NetType(nil), s.st.NetTypes...)
	st.Entries = s.cur.Load().Len()
	st.Ready = st.Entries > 0
	st.Stale = s.isStale(now)
	if !st.UpdatedAt.IsZero() {
		st.AgeSeconds = max(now.Sub(st.UpdatedAt).Seconds(), 0)
	}
	for _, n := range s.o.NetTypes {
		ls := s.lists[n]
		st.Lists = append(st.Lists, ListStatus{NetType: n, Entries: ls.set.Len(), UpdatedAt: ls.updatedAt,
			LastResult: ls.result, LastError: ls.err, Skipped: ls.skipped})
	}
	return st
}
