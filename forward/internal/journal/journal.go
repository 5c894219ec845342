package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/imedge/imedge/internal/uring"
)

// DefaultSize is the journal file's size unless [Options.Size] says
// otherwise. Writing inside a file that does not grow keeps each group's
// flush to one small fdatasync (see [Journal]).
const DefaultSize = 64 << 20

// Header is the length and CRC-32C before each record's sequence number
// and payload.
const Header = 8

// Overhead is what the journal adds to each payload: the header and the
// sequence number.
const Overhead = Header + 8

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by [Journal.Write] for a payload that does not
// fit in the file even when it is empty. Callers keep payloads well under
// the size (the outbox stores those over a quarter of it directly).
var ErrTooLarge = errors.New("journal: record larger than the journal")

// ErrClosed is returned by a Journal's methods after Close.
var ErrClosed = errors.New("journal: closed")

// Method names how a journal flushes its writes.
const (
	MethodIOURing   = "io_uring"
	MethodFdatasync = "fdatasync"
)

// Options configures [Open]. The zero value selects the defaults.
type Options struct {
	// Size is the file's fixed size; zero means DefaultSize. A file of
	// another size is rewritten to this one (after the caller scanned it).
	Size int64
	// NewRing sets up the io_uring used to flush; nil means uring.New.
	// When it fails, the journal flushes with fdatasync(2) and
	// [Journal.Method] says why.
	NewRing func() (*uring.Ring, error)
}

// Journal is an open write-ahead file. One goroutine at a time writes
// (Write, Reserve: the outbox's group leader); MarkApplied, WaitApplied,
// Written, Wake and Close may be called from any goroutine. Create it with
// [Open], then call Start once before the first Write; call Close when
// done.
//
// An append changes no file size and allocates no block, so its
// fdatasync commits no filesystem metadata: on the development VM one took
// about 0.3 ms, against about 2 ms when the write grew the file and about
// 1.4 ms for a loaded bbolt commit (two fdatasyncs plus its page writes).
type Journal struct {
	f       *os.File
	path    string
	opened  os.FileInfo // the file as opened, for the outbox's Writable
	size    int64
	ring    *uring.Ring // nil: fdatasync(2)
	ringErr error       // why not io_uring

	// Set by the writer only (one at a time).
	off  int64
	buf  []byte
	next uint64 // the last sequence number given

	// hurry, when set, asks the applier not to wait for its next round;
	// the writer calls it before waiting to reuse the file. failing, when
	// set, returns the applier's error while it cannot apply records: the
	// writer then stops waiting and fails its group, instead of holding
	// every caller until the applier works again.
	hurry   func()
	failing func() error

	mu      sync.Mutex
	cond    *sync.Cond
	written uint64 // last sequence number written and synced
	applied uint64 // last sequence number applied (MarkApplied)
	closed  bool
}

// Open opens (creating with mode 0600 and sizing if needed) the journal at
// path and sets up its flush method. Scan the file first: sizing a file
// of another size clears its records.
func Open(path string, o Options) (*Journal, error) {
	size := o.Size
	if size <= 0 {
		size = DefaultSize
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		err = fillZeros(f, size)
	}
	if err == nil {
		fi, err = f.Stat() // after sizing: what the outbox's Writable compares with
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	j := &Journal{f: f, path: path, size: size, opened: fi}
	j.cond = sync.NewCond(&j.mu)
	newRing := o.NewRing
	if newRing == nil {
		newRing = uring.New
	}
	// No operation goes through the ring here: its first makes the kernel
	// start an io_uring worker thread, which the sandbox must not find when
	// it is applied (see sandbox.ErrKernelWorkers); a kernel that sets up a
	// ring with an eventfd (5.2+) has IORING_OP_FSYNC (5.1+).
	if j.ring, j.ringErr = newRing(); j.ringErr != nil {
		j.ring = nil
	}
	return j, nil
}

// fillZeros sizes a new (or resized) journal by writing zeros over all of
// it and syncing once, so that every pass overwrites allocated blocks: a
// write into a hole makes the filesystem allocate blocks, and each
// fdatasync then commits that metadata too (ext4: a jbd2 transaction),
// which cost about 4 us of CPU per callback while a sparse journal's first
// pass lasted. The file is empty or already scanned when this runs; zero
// records end a scan.
func fillZeros(f *os.File, size int64) error {
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			return fmt.Errorf("allocating the journal: %w", err)
		}
	}
	if err := f.Truncate(size); err != nil { // a larger file shrinks to size
		return err
	}
	return f.Sync()
}

// Method returns how the journal flushes (MethodIOURing or
// MethodFdatasync) and, for fdatasync, why io_uring was not used.
func (j *Journal) Method() (method string, whyNot error) {
	if j.ring != nil {
		return MethodIOURing, nil
	}
	return MethodFdatasync, j.ringErr
}

// Path returns the file's path.
func (j *Journal) Path() string { return j.path }

// Opened returns the file's identity as opened, to tell whether the path
// still names it (os.SameFile).
func (j *Journal) Opened() os.FileInfo { return j.opened }

// Size returns the file's fixed size.
func (j *Journal) Size() int64 { return j.size }

// SetHooks sets the applier's hooks (see the Journal's fields): hurry asks
// it to apply now, failing returns its error while it cannot apply. Call
// it before the first Write.
func (j *Journal) SetHooks(hurry func(), failing func() error) {
	j.hurry, j.failing = hurry, failing
}

// Start sets the last sequence number in use (the highest the store or
// the scanned records know): the next record gets last+1, and everything
// up to last counts as applied. Writing starts at the file's beginning.
func (j *Journal) Start(last uint64) {
	j.mu.Lock()
	j.next, j.written, j.applied = last, last, last
	j.mu.Unlock()
	j.off = 0
}

// Write gives the payloads the next sequence numbers in order, writes them
// and flushes, and calls synced for each run of them now on stable
// storage (payloads[k:k+n] got first..first+n-1; runs come in order and
// cover every payload). When the rest does not fit, it flushes what it
// wrote, waits until the applier applied everything written and reuses
// the file from its start. One writer at a time.
func (j *Journal) Write(payloads [][]byte, synced func(first uint64, n int)) error {
	j.buf = j.buf[:0]
	from := 0 // first payload in j.buf
	for i, p := range payloads {
		need := int64(Overhead + len(p))
		if j.off+int64(len(j.buf))+need > j.size {
			if err := j.flush(i-from, synced); err != nil {
				return err
			}
			from = i
			if err := j.reuse(); err != nil {
				return err
			}
			if need > j.size {
				return ErrTooLarge
			}
		}
		j.next++
		start := len(j.buf)
		j.buf = binary.LittleEndian.AppendUint32(j.buf, uint32(8+len(p)))
		j.buf = append(j.buf, 0, 0, 0, 0) // CRC, below
		j.buf = binary.LittleEndian.AppendUint64(j.buf, j.next)
		j.buf = append(j.buf, p...)
		crc := crc32.Checksum(j.buf[start+Header:], crcTable)
		binary.LittleEndian.PutUint32(j.buf[start+4:], crc)
	}
	return j.flush(len(payloads)-from, synced)
}

// flush writes the buffered records (the last n given a sequence number)
// at the current offset, flushes them and reports them synced.
func (j *Journal) flush(n int, synced func(first uint64, n int)) error {
	if len(j.buf) == 0 {
		return nil
	}
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		return fmt.Errorf("writing journal: %w", err)
	}
	if err := j.sync(); err != nil {
		return fmt.Errorf("syncing journal: %w", err)
	}
	j.off += int64(len(j.buf))
	j.buf = j.buf[:0]
	j.mu.Lock()
	j.written = j.next
	j.mu.Unlock()
	synced(j.next-uint64(n)+1, n)
	return nil
}

// Reserve waits until everything written so far was applied and returns
// the next sequence number, for a record the caller stores elsewhere
// directly (and then marks applied). One writer at a time.
func (j *Journal) Reserve() (uint64, error) {
	if err := j.waitAllApplied(); err != nil {
		return 0, err
	}
	j.next++
	return j.next, nil
}

// waitAllApplied waits until the applier has applied every record written
// so far, unless it is failing or the journal closes.
func (j *Journal) waitAllApplied() error {
	if j.hurry != nil {
		j.hurry()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.applied < j.written {
		if j.closed {
			return ErrClosed
		}
		if j.failing != nil {
			if err := j.failing(); err != nil {
				return fmt.Errorf("journal full while its records cannot be applied: %w", err)
			}
		}
		j.cond.Wait()
	}
	return nil
}

// reuse waits until every record written was applied, then starts writing
// over the previous pass from the file's beginning. Not clearing the file
// keeps its blocks: every pass overwrites written blocks in place, and a
// flush then has no file metadata to commit (75 against 107 us of CPU per
// 16 KiB write and fdatasync on the development VM).
func (j *Journal) reuse() error {
	if err := j.waitAllApplied(); err != nil {
		return fmt.Errorf("reusing journal: %w", err)
	}
	j.off = 0
	return nil
}

// Written returns the last sequence number written and synced.
func (j *Journal) Written() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.written
}

// MarkApplied records that every sequence number up to seq was applied.
func (j *Journal) MarkApplied(seq uint64) {
	j.mu.Lock()
	if seq > j.applied {
		j.applied = seq
	}
	j.mu.Unlock()
	j.cond.Broadcast()
}

// WaitApplied waits until every sequence number up to seq was applied, the
// journal closes, or giveUp (checked at each wake-up; see Wake) returns
// true. It asks the applier to hurry.
func (j *Journal) WaitApplied(seq uint64, giveUp func() bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.applied >= seq {
		return
	}
	if j.hurry != nil {
		j.hurry()
	}
	for j.applied < seq && !j.closed && !giveUp() {
		j.cond.Wait()
	}
}

// Wake makes every waiter check its condition again (the applier calls it
// when it starts failing).
func (j *Journal) Wake() { j.cond.Broadcast() }

// sync flushes the file's data to stable storage.
func (j *Journal) sync() error {
	if j.ring != nil {
		return j.ring.Fdatasync(j.f)
	}
	return fdatasync(j.f)
}

// Close wakes every waiter and closes the file (and the ring).
func (j *Journal) Close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.cond.Broadcast()
	if j.ring != nil {
		_ = j.ring.Close()
	}
	return j.f.Close()
}

// Scan calls fn for each intact record of the journal file at path, in
// order, and stops at the first torn, zero or corrupt one, or at the first
// whose sequence number is not above the previous one's (see the package
// documentation). A missing file has no records. The payload passed to fn
// is the caller's to keep. It only reads, whatever the file's size.
func Scan(path string, fn func(seq uint64, payload []byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	r := io.NewSectionReader(f, 0, size)
	var hdr [Header]byte
	var off int64
	var prev uint64
	for {
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil // end of file
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n < 8 || off+Header+n > size {
			return nil
		}
		payload := make([]byte, n)
		if _, err := r.ReadAt(payload, off+Header); err != nil {
			return nil
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return nil
		}
		seq := binary.LittleEndian.Uint64(payload[:8])
		if seq <= prev {
			return nil
		}
		prev = seq
		if err := fn(seq, payload[8:]); err != nil {
			return err
		}
		off += Header + n
	}
}
