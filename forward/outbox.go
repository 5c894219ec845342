package forward

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/forward/internal/store"
	"github.com/imedge/imedge/internal/uring"
)

// FileName is the name of the store file inside [OutboxOptions.Dir].
const FileName = "outbox.db"

// JournalFileName is the outbox's write-ahead journal inside
// [OutboxOptions.Dir], next to [FileName].
const JournalFileName = "outbox.journal"

// Defaults of [OutboxOptions].
const (
	DefaultMaxEvents     = 100_000
	DefaultMaxBytes      = 1 << 30
	DefaultRememberFor   = 10 * time.Minute
	DefaultMaxRemembered = 1_000_000
	// DefaultRetainDelivered keeps a day of delivered events for replay,
	// within the room the limits leave (see the package documentation).
	DefaultRetainDelivered = 24 * time.Hour
)

// OutboxOptions configures [OpenOutbox]. Dir is required; every other zero
// value selects the documented default.
type OutboxOptions struct {
	// Dir holds the store file (FileName) and the journal
	// (JournalFileName). It is created with mode 0700 if missing; the files
	// are created with mode 0600.
	Dir string
	// Destinations names the configured destinations besides
	// DefaultDestination, which always exists: the patterns of imedge's
	// routes (e.g. "Group.*"). Names must be unique, non-empty and not
	// URLs. Each destination has its own queue and Dispatcher and an equal
	// share of MaxEvents and MaxBytes (see the package documentation).
	// Read-only opens ignore it and show every stored destination.
	Destinations []string
	// MaxEvents bounds the stored events, pending plus dead letters, of all
	// destinations together. Zero means DefaultMaxEvents.
	MaxEvents int
	// MaxBytes bounds the stored size of those events (body plus metadata).
	// Zero means DefaultMaxBytes.
	MaxBytes int64
	// MaxFileSize is a hard cap on the store file; a write that would grow
	// the file past it fails as it would on a full disk. Zero means no cap.
	MaxFileSize int64
	// RememberFor is how long the ids of accepted events stay listed for
	// [Outbox.AcceptedSince], delivered or not. Zero means
	// DefaultRememberFor.
	RememberFor time.Duration
	// MaxRemembered bounds the number of ids kept for AcceptedSince (the
	// oldest go first). Zero means DefaultMaxRemembered.
	MaxRemembered int
	// RetainDelivered is how long delivered events (bodies included) are
	// kept so that they can be replayed ([Outbox.ReplayDelivered]), within
	// the room MaxEvents and MaxBytes leave: the oldest deliveries are
	// dropped first, and before an Append could be refused, so a retained
	// event never causes ErrFull. Zero means DefaultRetainDelivered;
	// negative keeps none (and drops those kept before).
	RetainDelivered time.Duration
	// LockTimeout is how long opening waits for another process to release
	// the file before failing with ErrLocked. Zero means 1 s.
	LockTimeout time.Duration
	// ReadOnly opens an existing store for inspection (Stats, List, Show,
	// AcceptedSince); writes fail. Several read-only opens may coexist, but
	// not with a writer. The journal is read, not recovered.
	ReadOnly bool
	// Now is the clock for acceptance times; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger

	journalSize int64 // zero means journal.DefaultSize; tests make it small
	// newRing, when set, replaces uring.New (tests make it fail to force
	// the fdatasync fallback).
	newRing func() (*uring.Ring, error)
}

// Outbox is a durable, bounded queue of accepted events, per destination,
// in an embedded bbolt store behind a write-ahead journal. Append returns
// only once the event is on stable storage; events leave only when a
// [Dispatcher] got a 2xx for them, or when an operator purges dead
// letters. One process at a time may open a directory for writing.
//
// An Outbox is safe for concurrent use, the operator methods included
// (they may run while Dispatchers deliver). Call Close when done, after
// stopping every Dispatcher that uses it.
type Outbox struct {
	st       *store.Store
	ap       *applier // nil when read-only
	readOnly bool
	now      func() time.Time
	log      *slog.Logger

	maxEvents int
	maxBytes  int64
	// queues holds a queue per destination: fixed once a writable open
	// returns (Append reads it without a lock); a read-only open adds the
	// destinations it finds, under queuesMu.
	queuesMu sync.Mutex
	queues   map[string]*queue
	def      *queue

	// unapplied holds, in a read-only open, the journal's records past the
	// store's applied mark: events answered OK before a crash, which the
	// next writable open stores. They count and list as pending.
	unapplied []*journalEntry

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closed    atomic.Bool
}

// OpenOutbox opens (creating if needed) the outbox in o.Dir: it checks and
// upgrades the store's format, recovers the journal, and loads each
// destination's delivery index. It fails with an error wrapping ErrLocked
// when another process holds the directory, ErrNewerFormat when a newer
// imedge wrote it, and a wrapped error naming the path on any other
// problem. A file whose last write was torn by a crash opens normally:
// bbolt falls back to the previous committed state and the journal
// supplies what it lost.
func OpenOutbox(o OutboxOptions) (*Outbox, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("opening outbox: %w: Dir is required", ErrInvalidOptions)
	}
	names, err := destinationNames(o.Destinations)
	if err != nil {
		return nil, err
	}
	if !o.ReadOnly {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating outbox directory %q: %w", o.Dir, err)
		}
	}
	path := filepath.Join(o.Dir, FileName)
	looseDir := false
	if fi, err := os.Stat(o.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		looseDir = true
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)

	ob := &Outbox{
		readOnly:  o.ReadOnly,
		now:       time.Now,
		log:       o.Logger,
		maxEvents: DefaultMaxEvents,
		maxBytes:  DefaultMaxBytes,
		queues:    make(map[string]*queue),
		done:      make(chan struct{}),
	}
	if o.MaxEvents > 0 {
		ob.maxEvents = o.MaxEvents
	}
	if o.MaxBytes > 0 {
		ob.maxBytes = o.MaxBytes
	}
	if o.Now != nil {
		ob.now = o.Now
	}
	if ob.log == nil {
		ob.log = slog.New(slog.DiscardHandler)
	}
	if looseDir {
		ob.log.Warn("outbox directory is accessible to other users; events hold user ids", "dir", o.Dir)
	}
	ob.st, err = store.Open(path, store.Options{ReadOnly: o.ReadOnly, LockTimeout: o.LockTimeout, MaxFileSize: o.MaxFileSize,
		RememberFor: o.RememberFor, MaxRemembered: o.MaxRemembered})
	if err != nil {
		return nil, err
	}
	if created && !o.ReadOnly {
		if err := syncDir(o.Dir); err != nil {
			_ = ob.st.Close()
			return nil, fmt.Errorf("syncing outbox directory %q: %w", o.Dir, err)
		}
	}
	if f := ob.st.FoundFormat(); f > 0 && f < store.Format && !o.ReadOnly {
		ob.log.Info("outbox format upgraded", "path", path, "from", f, "to", store.Format)
	}
	ob.makeQueues(names)

	jpath := filepath.Join(o.Dir, JournalFileName)
	if o.ReadOnly {
		ob.unapplied, _, err = journalTail(ob.st, jpath, ob.queueFor)
		if err != nil {
			_ = ob.st.Close()
			return nil, fmt.Errorf("reading outbox journal in %q: %w", o.Dir, err)
		}
	} else {
		retain := o.RetainDelivered
		if retain == 0 {
			retain = DefaultRetainDelivered
		}
		ob.ap, err = openJournal(applierOptions{
			st: ob.st, path: jpath, journalSize: o.journalSize, newRing: o.newRing,
			queueFor: ob.queueFor, queues: ob.queueList, maxEvents: ob.maxEvents, maxBytes: ob.maxBytes,
			retain: retain, now: ob.now, closed: &ob.closed, log: ob.log,
		})
		if err != nil {
			_ = ob.st.Close()
			return nil, fmt.Errorf("recovering outbox journal in %q: %w", o.Dir, err)
		}
	}
	if err := ob.load(); err != nil {
		if ob.ap != nil {
			_ = ob.ap.jr.Close()
		}
		_ = ob.st.Close()
		return nil, fmt.Errorf("loading outbox %q: %w", path, err)
	}
	method := ""
	if ob.ap != nil {
		var why error
		if method, why = ob.ap.jr.Method(); why != nil {
			ob.log.Info("outbox journal flushes with fdatasync(2): io_uring unavailable", "error", why.Error())
		}
		ob.ap.start()
	}
	total := ob.totals()
	ob.log.Info("outbox opened", "path", path, "pending", total.Pending, "dead", total.Dead, "retained", total.Retained,
		"destinations", len(ob.queues), "read_only", o.ReadOnly, "journal_sync", method)
	return ob, nil
}

// destinationNames checks the configured destinations and returns every
// name, DefaultDestination first.
func destinationNames(dests []string) ([]string, error) {
	names := []string{DefaultDestination}
	for _, d := range dests {
		switch {
		case d == "":
			return nil, fmt.Errorf("opening outbox: %w: empty destination name", ErrInvalidOptions)
		case strings.Contains(d, "://"):
			// The name is stored and logged; a URL may carry a secret.
			return nil, fmt.Errorf("opening outbox: %w: destination names are route names, not URLs", ErrInvalidOptions)
		case slices.Contains(names, d):
			if d == DefaultDestination {
				continue
			}
			return nil, fmt.Errorf("opening outbox: %w: destination %q named twice", ErrInvalidOptions, d)
		}
		names = append(names, d)
	}
	return names, nil
}

// makeQueues creates the queues of names with equal shares of the limits
// (the remainder of the division goes to the first, DefaultDestination).
func (o *Outbox) makeQueues(names []string) {
	n := len(names)
	events, bytes := o.maxEvents/n, o.maxBytes/int64(n)
	for i, name := range names {
		e, b := max(events, 1), max(bytes, 1)
		if i == 0 {
			e += o.maxEvents - events*n
			b += o.maxBytes - bytes*int64(n)
		}
		o.queues[name] = newQueue(name, e, b, freshShare(n))
	}
	o.def = o.queues[DefaultDestination]
}

// queueFor returns the queue that delivers events stored under dest:
// its own, or DefaultDestination's for a destination no longer
// configured. A read-only open makes a queue for every stored name, so
// that its stats show them.
func (o *Outbox) queueFor(dest string) *queue {
	if !o.readOnly {
		if q, ok := o.queues[dest]; ok {
			return q
		}
		return o.def
	}
	o.queuesMu.Lock()
	defer o.queuesMu.Unlock()
	q, ok := o.queues[dest]
	if !ok {
		q = newQueue(dest, o.maxEvents, o.maxBytes, 0) // read-only: nothing fresh
		o.queues[dest] = q
	}
	return q
}

// queueList returns the queues sorted by name.
func (o *Outbox) queueList() []*queue {
	o.queuesMu.Lock()
	defer o.queuesMu.Unlock()
	qs := make([]*queue, 0, len(o.queues))
	for _, q := range o.queues {
		qs = append(qs, q)
	}
	slices.SortFunc(qs, func(a, b *queue) int { return strings.Compare(a.name, b.name) })
	return qs
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load counts the stored events per destination and builds the delivery
// schedules; events of destinations no longer configured go to
// DefaultDestination's queue, with a warning per destination.
func (o *Outbox) load() error {
	rerouted := map[string][2]int{} // destination -> pending, dead
	count := func(dest string, kind store.Kind) *queue {
		q := o.queueFor(dest)
		if q.name != dest && kind != store.KindDelivered {
			n := rerouted[dest]
			if kind == store.KindPending {
				n[0]++
			} else {
				n[1]++
			}
			rerouted[dest] = n
			q.rerouted++
		}
		return q
	}
	for _, e := range o.unapplied {
		q := e.q
		q.pendingN++
		q.pendingBytes += int64(len(e.Rec))
	}
	err := o.st.Load(func(l store.Loaded) {
		q := count(l.Destination, l.Kind)
		switch l.Kind {
		case store.KindPending:
			q.pendingN++
			q.pendingBytes += l.Size
			q.sched.add(l.Seq, l.NextAttempt)
		case store.KindDead:
			q.deadN++
			q.deadBytes += l.Size
		case store.KindDelivered:
			q.retainedN++
			q.retainedBytes += l.Size
		}
	})
	if err != nil {
		return err
	}
	for dest, n := range rerouted {
		o.log.Warn("outbox holds events of a destination no longer configured; delivering them through the default destination",
			"destination", dest, "pending", n[0], "dead", n[1], "via", DefaultDestination)
	}
	if o.readOnly {
		qs := o.queueList()
		for _, q := range qs {
			q.maxEvents, q.maxBytes = max(o.maxEvents/len(qs), 1), max(o.maxBytes/int64(len(qs)), 1)
		}
	}
	return nil
}

// Path returns the store file's path.
func (o *Outbox) Path() string { return o.st.Path() }

// Destinations returns the names of the outbox's destinations, sorted.
func (o *Outbox) Destinations() []string {
	var names []string
	for _, q := range o.queueList() {
		names = append(names, q.name)
	}
	return names
}

// Append stores ev for delivery to its destination and returns once it is
// on stable storage. Concurrent Appends share one journal write and one
// flush. It returns an error wrapping ErrFull, with nothing stored, when
// the event would take its destination past its share of MaxEvents or
// MaxBytes (other destinations keep accepting), and one wrapping
// ErrUnknownDestination for a destination not configured; any other error
// (disk full, read-only store, closed outbox) also means nothing was
// stored. The same event id may be appended more than once; each copy is
// delivered.
func (o *Outbox) Append(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending event: %w", err)
	}
	if o.closed.Load() {
		return ErrClosed
	}
	if o.readOnly {
		return fmt.Errorf("writing event to outbox: %w", store.ErrReadOnly)
	}
	if ev.Destination == "" {
		ev.Destination = DefaultDestination
	}
	q := o.queues[ev.Destination]
	if q == nil {
		return fmt.Errorf("appending event: %w: %q", ErrUnknownDestination, ev.Destination)
	}
	now := o.now()
	r := ev.record(now)
	rec := store.EncodeRecord(&r)
	size := int64(len(rec))
	if err := q.reserve(size); err != nil {
		return err
	}
	if err := o.ap.failure(); err != nil {
		q.unreserve(size)
		return fmt.Errorf("writing event to outbox: %w", err)
	}
	e := &journalEntry{
		Entry: store.Entry{Rec: rec, ID: store.NewAcceptedID(now, ev.ID)},
		q:     q,
		ev:    freshCopy(ev, rec),
	}
	if err := o.ap.append(e); err != nil {
		q.unreserve(size)
		if errIsClosed(err) || errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("writing event to outbox: %w", err)
	}
	return nil
}

// Close closes the outbox: it lets the applier store what is journaled,
// then closes the journal and the store. Pending events stay on disk for
// the next open. Further calls return nil.
func (o *Outbox) Close() error {
	var err error
	o.closeOnce.Do(func() {
		o.closed.Store(true)
		close(o.done)
		if o.ap != nil {
			o.ap.close()
		}
		if cerr := o.st.Close(); cerr != nil {
			err = fmt.Errorf("closing outbox %q: %w", o.st.Path(), cerr)
		}
	})
	return err
}

// waitApplied waits until reads see every event appended so far and no
// delivered one (see applier.waitApplied).
func (o *Outbox) waitApplied() {
	if o.ap != nil {
		o.ap.waitApplied()
	}
}
