package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/forward/internal/store"
	"github.com/imedge/imedge/internal/testkit"
)

func TestOutbox_Append_StoresPrivatelyInOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})

	var want []Event
	for i := range 5 {
		ev := testEvent("order", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		want = append(want, ev)
	}

	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	fi, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 5, st.Pending)
	assert.Zero(t, st.Dead)
	assert.Positive(t, st.PendingBytes)
	assert.False(t, st.OldestPending.IsZero())

	list := listAll(t, ob, StatePending)
	require.Len(t, list, 5)
	for i, e := range list {
		assert.Equal(t, want[i].ID, e.Event.ID, "entry %d", i)
		assert.Nil(t, e.Event.Body, "List leaves bodies out")
		assert.Equal(t, len(want[i].Body), e.BodySize)
		if i > 0 {
			assert.Greater(t, e.Seq, list[i-1].Seq)
		}
	}
	limited := listN(t, ob, StatePending, 2)
	assert.Len(t, limited, 2)

	e, err := ob.Show(t.Context(), want[3].ID)
	require.NoError(t, err)
	assert.Equal(t, want[3].Body, e.Event.Body)
	assert.Equal(t, want[3].RequestID, e.Event.RequestID)
	assert.True(t, want[3].ReceivedAt.Equal(e.Event.ReceivedAt))
	bySeq, err := ob.Show(t.Context(), strconv.FormatUint(e.Seq, 10))
	require.NoError(t, err)
	assert.Equal(t, want[3].ID, bySeq.Event.ID)

	_, err = ob.Show(t.Context(), "no-such-event")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestOutbox_Append_ConcurrentWritersShareBatches(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	const writers, each = 64, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, ob.Append(t.Context(), testEvent(fmt.Sprint("w", w), i)))
			}
		})
	}
	wg.Wait()

	list := listAll(t, ob, StatePending)
	require.Len(t, list, writers*each)
	ids := map[string]bool{}
	for _, e := range list {
		ids[e.Event.ID] = true
	}
	assert.Len(t, ids, writers*each)
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, writers*each, st.Pending)
}

func TestOutbox_Append_SameIDTwiceIsStoredTwice(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	ev := testEvent("dup", 1)
	require.NoError(t, ob.Append(t.Context(), ev))
	require.NoError(t, ob.Append(t.Context(), ev))
	list := listAll(t, ob, StatePending)
	require.Len(t, list, 2)
	assert.Equal(t, list[0].Event.ID, list[1].Event.ID)
	assert.NotEqual(t, list[0].Seq, list[1].Seq)
}

func TestOutbox_Append_FullByEventsStoresNothing(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{MaxEvents: 3})
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), testEvent("full", i)))
	}
	err := ob.Append(t.Context(), testEvent("full", 3))
	require.ErrorIs(t, err, ErrFull)

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Pending)
	_, err = ob.Show(t.Context(), testEvent("full", 3).ID)
	assert.ErrorIs(t, err, ErrNotFound)
	n := 0
	require.NoError(t, ob.AcceptedSince(time.Time{}, func(string, time.Time) { n++ }))
	assert.Equal(t, 3, n, "a refused event is not remembered as accepted")
}

func TestOutbox_Append_FullByBytesStoresNothing(t *testing.T) {
	small := testEvent("bytes", 0)
	limit := int64(len(encodeRecord(small, time.Now()))) * 2
	ob := openTestOutbox(t, OutboxOptions{MaxBytes: limit})

	big := testEvent("bytes", 1)
	big.Body = bytes.Repeat([]byte("x"), int(limit))
	require.ErrorIs(t, ob.Append(t.Context(), big), ErrFull)
	require.NoError(t, ob.Append(t.Context(), small))
	require.NoError(t, ob.Append(t.Context(), testEvent("bytes", 2)))
	require.ErrorIs(t, ob.Append(t.Context(), testEvent("bytes", 3)), ErrFull)

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 2, st.Pending)
	assert.LessOrEqual(t, st.PendingBytes, limit)
}

func TestOutbox_Append_LimitsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir, MaxEvents: 2})
	require.NoError(t, err)
	require.NoError(t, ob.Append(t.Context(), testEvent("re", 0)))
	require.NoError(t, ob.Append(t.Context(), testEvent("re", 1)))
	require.NoError(t, ob.Close())

	ob = openTestOutbox(t, OutboxOptions{Dir: dir, MaxEvents: 2})
	require.ErrorIs(t, ob.Append(t.Context(), testEvent("re", 2)), ErrFull)
}

func TestOutbox_Append_CancelledContextStoresNothing(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, ob.Append(ctx, testEvent("ctx", 0)), context.Canceled)
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Pending)
}

// A bbolt file cap stands in for a full disk: root ignores permission bits,
// but not this limit, so the write really fails inside the store.
func TestOutbox_Append_DiskFullIsAnErrorNotAnAck(t *testing.T) {
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir, MaxFileSize: 256 << 10})
	require.NoError(t, err)

	var acked []string
	var werr error
	for i := range 1000 {
		ev := testEvent("diskfull", i)
		ev.Body = append(bytes.Repeat([]byte(" "), 2000), ev.Body...)
		if werr = ob.Append(t.Context(), ev); werr != nil {
			break
		}
		acked = append(acked, ev.ID)
	}
	require.Error(t, werr, "the file cap must be reached")
	assert.NotErrorIs(t, werr, ErrFull)
	assert.ErrorIs(t, werr, berrors.ErrMaxSizeReached)
	assert.Contains(t, werr.Error(), "writing event to outbox")
	require.NotEmpty(t, acked)

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, len(acked), st.Pending, "a failed write is not counted")
	require.NoError(t, ob.Close())

	ob = openTestOutbox(t, OutboxOptions{Dir: dir})
	list := listAll(t, ob, StatePending)
	require.Len(t, list, len(acked))
	for i, e := range list {
		assert.Equal(t, acked[i], e.Event.ID)
	}
}

func TestOutbox_Append_ReadOnlyStoreFails(t *testing.T) {
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, ob.Append(t.Context(), testEvent("ro", 0)))
	require.NoError(t, ob.Close())

	ro := openTestOutbox(t, OutboxOptions{Dir: dir, ReadOnly: true})
	err = ro.Append(t.Context(), testEvent("ro", 1))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrFull)
	assert.ErrorIs(t, err, berrors.ErrDatabaseReadOnly)
	assert.Contains(t, err.Error(), "writing event to outbox")

	st, err := ro.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Pending, "the failed append left the counters alone")
	list := listAll(t, ro, StatePending)
	assert.Len(t, list, 1)
	_, err = ro.PurgeDead(t.Context(), Filter{})
	assert.ErrorIs(t, err, berrors.ErrDatabaseReadOnly)
}

func TestOutbox_Open_DirectoryIsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	require.NoError(t, os.WriteFile(path, []byte("not a directory"), 0o600))
	_, err := OpenOutbox(OutboxOptions{Dir: path})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "creating outbox directory")
	assert.Contains(t, err.Error(), path)
}

func TestOutbox_Open_UnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; see TestOutbox_Append_DiskFullIsAnErrorNotAnAck and TestOutbox_Append_ReadOnlyStoreFails")
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err := OpenOutbox(OutboxOptions{Dir: dir})
	require.ErrorIs(t, err, os.ErrPermission)
	assert.Contains(t, err.Error(), dir)
}

func TestOutbox_Open_ReadOnlyMissingStore(t *testing.T) {
	_, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), ReadOnly: true})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestOutbox_Open_RequiresDir(t *testing.T) {
	_, err := OpenOutbox(OutboxOptions{})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestOutbox_Open_SecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, ob.Append(t.Context(), testEvent("lock", 0)))

	for _, readOnly := range []bool{false, true} {
		start := time.Now()
		_, err := OpenOutbox(OutboxOptions{Dir: dir, LockTimeout: 50 * time.Millisecond, ReadOnly: readOnly})
		require.ErrorIs(t, err, ErrLocked, "read-only %v", readOnly)
		assert.Contains(t, err.Error(), "stop it first")
		assert.Less(t, time.Since(start), 5*time.Second)
	}

	require.NoError(t, ob.Close())
	again := openTestOutbox(t, OutboxOptions{Dir: dir})
	st, err := again.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Pending)
}

func TestOutbox_Closed(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	require.NoError(t, ob.Close())
	require.NoError(t, ob.Close())
	assert.ErrorIs(t, ob.Append(t.Context(), testEvent("closed", 0)), ErrClosed)
	_, err := ob.Stats()
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.List(t.Context(), Query{})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.Show(t.Context(), "1")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.RetryNow(t.Context(), Filter{})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.ReplayDelivered(t.Context(), Filter{})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.ReplayDead(t.Context(), Filter{})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = ob.PurgeDead(t.Context(), Filter{})
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, ob.AcceptedSince(time.Time{}, func(string, time.Time) {}), ErrClosed)
}

func TestOutbox_AcceptedSince_WindowAlsoAfterDelivery(t *testing.T) {
	clock := testkit.NewClock(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now, RememberFor: time.Hour})

	var ids []string
	for i := range 4 {
		clock.Set(time.Date(2025, 1, 1, 12, i, 0, 0, time.UTC))
		ev := testEvent("acc", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		ids = append(ids, ev.ID)
	}
	// Deliver the first two: they leave the pending queue but stay remembered.
	ob.waitApplied()
	for range 2 {
		seq, _, ok := ob.def.claim(clock.Now())
		require.True(t, ok)
		ob.complete(success{q: ob.def, seqs: []uint64{seq}})
	}
	st, err := ob.Stats()
	require.NoError(t, err)
	require.Equal(t, 2, st.Pending)

	type hit struct {
		id string
		at time.Time
	}
	var got []hit
	require.NoError(t, ob.AcceptedSince(time.Date(2025, 1, 1, 12, 1, 0, 0, time.UTC), func(id string, at time.Time) {
		got = append(got, hit{id, at})
	}))
	require.Len(t, got, 3)
	for i, h := range got {
		assert.Equal(t, ids[i+1], h.id)
		assert.True(t, h.at.Equal(time.Date(2025, 1, 1, 12, i+1, 0, 0, time.UTC)))
	}
}

func TestOutbox_AcceptedSince_PrunesExpiredAndExcess(t *testing.T) {
	clock := testkit.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	ob := openTestOutbox(t, OutboxOptions{Now: clock.Now, RememberFor: 10 * time.Minute, MaxRemembered: 5})
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), testEvent("old", i)))
	}
	clock.Set(clock.Now().Add(11 * time.Minute))
	var fresh []string
	for i := range 7 {
		ev := testEvent("new", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		fresh = append(fresh, ev.ID)
	}
	var got []string
	require.NoError(t, ob.AcceptedSince(time.Time{}, func(id string, _ time.Time) { got = append(got, id) }))
	assert.Equal(t, fresh[2:], got, "expired ids and the oldest beyond MaxRemembered are pruned")
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 5, st.Remembered)
	assert.Equal(t, 10, st.Pending, "pruning ids never touches pending events")
}

func TestOutbox_Replay_UnknownRefs(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	require.NoError(t, ob.Append(t.Context(), testEvent("ref", 0)))
	n, err := ob.RetryNow(t.Context(), Filter{Refs: []string{testEvent("ref", 0).ID, "nope"}})
	assert.Equal(t, 1, n)
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), `"nope"`)
	n, err = ob.ReplayDead(t.Context(), Filter{Refs: []string{"nope"}})
	assert.Zero(t, n)
	assert.ErrorIs(t, err, ErrNotFound)
}

// A crash in the middle of a commit can leave the newest meta page torn.
// Reopening must work and give the previous commit.
func TestOutbox_Reopen_SurvivesTornMetaPage(t *testing.T) {
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir})
	require.NoError(t, err)
	first, second := testEvent("torn", 0), testEvent("torn", 1)
	require.NoError(t, ob.Append(t.Context(), first))
	require.NoError(t, ob.Append(t.Context(), second))
	require.NoError(t, ob.Close())

	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	// bbolt meta layout: 16-byte page header, then magic, version,
	// page size (uint32 each, native little endian), flags, root, freelist,
	// pgid, txid at offset 64 and checksum at 72.
	hdr := make([]byte, 80)
	_, err = f.ReadAt(hdr, 0)
	require.NoError(t, err)
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:28]))
	require.Positive(t, pageSize)
	other := make([]byte, 80)
	_, err = f.ReadAt(other, pageSize)
	require.NoError(t, err)
	newest := int64(0)
	if binary.LittleEndian.Uint64(other[64:72]) > binary.LittleEndian.Uint64(hdr[64:72]) {
		newest = pageSize
	}
	_, err = f.WriteAt(bytes.Repeat([]byte{0xA5}, 32), newest+48)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// bbolt falls back to the previous commit; the journal still holds
	// what the torn commit had copied, and recovery copies it again.
	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	_, err = re.Show(t.Context(), first.ID)
	require.NoError(t, err)
	_, err = re.Show(t.Context(), second.ID)
	require.NoError(t, err, "the journal restores what the torn commit lost")
	require.NoError(t, re.Append(t.Context(), testEvent("torn", 2)), "the store stays writable")
	list := listAll(t, re, StatePending)
	assert.Len(t, list, 3)
}

// TestOutbox_Open_RefusesANewerFormat: an outbox written by a newer
// imedge is refused, writable or read-only, with what to do.
func TestOutbox_Open_RefusesANewerFormat(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, ob.Append(t.Context(), testEvent("newer", 0)))
	require.NoError(t, ob.Close())
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{3})
	}))
	require.NoError(t, db.Close())

	for _, ro := range []bool{false, true} {
		_, err := OpenOutbox(OutboxOptions{Dir: dir, ReadOnly: ro})
		require.ErrorIs(t, err, ErrNewerFormat)
		assert.ErrorContains(t, err, "outbox format 3 is newer than this imedge understands (2): upgrade imedge, or drain it with the newer version and move it aside so this one starts a new outbox (docs/operations.md, Downgrading)")
	}
}

// TestConstants_AgreeWithTheStore: the constants forward documents are the
// store's.
func TestConstants_AgreeWithTheStore(t *testing.T) {
	assert.Equal(t, store.DefaultDestination, DefaultDestination)
	assert.Equal(t, store.HistoryLen, HistoryLen)
}

func TestOutbox_ErrorsAreSentinels(t *testing.T) {
	for _, err := range []error{ErrFull, ErrLocked, ErrNewerFormat, ErrClosed, ErrNotFound, ErrUnknownDestination, ErrInvalidOptions, ErrRunning, ErrNotWritable} {
		assert.True(t, strings.HasPrefix(err.Error(), "forward: "), err.Error())
		assert.True(t, errors.Is(fmt.Errorf("x: %w", err), err))
	}
}
