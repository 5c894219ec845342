package store

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/forward/internal/groupcommit"
)

// Format is the store format this code writes and the newest it reads.
// Format 1 (imedge before destinations) has no format key; its records and
// states are read as they are and keep their versions until rewritten.
const Format = 2

// Bucket names inside the store file.
var (
	bucketPending   = []byte("pending")   // seq -> record
	bucketState     = []byte("state")     // seq -> state of a pending record that failed before
	bucketDead      = []byte("dead")      // seq -> held value (state + record)
	bucketDelivered = []byte("delivered") // deliveredKey -> held value (format 2)
	bucketAccepted  = []byte("accepted")  // accept time + seq -> block of event ids
	bucketMeta      = []byte("meta")      // keyJournalApplied -> seq; keyFormat -> version
)

var (
	// keyJournalApplied holds the last journal sequence number whose
	// record (and everything before it) is in the store.
	keyJournalApplied = []byte("journal-applied")
	// keyFormat holds the store format (uvarint); absent in format 1.
	keyFormat = []byte("format")
)

// Options configures [Open]. The zero value selects the defaults.
type Options struct {
	// ReadOnly opens an existing store for reading; writes fail.
	ReadOnly bool
	// LockTimeout is how long opening waits for another process to release
	// the file; zero means 1 s.
	LockTimeout time.Duration
	// MaxFileSize caps the file; a write past it fails as on a full disk.
	// Zero means no cap.
	MaxFileSize int64
	// RememberFor is how long accepted ids are kept; zero means 10 min.
	RememberFor time.Duration
	// MaxRemembered bounds the accepted ids kept; zero means 1 000 000.
	MaxRemembered int
}

// Store is the outbox's bbolt file: its buckets, record codecs, format
// version and the reads and writes the outbox makes. It holds no event in
// memory and knows nothing of schedules or destinations' limits. Safe for
// concurrent use; writes share transactions through a group commit. Call
// Close when done.
type Store struct {
	db          *bolt.DB
	path        string
	readOnly    bool
	opened      os.FileInfo // the file as opened, for the outbox's Writable
	group       *groupcommit.Group[func(*bolt.Tx) error]
	rememberFor time.Duration
	maxRemember int
	remembered  atomic.Int64 // approximate size of the accepted bucket
	found       int          // the format found at open
}

// Open opens (creating with mode 0600 if needed) the store file at path,
// creates its buckets, and checks its format: a newer one fails with an
// error wrapping ErrNewerFormat, an older one is upgraded (a writable
// open) or read as it is (read-only). It fails with an error wrapping
// ErrLocked when another process holds the file.
func Open(path string, o Options) (*Store, error) {
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
	s := &Store{
		db: db, path: path, readOnly: o.ReadOnly,
		rememberFor: 10 * time.Minute, maxRemember: 1_000_000,
	}
	if o.RememberFor > 0 {
		s.rememberFor = o.RememberFor
	}
	if o.MaxRemembered > 0 {
		s.maxRemember = o.MaxRemembered
	}
	if fi, err := os.Stat(path); err == nil {
		s.opened = fi
	}
	s.group = newTxGroup(db)
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening outbox %q: %w", path, err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if a := tx.Bucket(bucketAccepted); a != nil {
			s.remembered.Store(countAccepted(a))
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening outbox %q: %w", path, err)
	}
	return s, nil
}

// checkFormat reads the store's format, refuses a newer one, and (when
// writable) creates the buckets and records the current format.
func (s *Store) checkFormat() error {
	check := func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		switch {
		case m == nil:
			s.found = 0 // a new store
		case m.Get(keyFormat) == nil:
			s.found = 1
		default:
			v := m.Get(keyFormat)
			n, k := uvarint(v)
			if k <= 0 || n == 0 || n > 1<<16 {
				return fmt.Errorf("%w: format %x", ErrCorrupt, v)
			}
			s.found = int(n)
		}
		if s.found > Format {
			return fmt.Errorf("%w: outbox format %d is newer than this imedge understands (%d): upgrade imedge, or drain it with the newer version and move it aside so this one starts a new outbox (docs/operations.md, Downgrading)",
				ErrNewerFormat, s.found, Format)
		}
		return nil
	}
	if s.readOnly {
		return s.db.View(check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketPending, bucketState, bucketDead, bucketDelivered, bucketAccepted, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if s.found == Format {
			return nil
		}
		// Format 1 to 2: the delivered bucket (created above) and the
		// format key. Records and states of version 1 stay as they are:
		// the decoders read both versions (a version 1 record's
		// destination is DefaultDestination).
		return tx.Bucket(bucketMeta).Put(keyFormat, appendUvarint(nil, Format))
	})
}

// FoundFormat returns the format the store had when opened: 0 for a new
// store, Format for a current one, less for one this open upgraded (or, read
// only, reads as it is).
func (s *Store) FoundFormat() int { return s.found }

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Opened returns the file's identity as opened, nil if it could not be
// read, to tell whether the path still names it.
func (s *Store) Opened() os.FileInfo { return s.opened }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Remembered returns the approximate number of accepted ids kept.
func (s *Store) Remembered() int64 { return max(s.remembered.Load(), 0) }

// Close closes the file. Further calls fail.
func (s *Store) Close() error { return s.db.Close() }

// update commits fn through the transaction group.
func (s *Store) update(fn func(*bolt.Tx) error) error { return s.group.Run(fn) }

// newTxGroup returns a group commit running its calls' functions in one
// bbolt transaction per group. As with bbolt's Batch, a function may run
// more than once: when a group's transaction fails, each function is
// retried in a transaction of its own so that one failing write does not
// fail the others. Functions must therefore set their results from scratch
// on every run.
func newTxGroup(db *bolt.DB) *groupcommit.Group[func(*bolt.Tx) error] {
	return groupcommit.New(func(group []*groupcommit.Call[func(*bolt.Tx) error]) {
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

// Kind is the part of the store an event is in.
type Kind uint8

// The kinds of stored events.
const (
	KindPending   Kind = iota + 1 // waiting for delivery
	KindDead                      // dead-lettered
	KindDelivered                 // delivered and retained
)

// Loaded is what [Store.Load] reports of one stored event.
type Loaded struct {
	Kind        Kind      // where it is
	Seq         uint64    // its sequence number
	Destination string    // the destination its record names
	Size        int64     // the record's length
	NextAttempt time.Time // pending events: zero means due now
}

// Load calls fn for every stored event, pending ones in sequence order
// first, then dead letters, then retained delivered events, so the
// outbox can count them and rebuild its schedules. A record that does not
// parse is reported with DefaultDestination.
func (s *Store) Load(fn func(Loaded)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		state := tx.Bucket(bucketState)
		if p := tx.Bucket(bucketPending); p != nil {
			c := p.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				l := Loaded{Kind: KindPending, Seq: keySeq(k), Destination: destOf(v), Size: int64(len(v))}
				if state != nil {
					if sv := state.Get(k); sv != nil {
						if st, err := DecodeState(sv); err == nil {
							l.NextAttempt = st.NextAttempt
						}
					}
				}
				fn(l)
			}
		}
		for _, b := range []struct {
			name []byte
			kind Kind
			seq  func([]byte) uint64
		}{{bucketDead, KindDead, keySeq}, {bucketDelivered, KindDelivered, deliveredKeySeq}} {
			bk := tx.Bucket(b.name)
			if bk == nil {
				continue
			}
			c := bk.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				rec, err := heldRecord(v)
				if err != nil {
					rec = nil
				}
				fn(Loaded{Kind: b.kind, Seq: b.seq(k), Destination: destOf(rec), Size: int64(len(rec))})
			}
		}
		return nil
	})
}

// destOf returns a record's destination, DefaultDestination when it does
// not parse.
func destOf(rec []byte) string {
	d, err := RecordDestination(rec)
	if err != nil {
		return DefaultDestination
	}
	return d
}

// Marks returns the journal-applied mark (every journal record up to it is
// in the store) and the highest sequence number the store knows.
func (s *Store) Marks() (applied, last uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keyJournalApplied); v != nil {
				applied = keySeq(v)
			}
		}
		last = applied
		// Format 1 stored oversized events without moving the mark.
		for _, name := range [][]byte{bucketPending, bucketDead} {
			if b := tx.Bucket(name); b != nil {
				last = max(last, b.Sequence())
				if k, _ := b.Cursor().Last(); k != nil {
					last = max(last, keySeq(k))
				}
			}
		}
		return nil
	})
	return applied, last, err
}
