package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/uring"
)

const waitFor, tick = 15 * time.Second, 5 * time.Millisecond

// openTest opens a journal of size bytes in a fresh directory, starting
// after sequence number last, and closes it when the test ends.
func openTest(t *testing.T, size int64, last uint64) *Journal {
	t.Helper()
	j, err := Open(filepath.Join(t.TempDir(), "j"), Options{Size: size})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	j.Start(last)
	return j
}

func payloads(n int, fill string) [][]byte {
	var ps [][]byte
	for i := range n {
		ps = append(ps, []byte(strings.Repeat(fill, 10+i)))
	}
	return ps
}

// scanAll returns the sequence numbers and payloads Scan finds.
func scanAll(t *testing.T, path string) ([]uint64, []string) {
	t.Helper()
	var seqs []uint64
	var ps []string
	require.NoError(t, Scan(path, func(seq uint64, p []byte) error {
		seqs = append(seqs, seq)
		ps = append(ps, string(p))
		return nil
	}))
	return seqs, ps
}

// TestJournal_WriteThenScan writes two groups after sequence 41: the
// records get 42 onwards, synced reports each once, and a scan of the
// file finds them in order with their payloads.
func TestJournal_WriteThenScan(t *testing.T) {
	j := openTest(t, 1<<20, 41)
	var got []uint64
	synced := func(first uint64, n int) {
		for k := range n {
			got = append(got, first+uint64(k))
		}
	}
	first, second := payloads(3, "a"), payloads(2, "b")
	require.NoError(t, j.Write(first, synced))
	require.NoError(t, j.Write(second, synced))
	assert.Equal(t, []uint64{42, 43, 44, 45, 46}, got)
	assert.Equal(t, uint64(46), j.Written())

	seqs, ps := scanAll(t, j.Path())
	assert.Equal(t, got, seqs)
	var want []string
	for _, p := range append(first, second...) {
		want = append(want, string(p))
	}
	assert.Equal(t, want, ps)
}

// TestJournal_ScanStopsAtThePreviousPass writes a pass of five records,
// then starts over at the beginning with two records of higher sequence
// numbers: the scan returns the two and stops where the old third begins
// (its lower sequence number marks the previous pass).
func TestJournal_ScanStopsAtThePreviousPass(t *testing.T) {
	j := openTest(t, 1<<20, 0)
	nop := func(uint64, int) {}
	require.NoError(t, j.Write(payloads(5, "r"), nop))
	j.MarkApplied(5)
	require.NoError(t, j.reuse())
	require.NoError(t, j.Write(payloads(2, "s"), nop))
	seqs, _ := scanAll(t, j.Path())
	assert.Equal(t, []uint64{6, 7}, seqs)
}

// TestJournal_CorruptRecordEndsTheScan flips a byte inside the second of
// three records: the scan keeps the first and stops there.
func TestJournal_CorruptRecordEndsTheScan(t *testing.T) {
	j := openTest(t, 1<<20, 0)
	ps := [][]byte{[]byte(strings.Repeat("0", 100)), []byte(strings.Repeat("1", 100)), []byte(strings.Repeat("2", 100))}
	require.NoError(t, j.Write(ps, func(uint64, int) {}))
	_, err := j.f.WriteAt([]byte{'X'}, Overhead+100+Overhead+50)
	require.NoError(t, err)
	seqs, got := scanAll(t, j.Path())
	assert.Equal(t, []uint64{1}, seqs)
	assert.Equal(t, []string{strings.Repeat("0", 100)}, got)
}

// TestJournal_TornTailEndsTheScan: a header promising more bytes than the
// file holds ends the scan; a missing file has no records.
func TestJournal_TornTailEndsTheScan(t *testing.T) {
	j := openTest(t, 4096, 0)
	require.NoError(t, j.Write(payloads(2, "t"), func(uint64, int) {}))
	_, err := j.f.WriteAt([]byte{0xff, 0x0f, 0, 0, 1, 2, 3, 4, 9, 9}, j.off)
	require.NoError(t, err)
	seqs, _ := scanAll(t, j.Path())
	assert.Equal(t, []uint64{1, 2}, seqs)

	seqs, _ = scanAll(t, filepath.Join(t.TempDir(), "missing"))
	assert.Empty(t, seqs)
}

// TestJournal_WrapWaitsForTheApplier fills a small journal: the write that
// does not fit flushes what it has, waits until an applier (a goroutine
// marking what synced reported) applied everything, and continues from
// the file's start. Every record is reported synced once, in order.
func TestJournal_WrapWaitsForTheApplier(t *testing.T) {
	j := openTest(t, 1024, 0)
	applied := make(chan uint64, 1024)
	j.SetHooks(func() {}, func() error { return nil })
	var applier sync.WaitGroup
	applier.Go(func() {
		for seq := range applied {
			j.MarkApplied(seq)
		}
	})
	var got []uint64
	for range 20 {
		require.NoError(t, j.Write(payloads(4, "w"), func(first uint64, n int) {
			for k := range n {
				got = append(got, first+uint64(k))
			}
			applied <- first + uint64(n) - 1
		}))
	}
	close(applied)
	applier.Wait()
	require.Len(t, got, 80)
	for i, seq := range got {
		assert.Equal(t, uint64(i+1), seq)
	}
	fi, err := os.Stat(j.Path())
	require.NoError(t, err)
	assert.Equal(t, int64(1024), fi.Size(), "the file keeps its size")
}

// TestJournal_FullWhileFailingIsAnError: when the file must be reused but
// the applier fails, Write returns its error instead of waiting.
func TestJournal_FullWhileFailingIsAnError(t *testing.T) {
	j := openTest(t, 512, 0)
	errStore := errors.New("store failing")
	j.SetHooks(func() {}, func() error { return errStore })
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = j.Write(payloads(2, "f"), func(uint64, int) {})
	}
	require.ErrorIs(t, err, errStore)
	assert.ErrorContains(t, err, "reusing journal")
}

// TestJournal_TooLarge: a payload larger than the file is refused.
func TestJournal_TooLarge(t *testing.T) {
	j := openTest(t, 512, 0)
	j.SetHooks(func() {}, func() error { return nil })
	err := j.Write([][]byte{make([]byte, 600)}, func(uint64, int) {})
	assert.ErrorIs(t, err, ErrTooLarge)
}

// TestJournal_ReserveWaitsForEverythingApplied: Reserve returns the next
// sequence number only once everything written was applied.
func TestJournal_ReserveWaitsForEverythingApplied(t *testing.T) {
	j := openTest(t, 4096, 10)
	j.SetHooks(func() {}, func() error { return nil })
	require.NoError(t, j.Write(payloads(2, "v"), func(uint64, int) {}))
	got := make(chan uint64, 1)
	go func() {
		seq, err := j.Reserve()
		assert.NoError(t, err)
		got <- seq
	}()
	select {
	case <-got:
		t.Fatal("Reserve returned before the records were applied")
	case <-time.After(50 * time.Millisecond):
	}
	j.MarkApplied(12)
	select {
	case seq := <-got:
		assert.Equal(t, uint64(13), seq)
	case <-time.After(waitFor):
		t.Fatal("Reserve did not return")
	}
}

// TestJournal_WaitAppliedGivesUpAndEndsAtClose: WaitApplied returns once
// the sequence is applied, when giveUp says so after a Wake, and at Close.
func TestJournal_WaitAppliedGivesUpAndEndsAtClose(t *testing.T) {
	j := openTest(t, 4096, 0)
	var hurries int
	var mu sync.Mutex
	j.SetHooks(func() { mu.Lock(); hurries++; mu.Unlock() }, nil)
	require.NoError(t, j.Write(payloads(3, "x"), func(uint64, int) {}))
	j.MarkApplied(2)
	j.WaitApplied(2, func() bool { return false }) // already applied: at once

	var give sync.Mutex
	giveUp := false
	done := make(chan struct{})
	go func() {
		j.WaitApplied(3, func() bool { give.Lock(); defer give.Unlock(); return giveUp })
		close(done)
	}()
	give.Lock()
	giveUp = true
	give.Unlock()
	j.Wake()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("WaitApplied ignored giveUp")
	}
	mu.Lock()
	assert.Positive(t, hurries, "a waiter asks the applier to hurry")
	mu.Unlock()

	done = make(chan struct{})
	go func() {
		j.WaitApplied(3, func() bool { return false })
		close(done)
	}()
	require.NoError(t, j.Close())
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("WaitApplied outlived Close")
	}
}

// TestOpen_FlushMethod: where a ring can be set up the journal flushes
// through io_uring; where none can (a seccomp profile refusing
// io_uring_setup, say) it falls back to fdatasync and says why. Both keep
// what they wrote.
func TestOpen_FlushMethod(t *testing.T) {
	refused := fmt.Errorf("%w: io_uring_setup: operation not permitted", uring.ErrUnavailable)
	for name, newRing := range map[string]func() (*uring.Ring, error){
		"default": nil,
		"refused": func() (*uring.Ring, error) { return nil, refused },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j")
			j, err := Open(path, Options{Size: 4096, NewRing: newRing})
			require.NoError(t, err)
			method, why := j.Method()
			switch {
			case newRing != nil:
				assert.Equal(t, MethodFdatasync, method)
				assert.ErrorIs(t, why, uring.ErrUnavailable)
			case uringProbe() == nil:
				assert.Equal(t, MethodIOURing, method)
				assert.NoError(t, why)
			default:
				assert.Equal(t, MethodFdatasync, method)
				assert.Error(t, why)
			}
			j.Start(0)
			require.NoError(t, j.Write(payloads(3, "m"), func(uint64, int) {}))
			require.NoError(t, j.Close())
			seqs, _ := scanAll(t, path)
			assert.Equal(t, []uint64{1, 2, 3}, seqs)
		})
	}
}

// uringProbe returns why io_uring cannot be used here, or nil.
func uringProbe() error {
	r, err := uring.New()
	if err == nil {
		_ = r.Close()
	}
	return err
}
