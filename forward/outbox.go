package forward

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/forward/internal/groupcommit"
	"github.com/imedge/imedge/forward/internal/journal"
	"github.com/imedge/imedge/internal/uring"
)

// txFunc is a write of a bbolt transaction.
type txFunc = func(*bolt.Tx) error

// newTxGroup returns a group commit running its calls' functions in one
// bbolt transaction per group. As with bbolt's Batch, a function may run
// more than once: when a group's transaction fails, each function is
// retried in a transaction of its own so that one failing write does not
// fail the others. Functions must therefore set their results from scratch
// on every run.
func newTxGroup(db *bolt.DB) *groupcommit.Group[txFunc] {
	return groupcommit.New(func(group []*groupcommit.Call[txFunc]) {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, c := range group {
				if err := c.Req(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || len(group) == 1 {
			for _, c := range group {
				c.Err = err
			}
			return
		}
		for _, c := range group {
			c.Err = db.Update(c.Req)
		}
	})
}

// update commits fn through the outbox's transaction group.
func (o *Outbox) update(fn txFunc) error { return o.group.Run(fn) }

// FileName is the name of the store file inside [OutboxOptions.Dir].
const FileName = "outbox.db"

// JournalFileName is the outbox's write-ahead journal inside
// [OutboxOptions.Dir], next to [FileName].
const JournalFileName = "outbox.journal"

// Bucket names inside the store file.
var (
	bucketPending  = []byte("pending")  // seq -> record
	bucketState    = []byte("state")    // seq -> delivery state of a pending record that failed before
	bucketDead     = []byte("dead")     // seq -> state + record
	bucketAccepted = []byte("accepted") // accept time + seq -> event id
	bucketMeta     = []byte("meta")     // keyJournalApplied -> seq
)

// keyJournalApplied holds the last journal sequence number applied to the
// store; see journal.go.
var keyJournalApplied = []byte("journal-applied")

// acceptedPrunePerAppend bounds how many expired accepted ids one Append
// removes; it only has to outpace the one id each Append adds.
const acceptedPrunePerAppend = 8

// OutboxOptions configures [OpenOutbox]. Dir is required; every other zero
// value selects the documented default.
type OutboxOptions struct {
	// Dir holds the store file (FileName). It is created with mode 0700 if
	// missing; the file is created with mode 0600.
	Dir string
	// MaxEvents bounds the stored events, pending plus dead letters. Zero
	// means 100 000.
	MaxEvents int
	// MaxBytes bounds the stored size of those events (body plus metadata).
	// Zero means 1 GiB.
	MaxBytes int64
	// MaxFileSize is a hard cap on the store file; a write that would grow
	// the file past it fails as it would on a full disk. Zero means no cap.
	MaxFileSize int64
	// RememberFor is how long the ids of accepted events stay listed for
	// [Outbox.AcceptedSince], delivered or not. Zero means 10 minutes.
	RememberFor time.Duration
	// MaxRemembered bounds the number of ids kept for AcceptedSince (the
	// oldest go first). Zero means 1 000 000.
	MaxRemembered int
	// LockTimeout is how long opening waits for another process to release
	// the file before failing with ErrLocked. Zero means 1 s.
	LockTimeout time.Duration
	// ReadOnly opens an existing store for inspection (Stats, List, Show,
	// AcceptedSince); writes fail. Several read-only opens may coexist, but
	// not with a writer.
	ReadOnly bool
	// Now is the clock for acceptance times; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger

	journalSize int64 // zero means journal.DefaultSize; tests make it small
	// newRing, when set, replaces uring.New (tests make it fail).
	newRing func() (*uring.Ring, error)
}

// Outbox is a durable, bounded queue of accepted events in an embedded
// bbolt store. Append returns only once the event is synced to disk; events
// leave only when a [Dispatcher] got a 2xx for them, or when an operator
// purges dead letters. One process at a time may open a directory.
//
// An Outbox is safe for concurrent use. Call Close when done, after
// stopping any Dispatcher that uses it.
type Outbox struct {
	db          *bolt.DB
	path        string
	opened      os.FileInfo // the store file as opened, for Writable (health.go)
	maxEvents   int
	maxBytes    int64
	rememberFor time.Duration
	maxRemember int
	readOnly    bool
	now         func() time.Time
	log         *slog.Logger

	mu           sync.Mutex // guards the counters and sched
	pendingN     int
	pendingBytes int64
	deadN        int
	deadBytes    int64
	sched        schedule
	// fresh holds events stored but not yet attempted, as appended, so
	// that their first delivery needs no store read (see freshCopy): their
	// journal entries, a pointer each rather than a copy of the event.
	fresh map[uint64]*journalEntry
	// absorbed counts events delivered before the applier stored them,
	// whose record was therefore never written to bbolt.
	absorbed atomic.Uint64

	remembered atomic.Int64               // approximate size of the accepted bucket
	group      *groupcommit.Group[txFunc] // every write transaction goes through it

	// The write-ahead journal and its applier (journal.go, apply.go).
	jr          *journal.Journal
	journalSize int64
	journalSync string // the flush method in use; empty when read-only
	// unapplied holds, in a read-only open, the journal's records past the
	// store's applied mark: events answered OK before a crash, which the
	// next writable open stores. They count and list as pending.
	unapplied  []*journalEntry
	newRing    func() (*uring.Ring, error)
	jgroup     *groupcommit.Group[*journalEntry]
	applyMu    sync.Mutex
	applyQ     []*journalEntry // synced to the journal, not yet in the store
	doneQ      []uint64        // delivered, to be deleted by the applier
	applyErr   error           // the last failure to apply, nil once one succeeds
	applyWake  chan struct{}
	applyHurry chan struct{} // the journal waits to be reused: skip the pause
	applyStop  chan struct{}
	applyDone  chan struct{}
	// Deletes of delivered events handed to the applier, and those it
	// finished; see waitApplied.
	delMu              sync.Mutex
	delCond            *sync.Cond
	delQueued, delDone uint64
	wake               chan struct{}
	done               chan struct{}
	closeOnce          sync.Once
	closed             atomic.Bool
}

// OpenOutbox opens (creating if needed) the outbox in o.Dir and loads its
// delivery index. It fails with ErrLocked when another process holds the
// directory, and with a wrapped error naming the path on any other problem.
// A file whose last write was torn by a crash opens normally: bbolt falls
// back to the previous committed state.
func OpenOutbox(o OutboxOptions) (*Outbox, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("opening outbox: %w: Dir is required", ErrInvalidOptions)
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

	lockTimeout := o.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		ReadOnly:     o.ReadOnly,
		MaxSize:      int(o.MaxFileSize),
		FreelistType: bolt.FreelistMapType,
		// The free-page list is rebuilt by a scan at open instead of being
		// written with every commit: commits stay small while a backlog grows
		// and shrinks, and a crash loses nothing (the scan is authoritative).
		NoFreelistSync: true,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("opening outbox %q: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening outbox %q: %w", path, err)
	}

	ob := &Outbox{
		db:          db,
		group:       newTxGroup(db),
		journalSize: journal.DefaultSize,
		path:        path,
		opened:      statOrNil(path),
		maxEvents:   100_000,
		maxBytes:    1 << 30,
		rememberFor: 10 * time.Minute,
		maxRemember: 1_000_000,
		readOnly:    o.ReadOnly,
		now:         time.Now,
		log:         o.Logger,
		sched:       newSchedule(),
		fresh:       make(map[uint64]*journalEntry),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if o.MaxEvents > 0 {
		ob.maxEvents = o.MaxEvents
	}
	if o.MaxBytes > 0 {
		ob.maxBytes = o.MaxBytes
	}
	if o.RememberFor > 0 {
		ob.rememberFor = o.RememberFor
	}
	if o.MaxRemembered > 0 {
		ob.maxRemember = o.MaxRemembered
	}
	if o.Now != nil {
		ob.now = o.Now
	}
	if o.journalSize > 0 {
		ob.journalSize = o.journalSize
	}
	ob.newRing = uring.New
	if o.newRing != nil {
		ob.newRing = o.newRing
	}
	if ob.log == nil {
		ob.log = slog.New(slog.DiscardHandler)
	}

	if looseDir {
		ob.log.Warn("outbox directory is accessible to other users; events hold user ids", "dir", o.Dir)
	}
	if created && !o.ReadOnly {
		if err := syncDir(o.Dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("syncing outbox directory %q: %w", o.Dir, err)
		}
	}
	if !o.ReadOnly {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketPending, bucketState, bucketDead, bucketAccepted, bucketMeta} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("initialising outbox %q: %w", path, err)
		}
	}
	if !o.ReadOnly {
		if err := ob.recoverJournal(filepath.Join(o.Dir, JournalFileName)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("recovering outbox journal in %q: %w", o.Dir, err)
		}
	} else if ob.unapplied, _, err = ob.journalTail(filepath.Join(o.Dir, JournalFileName)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("reading outbox journal in %q: %w", o.Dir, err)
	}
	if err := ob.load(); err != nil {
		ob.closeJournal()
		_ = db.Close()
		return nil, fmt.Errorf("loading outbox %q: %w", path, err)
	}
	ob.startApplier()
	ob.log.Info("outbox opened", "path", path, "pending", ob.pendingN, "dead", ob.deadN, "read_only", o.ReadOnly,
		"journal_sync", ob.journalSync)
	return ob, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load counts the stored events and builds the delivery index.
func (o *Outbox) load() error {
	for _, e := range o.unapplied {
		o.pendingN++
		o.pendingBytes += int64(len(e.rec))
	}
	return o.db.View(func(tx *bolt.Tx) error {
		state := tx.Bucket(bucketState)
		if p := tx.Bucket(bucketPending); p != nil {
			c := p.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq := keySeq(k)
				o.pendingN++
				o.pendingBytes += int64(len(v))
				var at time.Time
				if state != nil {
					if sv := state.Get(k); sv != nil {
						if st, err := decodeState(sv); err == nil {
							at = st.NextAttempt
						}
					}
				}
				o.sched.add(seq, at)
			}
		}
		if d := tx.Bucket(bucketDead); d != nil {
			c := d.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				o.deadN++
				if _, rec, err := splitDead(v); err == nil {
					o.deadBytes += int64(len(rec))
				}
			}
		}
		if a := tx.Bucket(bucketAccepted); a != nil {
			o.remembered.Store(countAccepted(a))
		}
		return nil
	})
}

// Path returns the store file's path.
func (o *Outbox) Path() string { return o.path }

// Append stores ev and returns once it is synced to disk. Concurrent Appends
// share one transaction and one fsync. It returns an error wrapping ErrFull,
// with nothing stored, when the event would exceed MaxEvents or MaxBytes;
// any other error (disk full, read-only store, closed outbox) also means
// nothing was stored. The same event id may be appended more than
// once; each copy is delivered.
func (o *Outbox) Append(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending event: %w", err)
	}
	if o.closed.Load() {
		return ErrClosed
	}
	now := o.now()
	rec := encodeRecord(ev, now)
	size := int64(len(rec))
	if err := o.reserve(size); err != nil {
		return err
	}
	if o.readOnly {
		o.unreserve(size)
		return fmt.Errorf("writing event to outbox: %w", berrors.ErrDatabaseReadOnly)
	}
	if err := o.applyFailure(); err != nil {
		o.unreserve(size)
		return fmt.Errorf("writing event to outbox: %w", err)
	}
	// Concurrent writers share one journal write and its fsync.
	e := &journalEntry{at: now, acc: newAcceptedID(now, ev.ID), rec: rec, ev: freshCopy(ev, rec)}
	err := o.jgroup.Run(e)
	if err == nil {
		err = e.err
	}
	if err != nil {
		o.unreserve(size)
		if errors.Is(err, ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return fmt.Errorf("writing event to outbox: %w", err)
	}
	return nil
}

func (o *Outbox) reserve(size int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pendingN+o.deadN+1 > o.maxEvents {
		return fmt.Errorf("storing event: %w (%d events stored, limit %d)", ErrFull, o.pendingN+o.deadN, o.maxEvents)
	}
	if o.pendingBytes+o.deadBytes+size > o.maxBytes {
		return fmt.Errorf("storing event: %w (%d bytes stored, limit %d)", ErrFull, o.pendingBytes+o.deadBytes, o.maxBytes)
	}
	o.pendingN++
	o.pendingBytes += size
	return nil
}

func (o *Outbox) unreserve(size int64) {
	o.mu.Lock()
	o.pendingN--
	o.pendingBytes -= size
	o.mu.Unlock()
}

// signal wakes a waiting Dispatcher.
func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// AcceptedSince calls fn, oldest first (events appended concurrently may
// come a few milliseconds out of order), for every event id accepted at or
// after since that is still remembered (see RememberFor), whether delivered
// or not. It is meant for reloading a dedupe window at start. fn runs inside
// a read transaction and must not call the Outbox.
func (o *Outbox) AcceptedSince(since time.Time, fn func(id string, at time.Time)) error {
	if o.closed.Load() {
		return ErrClosed
	}
	o.waitApplied()
	err := o.db.View(func(tx *bolt.Tx) error {
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
	if err != nil {
		return fmt.Errorf("reading accepted ids: %w", err)
	}
	return nil
}

// Stats returns the current counts and the age of the oldest pending event.
func (o *Outbox) Stats() (Stats, error) {
	if o.closed.Load() {
		return Stats{}, ErrClosed
	}
	o.waitApplied()
	o.mu.Lock()
	s := Stats{
		Pending:      o.pendingN,
		PendingBytes: o.pendingBytes,
		Dead:         o.deadN,
		DeadBytes:    o.deadBytes,
		Remembered:   int(max(o.remembered.Load(), 0)),
		MaxEvents:    o.maxEvents,
		MaxBytes:     o.maxBytes,
		Absorbed:     o.absorbed.Load(),
	}
	o.mu.Unlock()
	s.StoreFailing = o.applyFailure() != nil
	s.Unapplied = len(o.unapplied)
	err := o.db.View(func(tx *bolt.Tx) error {
		if p := tx.Bucket(bucketPending); p != nil {
			if k, v := p.Cursor().First(); k != nil {
				s.OldestPending = recordAcceptedAt(v)
			}
		}
		if s.OldestPending.IsZero() && len(o.unapplied) > 0 {
			s.OldestPending = o.unapplied[0].at
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("reading outbox stats: %w", err)
	}
	return s, nil
}

// List returns up to limit entries (all when limit <= 0) of the pending
// events, or of the dead letters when dead is true, oldest first. Bodies are
// left out.
func (o *Outbox) List(dead bool, limit int) ([]Entry, error) {
	var out []Entry
	err := o.scan(dead, func(e Entry, _ func() ([]byte, error)) (bool, error) {
		out = append(out, e)
		return limit <= 0 || len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing outbox: %w", err)
	}
	return out, nil
}

// Show returns the entry named by ref, body included: ref is an event id or
// a sequence number in decimal. Pending entries are searched before dead
// ones, each oldest first. It returns an error wrapping ErrNotFound when
// nothing matches.
func (o *Outbox) Show(ref string) (Entry, error) {
	var found *Entry
	pick := func(e Entry, body func() ([]byte, error)) (bool, error) {
		if !matchRef(ref, e.Seq, e.Event.ID) {
			return true, nil
		}
		b, err := body()
		if err != nil {
			return false, err
		}
		e.Event.Body = b
		found = &e
		return false, nil
	}
	for _, dead := range []bool{false, true} {
		if err := o.scan(dead, pick); err != nil {
			return Entry{}, fmt.Errorf("showing %q: %w", ref, err)
		}
		if found != nil {
			return *found, nil
		}
	}
	return Entry{}, fmt.Errorf("showing %q: %w", ref, ErrNotFound)
}

// scan walks one bucket in key order until fn returns false or an error,
// the pending one followed by the journal's unapplied records (read-only
// opens). Entries come without their body; fn may call body to read it
// (only during the call).
func (o *Outbox) scan(dead bool, fn func(e Entry, body func() ([]byte, error)) (bool, error)) error {
	if o.closed.Load() {
		return ErrClosed
	}
	o.waitApplied()
	more := true
	err := o.db.View(func(tx *bolt.Tx) error {
		name := bucketPending
		if dead {
			name = bucketDead
		}
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		state := tx.Bucket(bucketState)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var st deliveryState
			rec := v
			if dead {
				var err error
				if st, rec, err = splitDead(v); err != nil {
					return fmt.Errorf("entry %d: %w", keySeq(k), err)
				}
			} else if state != nil {
				if sv := state.Get(k); sv != nil {
					st, _ = decodeState(sv)
				}
			}
			e, err := recordEntry(keySeq(k), rec, st, dead)
			if err != nil {
				return fmt.Errorf("entry %d: %w", keySeq(k), err)
			}
			if more, err = fn(e, bodyOf(rec)); err != nil || !more {
				return err
			}
		}
		return nil
	})
	if err != nil || !more || dead {
		return err
	}
	for _, je := range o.unapplied {
		e, err := recordEntry(je.seq, je.rec, deliveryState{}, false)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", je.seq, err)
		}
		if more, err = fn(e, bodyOf(je.rec)); err != nil || !more {
			return err
		}
	}
	return nil
}

// recordEntry describes the stored record rec of sequence seq, with its
// delivery state, without its body.
func recordEntry(seq uint64, rec []byte, st deliveryState, dead bool) (Entry, error) {
	ev, acc, bodySize, err := decodeRecord(rec, false)
	if err != nil {
		return Entry{}, err
	}
	return Entry{
		Seq: seq, Event: ev, BodySize: bodySize, StoredSize: len(rec), AcceptedAt: acc,
		Attempts: st.Attempts, LastAttempt: st.LastAttempt, NextAttempt: st.NextAttempt,
		LastError: st.LastError, Dead: dead, DeadAt: st.DeadAt,
	}, nil
}

// bodyOf returns a function decoding rec's body.
func bodyOf(rec []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		full, _, _, err := decodeRecord(rec, true)
		return full.Body, err
	}
}

// Replay makes entries deliverable now. With dead true it moves dead
// letters back to the pending queue with a fresh attempt count (all of them
// when refs is empty); with dead false it resets the backoff and attempt
// count of pending entries. refs are event ids or sequence numbers. It
// returns how many entries it changed; refs that match nothing are reported
// in an error wrapping ErrNotFound, after the others were replayed.
func (o *Outbox) Replay(dead bool, refs ...string) (int, error) {
	if o.closed.Load() {
		return 0, ErrClosed
	}
	o.waitApplied()
	matched := make([]bool, len(refs))
	wanted := func(seq uint64, id string) bool {
		if len(refs) == 0 {
			return true
		}
		hit := false
		for i, r := range refs {
			if matchRef(r, seq, id) {
				matched[i] = true
				hit = true
			}
		}
		return hit
	}
	type moved struct {
		seq  uint64
		size int64
	}
	var changed []moved
	err := o.db.Update(func(tx *bolt.Tx) error {
		changed = changed[:0]
		clear(matched)
		p, s, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDead)
		if dead {
			c := d.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				_, rec, err := splitDead(v)
				if err != nil {
					return fmt.Errorf("entry %d: %w", keySeq(k), err)
				}
				ev, _, _, err := decodeRecord(rec, false)
				if err != nil {
					return fmt.Errorf("entry %d: %w", keySeq(k), err)
				}
				if !wanted(keySeq(k), ev.ID) {
					continue
				}
				if err := p.Put(append([]byte{}, k...), append([]byte{}, rec...)); err != nil {
					return err
				}
				if err := s.Delete(k); err != nil {
					return err
				}
				changed = append(changed, moved{keySeq(k), int64(len(rec))})
			}
			for _, m := range changed {
				if err := d.Delete(seqKey(m.seq)); err != nil {
					return err
				}
			}
			return nil
		}
		c := p.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			ev, _, _, err := decodeRecord(v, false)
			if err != nil {
				return fmt.Errorf("entry %d: %w", keySeq(k), err)
			}
			if !wanted(keySeq(k), ev.ID) {
				continue
			}
			if sv := s.Get(k); sv != nil {
				st, err := decodeState(sv)
				if err == nil {
					st.Attempts = 0
					st.NextAttempt = time.Time{}
					if err := s.Put(append([]byte{}, k...), encodeState(st)); err != nil {
						return err
					}
				}
			}
			changed = append(changed, moved{keySeq(k), 0})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("replaying outbox entries: %w", err)
	}
	o.mu.Lock()
	for _, m := range changed {
		if dead {
			o.deadN--
			o.deadBytes -= m.size
			o.pendingN++
			o.pendingBytes += m.size
			o.sched.add(m.seq, time.Time{})
		} else {
			o.sched.promote(m.seq)
		}
	}
	o.mu.Unlock()
	if len(changed) > 0 {
		o.signal()
	}
	var missing []error
	for i, ok := range matched {
		if !ok {
			missing = append(missing, fmt.Errorf("replaying %q: %w", refs[i], ErrNotFound))
		}
	}
	return len(changed), errors.Join(missing...)
}

// PurgeDead deletes every dead letter and returns how many there were.
func (o *Outbox) PurgeDead() (int, error) {
	if o.closed.Load() {
		return 0, ErrClosed
	}
	o.waitApplied()
	n := 0
	err := o.db.Update(func(tx *bolt.Tx) error {
		d := tx.Bucket(bucketDead)
		n = d.Stats().KeyN
		if err := tx.DeleteBucket(bucketDead); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketDead)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purging dead letters: %w", err)
	}
	o.mu.Lock()
	o.deadN, o.deadBytes = 0, 0
	o.mu.Unlock()
	return n, nil
}

// Close closes the store. Pending events stay on disk for the next open.
// Further calls return nil.
func (o *Outbox) Close() error {
	var err error
	o.closeOnce.Do(func() {
		o.closed.Store(true)
		close(o.done)
		o.stopApplier()
		o.closeJournal()
		if cerr := o.db.Close(); cerr != nil {
			err = fmt.Errorf("closing outbox %q: %w", o.path, cerr)
		}
	})
	return err
}

// The methods below are the Dispatcher's side of the outbox.

// claim takes the oldest due pending event for delivery (see schedule.take).
func (o *Outbox) claim(now time.Time) (seq uint64, wait time.Duration, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sched.take(now)
}

// inFlight returns how many events are claimed.
func (o *Outbox) inFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sched.inFlight()
}

// loadEntry reads a claimed event with its delivery state. It returns
// ErrNotFound when the event is no longer pending.
func (o *Outbox) loadEntry(seq uint64) (ev Event, st deliveryState, acceptedAt time.Time, err error) {
	if o.closed.Load() {
		return ev, st, acceptedAt, ErrClosed
	}
	if f, ok := o.takeFresh(seq); ok {
		return f.ev, st, f.acceptedAt, nil
	}
	o.waitSeqApplied(seq) // an early event may not be stored yet
	err = o.db.View(func(tx *bolt.Tx) error {
		k := seqKey(seq)
		v := tx.Bucket(bucketPending).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var derr error
		if ev, acceptedAt, _, derr = decodeRecord(v, true); derr != nil {
			return derr
		}
		if sv := tx.Bucket(bucketState).Get(k); sv != nil {
			st, _ = decodeState(sv)
		}
		return nil
	})
	return ev, st, acceptedAt, err
}

// release returns a claimed event untouched (its delivery was abandoned).
func (o *Outbox) release(seq uint64) {
	o.mu.Lock()
	o.sched.finish(seq, true, time.Time{})
	o.mu.Unlock()
	o.signal()
}

// finishAt ends the flight of seq and schedules it again at at.
func (o *Outbox) finishAt(seq uint64, at time.Time) {
	o.mu.Lock()
	o.sched.finish(seq, true, at)
	o.mu.Unlock()
	o.signal()
}

// forget drops a claimed event that is no longer stored.
func (o *Outbox) forget(seq uint64) {
	o.mu.Lock()
	o.sched.drop(seq)
	o.mu.Unlock()
}

// complete deletes a delivered event. On a store error the event is
// scheduled again at retryAt (it may then be delivered twice).
func (o *Outbox) complete(seq uint64, retryAt time.Time) error {
	return o.completeMany([]uint64{seq}, retryAt)
}

// removed accounts for a pending event whose removal (delivered, or moved to
// the dead letters when dead) was attempted. On err the event stays pending
// and is scheduled again at retryAt; size 0 means it was already gone.
func (o *Outbox) removed(seq uint64, size int64, dead bool, retryAt time.Time, err error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.sched.finish(seq, true, retryAt)
		o.signal()
		return err
	}
	if size > 0 {
		o.pendingN--
		o.pendingBytes -= size
		if dead {
			o.deadN++
			o.deadBytes += size
		}
	}
	o.sched.finish(seq, false, time.Time{})
	return nil
}

// reschedule persists a failed attempt and schedules the next one.
func (o *Outbox) reschedule(seq uint64, st deliveryState) error {
	o.waitSeqApplied(seq)
	err := o.update(func(tx *bolt.Tx) error {
		k := seqKey(seq)
		if tx.Bucket(bucketPending).Get(k) == nil {
			return nil
		}
		return tx.Bucket(bucketState).Put(k, encodeState(st))
	})
	o.mu.Lock()
	o.sched.finish(seq, true, st.NextAttempt)
	o.mu.Unlock()
	o.signal()
	if err != nil {
		return fmt.Errorf("recording failed attempt: %w", err)
	}
	return nil
}

// bury moves a pending event to the dead letters with its last state. On a
// store error it stays pending and is scheduled again at retryAt.
func (o *Outbox) bury(seq uint64, st deliveryState, retryAt time.Time) error {
	o.waitSeqApplied(seq)
	var size int64
	err := o.update(func(tx *bolt.Tx) error {
		size = 0
		k := seqKey(seq)
		p := tx.Bucket(bucketPending)
		rec := p.Get(k)
		if rec == nil {
			return nil
		}
		if err := tx.Bucket(bucketDead).Put(k, encodeDead(st, rec)); err != nil {
			return err
		}
		size = int64(len(rec))
		if err := p.Delete(k); err != nil {
			return err
		}
		return tx.Bucket(bucketState).Delete(k)
	})
	if err != nil {
		err = fmt.Errorf("dead-lettering event: %w", err)
	}
	return o.removed(seq, size, true, retryAt, err)
}
