package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/forward/internal/store"
)

// DispatcherOptions configures [NewDispatcher]. Outbox and Deliverer are
// required; every other zero value selects the documented default.
type DispatcherOptions struct {
	// Outbox holds the events the dispatcher delivers: those of
	// Destination.
	Outbox *Outbox
	// Destination names the destination whose events this dispatcher
	// delivers; empty means DefaultDestination, which also delivers the
	// events of destinations no longer configured. Each destination needs
	// a Dispatcher of its own; only one may run per destination.
	Destination string
	// Deliverer posts events to the destination's URL, usually a *Client
	// made from that URL with the global delivery settings.
	Deliverer Deliverer
	// Concurrency is the number of deliveries in flight at most. Zero means
	// DefaultConcurrency.
	Concurrency int
	// BatchSize, when above 1, makes each delivery carry up to this many
	// due events in one request (a JSON array, see the package
	// documentation); the Deliverer must implement [BatchDeliverer]. At
	// most [MaxBatch]. Zero or one delivers one event per request.
	// [DispatcherStats] count events either way, not requests.
	BatchSize int
	// BatchWait is how long a batch that is not full waits for more due
	// events before it leaves (with BatchSize above 1). Under load, events
	// become deliverable a few at a time and batches would leave small:
	// waiting a few milliseconds fills them, which cut the requests to the
	// internal URL by 60 % in the benchmark. Zero sends at once; negative
	// is an error.
	BatchWait time.Duration
	// BackoffBase is the first retry's backoff ceiling; it doubles with each
	// failed attempt. Zero means DefaultBackoffBase.
	BackoffBase time.Duration
	// BackoffMax caps the backoff ceiling and any Retry-After. Zero means
	// DefaultBackoffMax.
	BackoffMax time.Duration
	// MaxAttempts dead-letters an event after this many failed attempts.
	// Zero means unlimited (MaxAge still applies).
	MaxAttempts int
	// PermanentStatus lists HTTP statuses (400 to 599) that dead-letter an
	// event at its first such answer, for internal services whose refusal
	// is final. Empty means every non-2xx answer is retried until
	// MaxAttempts or MaxAge.
	PermanentStatus []int
	// OnAttempt, when set, is called after every delivery attempt, single
	// or batched, from the goroutine that made it: for the caller's
	// latency metrics. It must be quick and safe for concurrent use.
	OnAttempt func(AttemptReport)
	// MaxAge dead-letters an event whose attempt fails when it was accepted
	// at least this long ago. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// DrainTimeout is how long deliveries in flight when Run's context ends
	// may still finish; after it they are abandoned and stay pending. Zero
	// means 5 s; negative abandons them at once.
	DrainTimeout time.Duration
	// Logger receives operational messages; nil discards them. Bodies and
	// secrets are never logged.
	Logger *slog.Logger
	// Now is the clock for scheduling and ages; nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform random integer in [0, n) for backoff jitter;
	// nil means math/rand/v2's Int64N.
	Rand func(n int64) int64
}

// AttemptReport describes one delivery attempt to [DispatcherOptions.OnAttempt].
type AttemptReport struct {
	Destination string        // the Dispatcher's destination
	Events      int           // events in the request: 1, or a batch's size
	Duration    time.Duration // from the request's start to its answer or failure
	// Status is the HTTP status of a failed attempt's answer; zero for a
	// success (2xx) and for an attempt that got no answer.
	Status int
	Err    error // nil on success
	// Abandoned is set for an attempt cut short because the Dispatcher
	// was stopping; its events stay pending and Err says why.
	Abandoned bool
}

// DispatcherStats is a snapshot of a Dispatcher's counters since it was
// created.
type DispatcherStats struct {
	Destination  string    // the destination it delivers
	Attempts     uint64    // delivery attempts started
	Successes    uint64    // attempts answered 2xx
	Failures     uint64    // attempts that failed (abandoned ones excluded)
	DeadLettered uint64    // events moved to the dead letters
	Abandoned    uint64    // attempts cut short by a stop; their events stay pending
	InFlight     int       // attempts in progress now
	LastError    string    // text of the last failure; empty if none
	LastErrorAt  time.Time // when it happened
	// PausedUntil is set while the internal URL is unreachable: no new
	// attempt starts before it. Zero when deliveries flow.
	PausedUntil time.Time
}

// Dispatcher delivers one destination's events from an [Outbox]: it posts
// due events, oldest first, with at most Concurrency in flight; removes an
// event only after a 2xx; retries every other answer with exponential
// backoff and full jitter (honouring Retry-After on 429 and 503); and
// dead-letters events past MaxAttempts or MaxAge, and at once those
// answered with a PermanentStatus. Attempt counts, next-attempt times,
// last errors and the attempt history are persisted, so a restart respects
// them. Failures and dead letters are logged sampled: one warning per
// destination and 10 s with their count and the last error.
//
// Each destination's Dispatcher has its own workers, backoff and pause, so
// a destination that is down or slow does not delay the others.
//
// A Dispatcher is safe for concurrent use. Run it once at a time; it owns
// its goroutines and stops them before Run returns.
type Dispatcher struct {
	out         *Outbox
	q           *queue // the destination's
	dest        string
	deliverer   Deliverer
	concurrency int
	batch       int            // events per delivery; 1: Deliverer.Deliver per event
	batcher     BatchDeliverer // set when batch > 1
	batchWait   time.Duration
	base, ceil  time.Duration
	maxAttempts int
	permanent   map[int]bool
	onAttempt   func(AttemptReport)
	maxAge      time.Duration
	drain       time.Duration
	log         *slog.Logger
	now         func() time.Time
	rand        func(int64) int64
	wake        chan struct{}
	running     atomic.Bool
	failing     sampler       // delivery failures, logged once per warnEvery
	burying     sampler       // dead letters, likewise
	warnEvery   time.Duration // warnWindow; tests make it short

	attempts, successes, failures, dead atomic.Uint64
	abandoned                           atomic.Uint64
	inflight                            atomic.Int64
	downStreak                          atomic.Int32 // attempts in a row that got no answer
	pauseUntil                          atomic.Int64 // Unix ns; no new attempt before it
	errMu                               sync.Mutex
	lastErr                             string
	lastErrAt                           time.Time
}

// NewDispatcher checks o and returns a Dispatcher; call Run to start it.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	if o.Outbox == nil || o.Deliverer == nil {
		return nil, fmt.Errorf("creating dispatcher: %w: Outbox and Deliverer are required", ErrInvalidOptions)
	}
	if o.Outbox.readOnly {
		return nil, fmt.Errorf("creating dispatcher: %w: the outbox is open read-only", ErrInvalidOptions)
	}
	dest := o.Destination
	if dest == "" {
		dest = DefaultDestination
	}
	q := o.Outbox.queues[dest]
	if q == nil {
		return nil, fmt.Errorf("creating dispatcher: %w: %q", ErrUnknownDestination, dest)
	}
	d := &Dispatcher{
		out:         o.Outbox,
		q:           q,
		dest:        dest,
		deliverer:   o.Deliverer,
		concurrency: DefaultConcurrency,
		batch:       1,
		base:        DefaultBackoffBase,
		ceil:        DefaultBackoffMax,
		maxAttempts: max(o.MaxAttempts, 0),
		onAttempt:   o.OnAttempt,
		warnEvery:   warnWindow,
		maxAge:      DefaultMaxAge,
		drain:       5 * time.Second,
		log:         o.Logger,
		now:         time.Now,
		rand:        rand.Int64N,
		wake:        make(chan struct{}, 1),
	}
	if o.Concurrency > 0 {
		d.concurrency = o.Concurrency
	}
	if o.BatchWait < 0 {
		return nil, fmt.Errorf("creating dispatcher: %w: BatchWait %s is negative", ErrInvalidOptions, o.BatchWait)
	}
	d.batchWait = o.BatchWait
	if o.BatchSize > MaxBatch {
		return nil, fmt.Errorf("creating dispatcher: %w: BatchSize %d above %d", ErrInvalidOptions, o.BatchSize, MaxBatch)
	}
	if o.BatchSize > 1 {
		b, ok := o.Deliverer.(BatchDeliverer)
		if !ok {
			return nil, fmt.Errorf("creating dispatcher: %w: BatchSize needs a Deliverer that implements BatchDeliverer", ErrInvalidOptions)
		}
		d.batch, d.batcher = o.BatchSize, b
	}
	if o.BackoffBase > 0 {
		d.base = o.BackoffBase
	}
	if o.BackoffMax > 0 {
		d.ceil = o.BackoffMax
	}
	if d.base > d.ceil {
		return nil, fmt.Errorf("creating dispatcher: %w: BackoffBase %s exceeds BackoffMax %s", ErrInvalidOptions, d.base, d.ceil)
	}
	if o.MaxAge > 0 {
		d.maxAge = o.MaxAge
	}
	for _, code := range o.PermanentStatus {
		if code < 400 || code > 599 {
			return nil, fmt.Errorf("creating dispatcher: %w: PermanentStatus %d is not a 4xx or 5xx status", ErrInvalidOptions, code)
		}
		if d.permanent == nil {
			d.permanent = make(map[int]bool)
		}
		d.permanent[code] = true
	}
	if o.DrainTimeout != 0 {
		d.drain = o.DrainTimeout
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if o.Now != nil {
		d.now = o.Now
	}
	if o.Rand != nil {
		d.rand = o.Rand
	}
	return d, nil
}

// Notify tells the dispatcher that events were appended. Outbox.Append
// already does this; Notify is for callers that change the store another
// way. It never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (d *Dispatcher) Stats() DispatcherStats {
	s := DispatcherStats{
		Destination:  d.dest,
		Attempts:     d.attempts.Load(),
		Successes:    d.successes.Load(),
		Failures:     d.failures.Load(),
		DeadLettered: d.dead.Load(),
		Abandoned:    d.abandoned.Load(),
		InFlight:     int(d.inflight.Load()),
	}
	d.errMu.Lock()
	s.LastError, s.LastErrorAt = d.lastErr, d.lastErrAt
	d.errMu.Unlock()
	if p := d.pausedFor(); p > 0 {
		s.PausedUntil = time.Now().Add(p)
	}
	return s
}

// maxPause caps the pause after the internal URL was unreachable: it is
// probed again at least this often, so deliveries resume within it once
// the service is back.
const maxPause = 2 * time.Second

// unreachable records a failed attempt. One that got no answer at all
// (connection refused, DNS, TLS, timeout) means the internal URL is down,
// and trying every other pending event against it would only burn CPU and
// outbox writes (each failure is recorded) while callbacks keep arriving.
// New attempts then pause for BackoffBase, doubling with each such failure
// in a row, at most min(BackoffMax, 2 s); the attempts that failed are
// recorded as usual. An answer of any status ends the pause.
func (d *Dispatcher) unreachable(err error) {
	var de *DeliveryError
	if !errors.As(err, &de) {
		return
	}
	if de.StatusCode != 0 {
		d.reachable() // it answered: a failure of this event, not an outage
		return
	}
	n := d.downStreak.Add(1)
	p := d.base
	for i := int32(1); i < n && p < maxPause; i++ {
		p *= 2
	}
	p = min(p, d.ceil, maxPause)
	until := time.Now().Add(p).UnixNano()
	for {
		old := d.pauseUntil.Load()
		if old >= until || d.pauseUntil.CompareAndSwap(old, until) {
			break
		}
	}
	if n == 1 {
		d.log.Warn("internal URL unreachable; pausing deliveries", "destination", d.dest, "err", err.Error(), "retry_in", p.String())
	}
}

// reachable records an answered attempt: a pause ends.
func (d *Dispatcher) reachable() {
	if d.downStreak.Load() == 0 {
		return
	}
	if d.downStreak.Swap(0) > 0 {
		d.pauseUntil.Store(0)
		d.log.Info("internal URL reachable again; deliveries resume", "destination", d.dest)
	}
}

// pausedFor returns how long new attempts still wait; zero when none.
func (d *Dispatcher) pausedFor() time.Duration {
	until := d.pauseUntil.Load()
	if until == 0 {
		return 0
	}
	return min(time.Duration(until-time.Now().UnixNano()), maxPause)
}

// Run delivers events until ctx ends, then stops claiming new ones, lets
// deliveries in flight finish for up to DrainTimeout, abandons the rest
// (they stay pending) and returns nil once every goroutine has stopped. It
// returns ErrRunning if it or another Dispatcher of its destination is
// already running, and ErrClosed if the Outbox is closed under it.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	if !d.q.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.q.running.Store(false)
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	d.log.Info("dispatcher started", "destination", d.dest, "concurrency", d.concurrency)
	var wg sync.WaitGroup
	warnDone := make(chan struct{})
	var warner sync.WaitGroup
	warner.Go(func() { d.warnLoop(warnDone) })
	defer func() { close(warnDone); warner.Wait() }()
	err := d.loop(ctx, dctx, &wg)
	if d.drain > 0 {
		t := time.AfterFunc(d.drain, cancel)
		defer t.Stop()
	} else {
		cancel()
	}
	wg.Wait()
	d.log.Info("dispatcher stopped", "destination", d.dest, "abandoned", d.abandoned.Load())
	return err
}

// loop claims due events and starts a delivery for each while a slot is free.
func (d *Dispatcher) loop(ctx, dctx context.Context, wg *sync.WaitGroup) error {
	slots := make(chan struct{}, d.concurrency)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		case <-d.out.done:
			return ErrClosed
		}
		seq, ok, err := d.next(ctx, timer)
		if !ok {
			return err
		}
		if d.batch > 1 {
			seqs := d.fillBatch(ctx, d.claimMore(seq), timer)
			wg.Go(func() {
				var once sync.Once
				free := func() { once.Do(func() { <-slots }) }
				defer free()
				d.deliverBatch(dctx, seqs, free)
			})
			continue
		}
		wg.Go(func() {
			var once sync.Once
			free := func() { once.Do(func() { <-slots }) }
			defer free()
			d.deliver(dctx, seq, free)
		})
	}
}

// claimMore returns first and up to batch-1 more events that are due now,
// claimed, oldest first. It does not wait for more to become due (see
// fillBatch).
func (d *Dispatcher) claimMore(first uint64) []uint64 {
	seqs := make([]uint64, 1, d.batch)
	seqs[0] = first
	return d.claimDue(seqs)
}

// claimDue appends events due now, claimed, oldest first, until seqs is a
// full batch or none is due.
func (d *Dispatcher) claimDue(seqs []uint64) []uint64 {
	now := d.now()
	for len(seqs) < d.batch {
		seq, _, ok := d.q.claim(now)
		if !ok {
			break
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// fillBatch waits up to BatchWait for more due events while seqs is not a
// full batch, claiming them as they come. It returns early when ctx ends.
func (d *Dispatcher) fillBatch(ctx context.Context, seqs []uint64, timer *time.Timer) []uint64 {
	if d.batchWait <= 0 || len(seqs) >= d.batch {
		return seqs
	}
	deadline := time.Now().Add(d.batchWait) // real time, even with Options.Now
	for len(seqs) < d.batch {
		wait := time.Until(deadline)
		if wait <= 0 {
			return seqs
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return seqs
		case <-d.q.wake: // more events stored or early
		case <-timer.C:
		}
		timer.Stop()
		seqs = d.claimDue(seqs)
	}
	return seqs
}

// next waits until an event is due and claims it. ok is false when ctx
// ended (err nil) or the outbox closed (ErrClosed).
func (d *Dispatcher) next(ctx context.Context, timer *time.Timer) (seq uint64, ok bool, err error) {
	for {
		if p := d.pausedFor(); p > 0 {
			timer.Reset(p)
			select {
			case <-ctx.Done():
				return 0, false, nil
			case <-d.out.done:
				return 0, false, ErrClosed
			case <-timer.C:
			}
			continue
		}
		seq, wait, ok := d.q.claim(d.now())
		if ok {
			return seq, true, nil
		}
		var due <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return 0, false, nil
		case <-d.out.done:
			return 0, false, ErrClosed
		case <-d.q.wake:
		case <-d.wake:
		case <-due:
		}
		timer.Stop()
	}
}

// deliver makes one attempt for a claimed event and records its outcome.
// It calls free as soon as the attempt is over, so the next attempt can
// start while the outcome is written (the event stays claimed until then).
func (d *Dispatcher) deliver(ctx context.Context, seq uint64, free func()) {
	l, err := d.out.loadOne(d.q, seq)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			d.q.forget(seq)
			return
		}
		d.log.Error("reading event from outbox", "destination", d.dest, "seq", seq, "err", err)
		d.q.requeue(seq, d.now().Add(d.ceil))
		return
	}
	st := l.state()
	attempt := st.Attempts + 1
	d.attempts.Add(1)
	d.inflight.Add(1)
	startedAt, start := d.now(), time.Now()
	err = d.deliverer.Deliver(ctx, l.ev, attempt)
	took := time.Since(start)
	d.inflight.Add(-1)
	free()
	d.report(ctx, 1, took, err)
	now := d.now()
	if err == nil {
		d.reachable()
		d.successes.Add(1)
		d.out.complete(success{q: d.q, seqs: []uint64{seq}, at: startedAt, duration: took})
		d.log.Debug("event delivered", "destination", d.dest, "event_id", l.ev.ID, "seq", seq, "attempt", attempt)
		return
	}
	if ctx.Err() != nil {
		// Stopping: the attempt was cut short; the event stays as it was.
		d.abandoned.Add(1)
		d.q.requeue(seq, time.Time{})
		return
	}
	d.failures.Add(1)
	d.unreachable(err)
	f, msg := d.failure(err, st, l.acceptedAt, attempt, store.Attempt{At: startedAt, Duration: took}, now)
	f.seq = seq
	d.failing.add(msg, 1, "")
	buried, serr := d.out.settle(d.q, []failedEntry{f})
	if serr != nil {
		d.log.Error("recording failed attempt", "destination", d.dest, "event_id", l.ev.ID, "seq", seq, "err", serr)
		return
	}
	if buried[0] {
		d.buried(l.ev.ID, seq, attempt, f.st.LastError)
		return
	}
	d.log.Debug("delivery failed", "destination", d.dest, "event_id", l.ev.ID, "seq", seq, "attempt", attempt, "err", msg,
		"retry_in", f.st.NextAttempt.Sub(now).String())
}

// failure records err as the last error and works out what a failed attempt
// means for an event: its new state, with the attempt a in its history, and
// whether it goes to the dead letters (permanent failure, MaxAttempts
// reached, older than MaxAge). msg is the error text.
func (d *Dispatcher) failure(err error, st store.State, acceptedAt time.Time, attempt int, a store.Attempt, now time.Time) (f failedEntry, msg string) {
	msg = err.Error()
	d.errMu.Lock()
	d.lastErr, d.lastErrAt = msg, now
	d.errMu.Unlock()

	st.Attempts = attempt
	st.LastAttempt = now
	st.LastError = msg
	var de *DeliveryError
	var retryAfter time.Duration
	permanent := false
	if errors.As(err, &de) {
		permanent, retryAfter = de.Permanent || d.permanent[de.StatusCode], de.RetryAfter
		a.Status = de.StatusCode
	}
	a.Error = msg
	st.AddAttempt(a)
	delay := d.backoff(attempt, retryAfter)
	var reason string
	switch {
	case permanent:
		reason = "permanent failure"
		if de != nil && d.permanent[de.StatusCode] {
			reason = fmt.Sprintf("permanent failure (status %d)", de.StatusCode)
		}
	case d.maxAttempts > 0 && attempt >= d.maxAttempts:
		reason = fmt.Sprintf("gave up after %d attempts", attempt)
	case now.Sub(acceptedAt) >= d.maxAge:
		reason = "gave up: older than max age " + d.maxAge.String()
	}
	if reason != "" {
		st.LastError = msg + "; " + reason
		st.DeadAt = now
		st.NextAttempt = time.Time{}
		return failedEntry{st: st, dead: true, retryAt: now.Add(delay)}, msg
	}
	st.NextAttempt = now.Add(delay)
	return failedEntry{st: st}, msg
}

// deliverBatch makes one attempt for several claimed events in one request
// and records the outcome, which is the same for all of them. Like deliver,
// it calls free as soon as the attempt is over.
func (d *Dispatcher) deliverBatch(ctx context.Context, seqs []uint64, free func()) {
	entries, gone, err := d.out.loadClaimed(d.q, seqs)
	if err != nil {
		d.log.Error("reading events from outbox", "destination", d.dest, "events", len(seqs), "err", err)
		for _, seq := range seqs {
			d.q.requeue(seq, d.now().Add(d.ceil))
		}
		return
	}
	for _, seq := range gone {
		d.q.forget(seq)
	}
	if len(entries) == 0 {
		return
	}
	n := len(entries)
	evs := make([]Event, n)
	attempts := make([]int, n)
	for i, e := range entries {
		evs[i], attempts[i] = e.ev, e.state().Attempts+1
	}
	d.attempts.Add(uint64(n))
	d.inflight.Add(int64(n))
	startedAt, start := d.now(), time.Now()
	err = d.batcher.DeliverBatch(ctx, evs, attempts)
	took := time.Since(start)
	d.inflight.Add(-int64(n))
	free()
	d.report(ctx, n, took, err)
	now := d.now()
	a := store.Attempt{At: startedAt, Duration: took}
	if err == nil {
		d.reachable()
		d.successes.Add(uint64(n))
		seqs := make([]uint64, n)
		for i, e := range entries {
			seqs[i] = e.seq
		}
		d.out.complete(success{q: d.q, seqs: seqs, at: startedAt, duration: took})
		d.log.Debug("events delivered", "destination", d.dest, "events", n)
		return
	}
	if ctx.Err() != nil {
		d.abandoned.Add(uint64(n))
		for _, e := range entries {
			d.q.requeue(e.seq, time.Time{})
		}
		return
	}
	d.failures.Add(uint64(n))
	d.unreachable(err)
	fs := make([]failedEntry, n)
	var msg string
	for i, e := range entries {
		fs[i], msg = d.failure(err, e.state(), e.acceptedAt, attempts[i], a, now)
		fs[i].seq = e.seq
	}
	d.failing.add(msg, n, "")
	buried, serr := d.out.settle(d.q, fs)
	if serr != nil {
		d.log.Error("recording failed attempts", "destination", d.dest, "events", n, "err", serr)
	}
	for i, b := range buried {
		if b {
			d.buried(evs[i].ID, fs[i].seq, attempts[i], fs[i].st.LastError)
		}
	}
	d.log.Debug("batch delivery failed", "destination", d.dest, "events", n, "err", msg)
}

// backoff returns the wait after the given number of failed attempts: a
// uniform draw from [0, min(BackoffMax, BackoffBase * 2^(failures-1))]
// (full jitter), but at least retryAfter capped at BackoffMax.
func (d *Dispatcher) backoff(failures int, retryAfter time.Duration) time.Duration {
	ceil := d.base
	for i := 1; i < failures && ceil < d.ceil; i++ {
		if ceil > d.ceil/2 {
			ceil = d.ceil
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, d.ceil)
	delay := ceil
	if n := int64(ceil) + 1; n > 0 {
		delay = time.Duration(d.rand(n))
	}
	if retryAfter > 0 {
		delay = max(delay, min(retryAfter, d.ceil))
	}
	return delay
}
