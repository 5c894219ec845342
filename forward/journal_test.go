package forward

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	berrors "go.etcd.io/bbolt/errors"

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
	list, err := re.List(false, 0)
	require.NoError(t, err)
	require.Len(t, list, 5)
	assert.Equal(t, uint64(5), list[4].Seq)
	require.NoError(t, re.Close())
	again := openTestOutbox(t, OutboxOptions{Dir: dir})
	list, err = again.List(false, 0)
	require.NoError(t, err)
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
	j, err := openJournal(path, journalSize)
	require.NoError(t, err)
	var entries []*journalEntry
	var ids []string
	for i := 1; i <= 3; i++ {
		ev := testEvent("jr", i)
		ids = append(ids, ev.ID)
		entries = append(entries, &journalEntry{at: ev.ReceivedAt, acc: newAcceptedID(ev.ReceivedAt, ev.ID), rec: encodeRecord(ev, ev.ReceivedAt)})
	}
	next := uint64(1) // the store holds sequence 1
	var handed []*journalEntry
	require.NoError(t, j.writeGroup(entries, &next, func(es []*journalEntry) { handed = append(handed, es...) }))
	require.Len(t, handed, 3)
	// A fourth record whose write was torn: its header promises more bytes
	// than were written.
	torn := encodeRecord(testEvent("jr", 4), testEvent("jr", 4).ReceivedAt)
	_, err = j.f.WriteAt([]byte{byte(len(torn) + 8), 0, 0, 0, 1, 2, 3, 4, 9, 9}, j.off)
	require.NoError(t, err)
	require.NoError(t, j.close())
	return ids
}

// assertListsUnapplied checks that ob lists the stored event of
// leaveUnappliedRecords and then its three journal records, ids, as
// sequences 2 to 4.
func assertListsUnapplied(t *testing.T, ob *Outbox, ids []string) {
	t.Helper()
	list, err := ob.List(false, 0)
	require.NoError(t, err)
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
	limited, err := ro.List(false, 2)
	require.NoError(t, err)
	assert.Len(t, limited, 2)
	dead, err := ro.List(true, 0)
	require.NoError(t, err)
	assert.Empty(t, dead)
	e, err := ro.Show(ids[2])
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

// TestJournal_ScanStopsAtThePreviousPass writes a pass of five records,
// then starts over at the beginning with two records of higher sequence
// numbers: the scan returns the two and stops where the old third begins
// (its lower sequence number marks the previous pass).
func TestJournal_ScanStopsAtThePreviousPass(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFileName)
	j, err := openJournal(path, 1<<20)
	require.NoError(t, err)
	rec := func(n int) []*journalEntry {
		var es []*journalEntry
		for range n {
			es = append(es, &journalEntry{rec: []byte(strings.Repeat("r", 64))})
		}
		return es
	}
	var next uint64
	require.NoError(t, j.writeGroup(rec(5), &next, func([]*journalEntry) {}))
	require.NoError(t, j.reset())
	require.NoError(t, j.writeGroup(rec(2), &next, func([]*journalEntry) {}))
	require.NoError(t, j.close())

	var seqs []uint64
	require.NoError(t, scanJournal(path, 1<<20, func(seq uint64, _ []byte) error {
		seqs = append(seqs, seq)
		return nil
	}))
	assert.Equal(t, []uint64{6, 7}, seqs)
}

// TestJournal_CorruptRecordEndsTheScan flips a byte inside the second of
// three records: the scan keeps the first and stops there.
func TestJournal_CorruptRecordEndsTheScan(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFileName)
	j, err := openJournal(path, 1<<20)
	require.NoError(t, err)
	var entries []*journalEntry
	for i := range 3 {
		entries = append(entries, &journalEntry{rec: []byte(strings.Repeat(fmt.Sprint(i), 100))})
	}
	var next uint64
	require.NoError(t, j.writeGroup(entries, &next, func([]*journalEntry) {}))
	_, err = j.f.WriteAt([]byte{'X'}, journalHeader+8+100+journalHeader+8+50)
	require.NoError(t, err)
	require.NoError(t, j.close())

	var seqs []uint64
	require.NoError(t, scanJournal(path, 1<<20, func(seq uint64, rec []byte) error {
		seqs = append(seqs, seq)
		assert.Equal(t, strings.Repeat("0", 100), string(rec))
		return nil
	}))
	assert.Equal(t, []uint64{1}, seqs)
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
	list, err := ob.List(false, 0)
	require.NoError(t, err)
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
	list, err := ob.List(false, 0)
	require.NoError(t, err)
	require.Len(t, list, 3)
	assert.Equal(t, big.ID, list[1].Event.ID)
	e, err := ob.Show(big.ID)
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

// TestOpenOutbox_JournalSync opens an outbox with each flush method:
// auto and io_uring use io_uring where the kernel offers it (and auto
// falls back to fdatasync where not); every method keeps what it
// acknowledged across a reopen. An unknown method is refused.
func TestOpenOutbox_JournalSync(t *testing.T) {
	probe := uringProbe()
	for _, mode := range []JournalSync{"", JournalSyncAuto, JournalSyncIOURing, JournalSyncFdatasync} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			ob, err := OpenOutbox(OutboxOptions{Dir: dir, JournalSync: mode})
			if mode == JournalSyncIOURing && probe != nil {
				require.ErrorIs(t, err, uring.ErrUnavailable)
				return
			}
			require.NoError(t, err)
			want := JournalSyncIOURing
			if mode == JournalSyncFdatasync || probe != nil {
				want = JournalSyncFdatasync
			}
			assert.Equal(t, want, ob.journalSync)
			for i := range 3 {
				require.NoError(t, ob.Append(t.Context(), testEvent("sync", i)))
			}
			require.NoError(t, ob.Close())
			re := openTestOutbox(t, OutboxOptions{Dir: dir, JournalSync: mode})
			list, err := re.List(false, 0)
			require.NoError(t, err)
			assert.Len(t, list, 3)
		})
	}
	_, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), JournalSync: "fsync"})
	assert.ErrorContains(t, err, `journal sync "fsync": want auto, io_uring or fdatasync`)
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

// TestOpenOutbox_JournalSyncWithoutIOURing: where no ring can be set up
// (a seccomp profile refusing io_uring_setup, say), auto falls back to
// fdatasync and logs why, and io_uring refuses to open.
func TestOpenOutbox_JournalSyncWithoutIOURing(t *testing.T) {
	refused := fmt.Errorf("%w: io_uring_setup: operation not permitted", uring.ErrUnavailable)
	noRing := func() (*uring.Ring, error) { return nil, refused }

	var logs bytes.Buffer
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir, newRing: noRing,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	assert.Equal(t, JournalSyncFdatasync, ob.journalSync)
	assert.Contains(t, logs.String(), `"msg":"outbox journal flushes with fdatasync(2): io_uring unavailable","error":"io_uring unavailable: io_uring_setup: operation not permitted"`)
	assert.Contains(t, logs.String(), `"journal_sync":"fdatasync"`)
	require.NoError(t, ob.Append(t.Context(), testEvent("noring", 0)))
	require.NoError(t, ob.Close())

	_, err = OpenOutbox(OutboxOptions{Dir: dir, JournalSync: JournalSyncIOURing, newRing: noRing})
	require.ErrorIs(t, err, uring.ErrUnavailable)
	assert.ErrorContains(t, err, "journal sync io_uring: io_uring unavailable")

	// The store opened by the failed attempt was closed again.
	re := openTestOutbox(t, OutboxOptions{Dir: dir, JournalSync: JournalSyncFdatasync})
	list, err := re.List(false, 0)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}
