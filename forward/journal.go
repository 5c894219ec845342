package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"github.com/imedge/imedge/internal/uring"
)

// JournalFileName is the outbox's write-ahead journal inside
// [OutboxOptions.Dir], next to [FileName].
const JournalFileName = "outbox.journal"

// journalSize is the journal file's fixed size, written with zeros once
// (see fillZeros), so that an append changes no file size and allocates
// no block: an fdatasync after writing inside
// the file took about 0.3 ms on the development VM against about 2 ms when
// the write grew the file, and bbolt's own commit (two fdatasyncs plus its
// page writes) about 1.4 ms under load.
const journalSize = 64 << 20

// journalHeader is the length (uint32) and CRC-32C (uint32) before each
// record's payload: the sequence number (uint64) and the encoded record.
const journalHeader = 8

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// JournalSync is how the outbox journal flushes each group of records to
// stable storage before the callbacks in it are answered.
type JournalSync string

// The journal's flush methods (--journal-sync).
const (
	// JournalSyncAuto uses io_uring where the kernel offers it, else
	// fdatasync(2). The zero value means Auto.
	JournalSyncAuto JournalSync = "auto"
	// JournalSyncIOURing flushes through io_uring (internal/uring): the
	// goroutine waiting for the flush parks instead of holding an OS
	// thread in a blocking call, which spares the Go runtime's thread
	// hand-offs. Opening fails where io_uring is unavailable.
	JournalSyncIOURing JournalSync = "io_uring"
	// JournalSyncFdatasync calls fdatasync(2), blocking an OS thread.
	JournalSyncFdatasync JournalSync = "fdatasync"
)

// ParseJournalSync validates a --journal-sync value; "" means Auto.
func ParseJournalSync(s string) (JournalSync, error) {
	switch m := JournalSync(s); m {
	case "", JournalSyncAuto:
		return JournalSyncAuto, nil
	case JournalSyncIOURing, JournalSyncFdatasync:
		return m, nil
	}
	return "", fmt.Errorf("journal sync %q: want %s, %s or %s", s, JournalSyncAuto, JournalSyncIOURing, JournalSyncFdatasync)
}

// errJournalFull reports a record that does not fit in a freshly reset
// journal; it cannot happen, as records over a quarter of the journal are
// stored in bbolt directly (Outbox.commitJournal).
var errJournalFull = errors.New("journal full")

// journal is the outbox's write-ahead log. Append writes records at the
// current offset of a preallocated file and fsyncs them, one write and one
// fdatasync per group of concurrent callers; a background applier copies
// them into bbolt in larger transactions. When the file is nearly full and
// the applier has copied everything, writing starts over from the
// beginning. Recovery (scanJournal) reads records up to the first that is
// torn, zero, fails its CRC or belongs to the previous pass.
type journal struct {
	f      *os.File
	path   string
	opened os.FileInfo // the file as opened, for Outbox.Writable
	size   int64       // the file's fixed size: journalSize, smaller in tests
	// ring, when set, flushes the file through io_uring (see
	// JournalSyncIOURing); otherwise fdatasync(2) does.
	ring *uring.Ring

	// Set by the group leader only (one at a time).
	off int64
	buf []byte

	// hurry, when set, asks the applier not to wait for its next round;
	// the leader calls it before waiting to reuse the file. failing, when
	// set, returns the applier's error while it cannot store events: the
	// leader then stops waiting and fails its group (503), instead of
	// holding every caller until the store works again.
	hurry   func()
	failing func() error

	// applied reports how far the applier got; the leader waits on it
	// before reusing the file.
	mu      sync.Mutex
	cond    *sync.Cond
	written uint64 // last sequence number written and synced
	applied uint64 // last sequence number applied to bbolt
	// Deletes of delivered events handed to the applier, and those it
	// finished; see Outbox.waitApplied.
	delQueued, delDone uint64
	closed             bool
}

// journalEntry is one record: what Append hands the journal, and what the
// journal hands the applier.
type journalEntry struct {
	seq uint64 // assigned by the journal, in file order
	at  time.Time
	acc acceptedID // the event id, as the accepted bucket stores it
	rec []byte
	err error // a failure of this entry alone (written to the store directly)
	// ev is the event as appended, its body within rec; the zero Event
	// for entries found by recovery. See Outbox.fresh.
	ev Event
	// early: the dispatcher could take it from memory before it was
	// stored. skip: it was delivered before that, so the applier stores
	// only its id (see Outbox.applyEntries).
	early, skip bool
}

// openJournal opens (creating and sizing if needed) the journal file.
func openJournal(path string, size int64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		err = fillZeros(f, size)
	}
	if err == nil {
		fi, err = f.Stat() // after sizing: what Writable compares with
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	j := &journal{f: f, path: path, size: size, opened: fi}
	j.cond = sync.NewCond(&j.mu)
	return j, nil
}

// fillZeros sizes a new (or resized) journal by writing zeros over all of
// it and syncing once, so that every pass overwrites allocated blocks: a
// write into a hole makes the filesystem allocate blocks, and each
// fdatasync then commits that metadata too (ext4: a jbd2 transaction).
// Before, a new journal was sparse and its first pass (64 MiB, about two
// seconds at full load) paid that on every group: scripts/bench.sh, which
// starts each round on a new state directory, measured about 33 against
// 29 us of CPU per callback (medians of five interleaved 8 s runs). The
// file is empty or already recovered when this runs; zero records end a
// scan.
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

// scanJournal calls fn for each intact record of the file at path, in
// order, and stops at the first torn, zero or corrupt one, or at the first
// whose sequence number is not above the previous one's: the file is
// reused without being cleared, and sequence numbers only grow, so that is
// where the records of an earlier pass begin. A missing file has no
// records.
func scanJournal(path string, size int64, fn func(seq uint64, rec []byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := io.NewSectionReader(f, 0, size)
	var hdr [journalHeader]byte
	var off int64
	var prev uint64
	for {
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil // end of file
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n < 8 || off+journalHeader+n > size {
			return nil
		}
		payload := make([]byte, n)
		if _, err := r.ReadAt(payload, off+journalHeader); err != nil {
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
		off += journalHeader + n
	}
}

// reset starts writing from the beginning of the file again, over the
// records of the previous pass, which scanJournal tells apart by their
// lower sequence numbers. Not clearing the file keeps its blocks: every
// pass overwrites written blocks in place, and an fdatasync then has no
// file metadata to commit (75 against 107 us of CPU per 16 KiB write and
// fdatasync on the development VM). Only call it when every record written has been
// applied, or at open after recovery applied them.
func (j *journal) reset() error {
	j.off = 0
	return nil
}

// writeGroup assigns the next sequence numbers (after *next) to group in
// order, writes them and fsyncs, and hands each synced run of entries to
// handoff (the applier's queue). When the rest does not fit, it hands off
// what it wrote, waits for the applier to apply everything and reuses the
// file from the start.
func (j *journal) writeGroup(group []*journalEntry, next *uint64, handoff func([]*journalEntry)) error {
	j.buf = j.buf[:0]
	from := 0 // first entry in j.buf
	for i, e := range group {
		need := int64(journalHeader + 8 + len(e.rec))
		if j.off+int64(len(j.buf))+need > j.size {
			if err := j.flush(group[from:i], handoff); err != nil {
				return err
			}
			from = i
			if err := j.reuse(); err != nil {
				return err
			}
			if need > j.size {
				return errJournalFull
			}
		}
		*next++
		e.seq = *next
		start := len(j.buf)
		j.buf = binary.LittleEndian.AppendUint32(j.buf, uint32(8+len(e.rec)))
		j.buf = append(j.buf, 0, 0, 0, 0) // CRC, below
		j.buf = binary.LittleEndian.AppendUint64(j.buf, e.seq)
		j.buf = append(j.buf, e.rec...)
		crc := crc32.Checksum(j.buf[start+journalHeader:], crcTable)
		binary.LittleEndian.PutUint32(j.buf[start+4:], crc)
	}
	return j.flush(group[from:], handoff)
}

// flush writes the buffered records (those of entries) at the current
// offset, fsyncs, and hands entries off.
func (j *journal) flush(entries []*journalEntry, handoff func([]*journalEntry)) error {
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
	j.written = entries[len(entries)-1].seq
	j.mu.Unlock()
	handoff(entries)
	return nil
}

// waitAllApplied waits until the applier has applied every record written
// so far. Only the group leader calls it.
func (j *journal) waitAllApplied() error {
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
				return fmt.Errorf("journal full while the store fails: %w", err)
			}
		}
		j.cond.Wait()
	}
	return nil
}

// reuse waits until the applier has applied every record written so far,
// then resets the file.
func (j *journal) reuse() error {
	if err := j.waitAllApplied(); err != nil {
		return err
	}
	if err := j.reset(); err != nil {
		return fmt.Errorf("reusing journal: %w", err)
	}
	return nil
}

// markApplied records that every sequence number up to seq is in bbolt.
func (j *journal) markApplied(seq uint64) {
	j.mu.Lock()
	if seq > j.applied {
		j.applied = seq
	}
	j.mu.Unlock()
	j.cond.Broadcast()
}

// sync flushes the file's data to stable storage.
func (j *journal) sync() error {
	if j.ring != nil {
		return j.ring.Fdatasync(j.f)
	}
	return fdatasync(j.f)
}

// useSync sets how the journal is flushed and returns the method in use.
// With JournalSyncAuto, a ring that cannot be set up leaves fdatasync(2),
// and why is returned. No operation goes through the ring here: its first
// makes the kernel start an io_uring worker thread, which the sandbox must
// not find when it is applied (see sandbox.ErrKernelWorkers); a kernel
// that sets up a ring with an eventfd (5.2+) has IORING_OP_FSYNC (5.1+).
func (j *journal) useSync(mode JournalSync, newRing func() (*uring.Ring, error)) (used JournalSync, why error, err error) {
	if mode == JournalSyncFdatasync {
		return JournalSyncFdatasync, nil, nil
	}
	ring, rerr := newRing()
	switch {
	case rerr == nil:
		j.ring = ring
		return JournalSyncIOURing, nil, nil
	case mode == JournalSyncIOURing:
		return "", nil, fmt.Errorf("journal sync %s: %w", JournalSyncIOURing, rerr)
	}
	return JournalSyncFdatasync, rerr, nil
}

// close wakes a leader waiting in reuse and closes the file (and the ring).
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.cond.Broadcast()
	if j.ring != nil {
		_ = j.ring.Close()
	}
	return j.f.Close()
}
