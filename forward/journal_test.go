package forward

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/forward/internal/journal"
	"github.com/imedge/imedge/internal/uring"
)

// TestJournal_RecoversUnappliedRecordsAndStopsAtATornTail writes records
// to a journal file as a crashed imedge would have left them (synced, not
// yet copied to the store) followed by a torn record, and opens an outbox
// on it: the intact records become pending events in order, the torn one
// is ignored, and the journal is emptied.
func TestJournal_RecoversUnappliedRecordsAndStopsAtATornTail(t *testing.T) {
	dir := t.TempDir()
	want := leaveUnappliedRecords(t, dir)

	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	assertListsUnapplied(t, re, want)

	// Appends after recovery continue the sequence, and a second recovery
	// (over a journal that still holds the first pass's records) adds
	// nothing twice.
	require.NoError(t, re.Append(t.Context(), testEvent("jr", 5)))
	list := listAll(t, re, StatePending)
	require.Len(t, list, 5)
	assert.Equal(t, uint64(5), list[4].Seq)
	require.NoError(t, re.Close())
	again := openTestOutbox(t, OutboxOptions{Dir: dir})
	list = listAll(t, again, StatePending)
	assert.Len(t, list, 5)
}

// leaveUnappliedRecords makes dir what a crashed imedge would have left: a
// store holding one event (sequence 1), and a journal holding three more
// records (synced, not yet copied to the store) followed by a torn one. It
// returns the three records' event ids.
func leaveUnappliedRecords(t *testing.T, dir string) []string {
	t.Helper()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, ob.Append(t.Context(), testEvent("jr", 0)))
	require.NoError(t, ob.Close())

	path := filepath.Join(dir, JournalFileName)
	j, err := journal.Open(path, journal.Options{})
	require.NoError(t, err)
	j.Start(1) // the store holds sequence 1
	var recs [][]byte
	var ids []string
	size := int64(0)
	for i := 1; i <= 3; i++ {
		ev := testEvent("jr", i)
		ids = append(ids, ev.ID)
		recs = append(recs, encodeRecord(ev, ev.ReceivedAt))
		size += int64(journal.Overhead + len(recs[len(recs)-1]))
	}
	synced := 0
	require.NoError(t, j.Write(recs, func(first uint64, n int) { synced += n }))
	require.Equal(t, 3, synced)
	require.NoError(t, j.Close())
	// A fourth record whose write was torn: its header promises more bytes
	// than were written.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	torn := encodeRecord(testEvent("jr", 4), testEvent("jr", 4).ReceivedAt)
	_, err = f.WriteAt([]byte{byte(len(torn) + 8), 0, 0, 0, 1, 2, 3, 4, 9, 9}, size)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return ids
}

// assertListsUnapplied checks that ob lists the stored event of
// leaveUnappliedRecords and then its three journal records, ids, as
// sequences 2 to 4.
func assertListsUnapplied(t *testing.T, ob *Outbox, ids []string) {
	t.Helper()
	list := listAll(t, ob, StatePending)
	require.Len(t, list, 4)
	for i, id := range ids {
		assert.Equal(t, id, list[i+1].Event.ID)
		assert.Equal(t, uint64(i+2), list[i+1].Seq)
		assert.Positive(t, list[i+1].BodySize)
	}
}

// TestReadOnly_ShowsTheJournalsUnappliedRecords: after a crash, the
// read-only view (imedge outbox stats/list/show) counts and lists the
// events only the journal holds, as the next writable open will store
// them, and changes nothing on disk.
func TestReadOnly_ShowsTheJournalsUnappliedRecords(t *testing.T) {
	dir := t.TempDir()
	ids := leaveUnappliedRecords(t, dir)
	journalBefore, err := os.ReadFile(filepath.Join(dir, JournalFileName))
	require.NoError(t, err)

	ro := openTestOutbox(t, OutboxOptions{Dir: dir, ReadOnly: true})
	st, err := ro.Stats()
	require.NoError(t, err)
	assert.Equal(t, 4, st.Pending)
	assert.Equal(t, 3, st.Unapplied)
	assert.False(t, st.OldestPending.IsZero())
	assertListsUnapplied(t, ro, ids)
	limited := listN(t, ro, StatePending, 2)
	assert.Len(t, limited, 2)
	dead := listAll(t, ro, StateDead)
	assert.Empty(t, dead)
	e, err := ro.Show(t.Context(), ids[2])
	require.NoError(t, err)
	assert.Equal(t, uint64(4), e.Seq)
	assert.Equal(t, testEvent("jr", 3).Body, e.Event.Body)
	require.NoError(t, ro.Close())

	journalAfter, err := os.ReadFile(filepath.Join(dir, JournalFileName))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(journalBefore, journalAfter), "a read-only open leaves the journal as it was")

	// The writable open stores what the read-only view showed.
	rw := openTestOutbox(t, OutboxOptions{Dir: dir})
	st2, err := rw.Stats()
	require.NoError(t, err)
	assert.Equal(t, st.Pending, st2.Pending)
	assert.Equal(t, st.PendingBytes, st2.PendingBytes)
	assert.Zero(t, st2.Unapplied)
}

// TestJournal_WrapsAroundOnceApplied runs 16 concurrent writers through an
// outbox whose journal holds about twenty events, so it is reused many
// times: every event is stored once, in sequence, and the journal file
// keeps its size.
func TestJournal_WrapsAroundOnceApplied(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, journalSize: 8 << 10, MaxEvents: 10_000})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 25 {
				assert.NoError(t, ob.Append(t.Context(), testEvent(fmt.Sprintf("wrap%d", w), i)))
			}
		})
	}
	wg.Wait()
	list := listAll(t, ob, StatePending)
	require.Len(t, list, 400)
	seen := map[string]bool{}
	for i, e := range list {
		assert.False(t, seen[e.Event.ID], "stored once")
		seen[e.Event.ID] = true
		if i > 0 {
			assert.Greater(t, e.Seq, list[i-1].Seq)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, JournalFileName))
	require.NoError(t, err)
	assert.Equal(t, int64(8<<10), fi.Size())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// TestJournal_OversizedEventGoesToTheStoreDirectly appends an event larger
// than a quarter of the journal between small ones: all are stored, in
// order.
func TestJournal_OversizedEventGoesToTheStoreDirectly(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{journalSize: 8 << 10})
	big := testEvent("big", 1)
	big.Body = []byte(`{"pad":"` + strings.Repeat("x", 4000) + `"}`)
	for _, ev := range []Event{testEvent("big", 0), big, testEvent("big", 2)} {
		require.NoError(t, ob.Append(t.Context(), ev))
	}
	list := listAll(t, ob, StatePending)
	require.Len(t, list, 3)
	assert.Equal(t, big.ID, list[1].Event.ID)
	e, err := ob.Show(t.Context(), big.ID)
	require.NoError(t, err)
	assert.Equal(t, big.Body, e.Event.Body)
}

// TestJournal_FullWhileTheStoreFailsIsAnError fills a small journal while
// bbolt cannot grow (MaxFileSize): appends fail with the store's error
// instead of waiting forever for the journal to be reusable.
func TestJournal_FullWhileTheStoreFailsIsAnError(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{MaxFileSize: 256 << 10, journalSize: 64 << 10, MaxEvents: 100_000, MaxBytes: 1 << 30})
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 5000 && err == nil; i++ {
			ev := testEvent("full", i)
			ev.Body = append(bytes.Repeat([]byte(" "), 2000), ev.Body...)
			err = ob.Append(context.Background(), ev)
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorIs(t, err, berrors.ErrMaxSizeReached)
	case <-time.After(20 * time.Second):
		t.Fatal("Append blocked while the journal could not be reused")
	}
}

// TestOpenOutbox_JournalFlushMethod: the journal flushes through io_uring
// where the kernel offers it and with fdatasync where no ring can be set
// up (a seccomp profile refusing io_uring_setup, say), which the open
// logs with the reason; both keep what they acknowledged across a reopen.
func TestOpenOutbox_JournalFlushMethod(t *testing.T) {
	refused := fmt.Errorf("%w: io_uring_setup: operation not permitted", uring.ErrUnavailable)
	noRing := func() (*uring.Ring, error) { return nil, refused }
	for name, newRing := range map[string]func() (*uring.Ring, error){"auto": nil, "no ring": noRing} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			dir := t.TempDir()
			ob, err := OpenOutbox(OutboxOptions{Dir: dir, newRing: newRing, Logger: logs.logger()})
			require.NoError(t, err)
			want := journal.MethodIOURing
			if newRing != nil || uringProbe() != nil {
				want = journal.MethodFdatasync
			}
			method, _ := ob.ap.jr.Method()
			assert.Equal(t, want, method)
			assert.Contains(t, logs.String(), `"journal_sync":"`+want+`"`)
			if newRing != nil {
				assert.Contains(t, logs.String(), `"msg":"outbox journal flushes with fdatasync(2): io_uring unavailable","error":"io_uring unavailable: io_uring_setup: operation not permitted"`)
			}
			for i := range 3 {
				require.NoError(t, ob.Append(t.Context(), testEvent("sync", i)))
			}
			require.NoError(t, ob.Close())
			re := openTestOutbox(t, OutboxOptions{Dir: dir, newRing: newRing})
			list := listAll(t, re, StatePending)
			assert.Len(t, list, 3)
		})
	}
}

// uringProbe returns why io_uring cannot be used here, or nil; where
// kernel.io_uring_disabled is 0 it must work (internal/uring's tests say so).
func uringProbe() error {
	r, err := uring.New()
	if err == nil {
		_ = r.Close()
	}
	return err
}
