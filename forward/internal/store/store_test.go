package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatOf reads the format key of the store file at path (0 when absent).
func formatOf(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	n := 0
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyFormat); v != nil {
			u, _ := uvarint(v)
			n = int(u)
		}
		return nil
	}))
	return n
}

// writeV1 writes a format 1 store at path: a pending record with a
// failed attempt's state and a dead letter, as imedge wrote them before
// destinations (no format key, no delivered bucket).
func writeV1(t *testing.T, path string, at time.Time) (pending, dead Record) {
	t.Helper()
	pending, dead = testRecord("", "v1", 1, at), testRecord("", "v1", 2, at.Add(time.Second))
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := map[string]*bolt.Bucket{}
		for _, name := range []string{"pending", "state", "dead", "accepted", "meta"} {
			bk, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			b[name] = bk
		}
		if err := b["pending"].Put(SeqKey(1), encodeRecordV1(pending)); err != nil {
			return err
		}
		if err := b["state"].Put(SeqKey(1), encodeStateV1(State{Attempts: 2, LastAttempt: at, NextAttempt: at.Add(time.Hour), LastError: "HTTP 503 Service Unavailable"})); err != nil {
			return err
		}
		st := encodeStateV1(State{Attempts: 1, LastAttempt: at, DeadAt: at, LastError: "HTTP 400 Bad Request; permanent failure"})
		v := appendUvarint(nil, uint64(len(st)))
		v = append(append(v, st...), encodeRecordV1(dead)...)
		if err := b["dead"].Put(SeqKey(2), v); err != nil {
			return err
		}
		return b["meta"].Put(keyJournalApplied, SeqKey(2))
	}))
	require.NoError(t, db.Close())
	return pending, dead
}

func TestOpen_NewStoreRecordsTheFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openTest(t, path, Options{})
	assert.Zero(t, s.FoundFormat())
	require.NoError(t, s.Close())
	assert.Equal(t, Format, formatOf(t, path))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	s = openTest(t, path, Options{})
	assert.Equal(t, Format, s.FoundFormat())
}

// TestOpen_UpgradesFormat1: a format 1 store opens; a writable open
// records format 2, a read-only one changes nothing; its records read
// with the default destination, its states and dead letter as written.
func TestOpen_UpgradesFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pending, dead := writeV1(t, path, at)

	ro := openTest(t, path, Options{ReadOnly: true})
	assert.Equal(t, 1, ro.FoundFormat())
	items, _, err := ro.List(KindPending, nil, 0, 0)
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, DefaultDestination, items[0].Record.Destination)
	require.NoError(t, ro.Close())
	assert.Zero(t, formatOf(t, path), "a read-only open does not upgrade")

	s := openTest(t, path, Options{})
	assert.Equal(t, 1, s.FoundFormat())
	var loaded []Loaded
	require.NoError(t, s.Load(func(l Loaded) { loaded = append(loaded, l) }))
	require.Len(t, loaded, 2)
	assert.Equal(t, Loaded{Kind: KindPending, Seq: 1, Destination: DefaultDestination, Size: int64(len(encodeRecordV1(pending))), NextAttempt: at.Add(time.Hour)}, loaded[0])
	assert.Equal(t, KindDead, loaded[1].Kind)
	assert.Equal(t, DefaultDestination, loaded[1].Destination)

	got, err := s.Find(pending.ID)
	require.NoError(t, err)
	assert.Equal(t, pending.Body, got.Record.Body)
	assert.Equal(t, 2, got.State.Attempts)
	assert.Equal(t, "HTTP 503 Service Unavailable", got.State.LastError)
	d, err := s.Find("2")
	require.NoError(t, err)
	assert.Equal(t, KindDead, d.Kind)
	assert.Equal(t, dead.ID, d.Record.ID)
	assert.Contains(t, d.State.LastError, "permanent failure")
	applied, last, err := s.Marks()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), applied)
	assert.Equal(t, uint64(2), last)
	require.NoError(t, s.Close())
	assert.Equal(t, Format, formatOf(t, path), "the writable open upgraded it")
}

// TestOpen_RefusesANewerFormat: a store of a format this code does not
// know is refused, writable or read-only, with a message saying what to
// do, and left as it was.
func TestOpen_RefusesANewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openTest(t, path, Options{})
	require.NoError(t, s.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, appendUvarint(nil, Format+1))
	}))
	require.NoError(t, db.Close())

	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		require.ErrorIs(t, err, ErrNewerFormat, "read-only %v", ro)
		assert.ErrorContains(t, err, "outbox format 3 is newer than this imedge understands (2): upgrade imedge, or drain it with the newer version and move it aside so this one starts a new outbox (docs/operations.md, Downgrading)")
		assert.Contains(t, err.Error(), path)
	}
	assert.Equal(t, Format+1, formatOf(t, path))
}

func TestOpen_ReadOnlyWritesFail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openTest(t, path, Options{})
	putRecords(t, s, 1, testRecord("a", "ro", 1, time.Now()))
	require.NoError(t, s.Close())
	ro := openTest(t, path, Options{ReadOnly: true})
	_, err := ro.Apply(&Apply{Entries: []*Entry{entry(2, testRecord("a", "ro", 2, time.Now()))}})
	assert.ErrorIs(t, err, berrors.ErrDatabaseReadOnly)
	_, _, err = ro.PurgeDead(nil)
	assert.ErrorIs(t, err, berrors.ErrDatabaseReadOnly)
}

// TestApply_RetainsDeliveredWithHistoryAndEvictsOldestFirst: a stored
// event delivered keeps its failures' history plus the success; an event
// delivered before it was stored is retained with the success alone;
// without retention both are gone. Eviction drops the oldest deliveries
// first, by count, bytes or age.
func TestApply_RetainsDeliveredWithHistoryAndEvictsOldestFirst(t *testing.T) {
	s := openTest(t, "", Options{})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	recs := putRecords(t, s, 1, testRecord("a", "ret", 1, at), testRecord("b", "ret", 2, at), testRecord("a", "ret", 3, at))
	var failed State
	failed.Attempts = 1
	failed.AddAttempt(Attempt{At: at, Duration: time.Second, Status: 503, Error: "HTTP 503 Service Unavailable"})
	sizes, err := s.Fail([]Failure{{Seq: 1, State: failed}})
	require.NoError(t, err)
	assert.Equal(t, []int64{int64(len(EncodeRecord(&recs[0])))}, sizes)

	ok := Attempt{At: at.Add(time.Minute), Duration: 3 * time.Millisecond}
	early := testRecord("b", "ret", 4, at)
	e4 := entry(4, early)
	res, err := s.Apply(&Apply{Entries: []*Entry{e4}, Absorbed: []Done{{Seq: 4, At: at.Add(30 * time.Second), Duration: time.Millisecond}},
		Done: []Done{{Seq: 1, At: ok.At, Duration: ok.Duration}, {Seq: 99, At: ok.At}}, Retain: true, Now: at})
	require.NoError(t, err)
	assert.Equal(t, []int64{int64(len(EncodeRecord(&recs[0]))), 0}, res.DoneSizes, "a removal of an event gone is size 0")

	items, _, err := s.List(KindDelivered, nil, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 4}, seqs(items), "in sequence order")
	assert.Len(t, items[0].State.History, 2, "the failure and the success")
	assert.Equal(t, 503, items[0].State.History[0].Status)
	assert.True(t, items[0].State.DeliveredAt.Equal(ok.At))
	assert.Equal(t, 1, items[0].State.Attempts)
	require.Len(t, items[1].State.History, 1)
	assert.Equal(t, "b", items[1].Record.Destination)
	pend, _, err := s.List(KindPending, nil, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2, 3}, seqs(pend))

	// Without retention a delivery removes the event.
	res, err = s.Apply(&Apply{Done: []Done{{Seq: 2, At: ok.At}}})
	require.NoError(t, err)
	assert.Positive(t, res.DoneSizes[0])
	_, err = s.Find("2")
	assert.ErrorIs(t, err, ErrNotFound)

	// Eviction: seq 4 was delivered first (30 s), so it goes first.
	res, err = s.Apply(&Apply{Evict: Evict{Events: 1}})
	require.NoError(t, err)
	require.Len(t, res.Evicted, 1)
	assert.Equal(t, Removed{Seq: 4, Destination: "b", Size: int64(len(EncodeRecord(&early)))}, res.Evicted[0])
	res, err = s.Apply(&Apply{Evict: Evict{Before: at.Add(time.Minute), MaxAged: 10}})
	require.NoError(t, err)
	assert.Empty(t, res.Evicted, "delivered at the cutoff: kept")
	res, err = s.Apply(&Apply{Evict: Evict{Before: at.Add(time.Hour), MaxAged: 10}})
	require.NoError(t, err)
	assert.Equal(t, []uint64{1}, []uint64{res.Evicted[0].Seq})
	items, _, err = s.List(KindDelivered, nil, 0, 0)
	require.NoError(t, err)
	assert.Empty(t, items)
}

// TestApply_AbsorbedWithoutRetentionKeepsOnlyTheID: an event delivered
// before it was stored is not written as pending nor retained; its id is
// remembered and the journal mark moves past it.
func TestApply_AbsorbedWithoutRetentionKeepsOnlyTheID(t *testing.T) {
	s := openTest(t, "", Options{RememberFor: time.Hour})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r1, r2 := testRecord("a", "abs", 1, at), testRecord("a", "abs", 2, at)
	_, err := s.Apply(&Apply{Entries: []*Entry{entry(1, r1), entry(2, r2)}, Absorbed: []Done{{Seq: 1, At: at}}, Now: at})
	require.NoError(t, err)
	pend, _, err := s.List(KindPending, nil, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2}, seqs(pend))
	kept, _, err := s.List(KindDelivered, nil, 0, 0)
	require.NoError(t, err)
	assert.Empty(t, kept)
	var ids []string
	require.NoError(t, s.AcceptedSince(time.Time{}, func(id string, _ time.Time) { ids = append(ids, id) }))
	assert.Equal(t, []string{r1.ID, r2.ID}, ids)
	applied, _, err := s.Marks()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), applied)
}

func TestFail_DeadLettersWithStateAndSkipsGone(t *testing.T) {
	s := openTest(t, "", Options{})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	putRecords(t, s, 1, testRecord("a", "f", 1, at), testRecord("a", "f", 2, at))
	st := State{Attempts: 3, LastAttempt: at, DeadAt: at, LastError: "HTTP 404 Not Found; permanent failure"}
	st.AddAttempt(Attempt{At: at, Status: 404, Error: "HTTP 404 Not Found"})
	sizes, err := s.Fail([]Failure{{Seq: 1, State: st, Dead: true}, {Seq: 7, State: st, Dead: true}})
	require.NoError(t, err)
	assert.Positive(t, sizes[0])
	assert.Zero(t, sizes[1])
	dead, _, err := s.List(KindDead, nil, 0, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, uint64(1), dead[0].Seq)
	assert.Equal(t, st.LastError, dead[0].State.LastError)
	assert.Equal(t, 404, dead[0].State.History[0].Status)
	pend, _, err := s.List(KindPending, nil, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2}, seqs(pend))
}

// TestList_FiltersAndPages lists by destination, command (exact and
// family), time range and refs, in pages that resume after a cursor.
func TestList_FiltersAndPages(t *testing.T) {
	s := openTest(t, "", Options{})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var recs []Record
	for i := range 10 {
		r := testRecord([]string{"a", "b"}[i%2], "page", i, at.Add(time.Duration(i)*time.Minute))
		if i%3 == 0 {
			r.Command = "C2C.CallbackAfterSendMsg"
		}
		recs = append(recs, r)
	}
	putRecords(t, s, 1, recs...)

	list := func(f *Filter, after uint64, limit int) ([]uint64, bool) {
		items, more, err := s.List(KindPending, f, after, limit)
		require.NoError(t, err)
		for _, it := range items {
			assert.Nil(t, it.Record.Body, "lists leave bodies out")
		}
		return seqs(items), more
	}
	got, more := list(nil, 0, 0)
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, got)
	assert.False(t, more)
	got, more = list(&Filter{Destination: "a"}, 0, 3)
	assert.Equal(t, []uint64{1, 3, 5}, got)
	assert.True(t, more)
	got, more = list(&Filter{Destination: "a"}, 5, 3)
	assert.Equal(t, []uint64{7, 9}, got)
	assert.False(t, more)
	got, _ = list(&Filter{Command: "C2C.*"}, 0, 0)
	assert.Equal(t, []uint64{1, 4, 7, 10}, got)
	got, _ = list(&Filter{Command: "Group.CallbackAfterSendMsg"}, 0, 0)
	assert.Equal(t, []uint64{2, 3, 5, 6, 8, 9}, got)
	got, _ = list(&Filter{From: at.Add(2 * time.Minute), To: at.Add(5 * time.Minute)}, 0, 0)
	assert.Equal(t, []uint64{3, 4, 5}, got, "From inclusive, To exclusive")
	got, _ = list(&Filter{Refs: []string{recs[4].ID, "9"}, Destination: "a"}, 0, 0)
	assert.Equal(t, []uint64{5, 9}, got)
}

// TestOps_ReplayPurgeRetry moves dead letters back (with a fresh attempt
// count, history kept), purges by filter, makes waiting events due, and
// replays retained deliveries; each reports refs that matched nothing.
func TestOps_ReplayPurgeRetry(t *testing.T) {
	s := openTest(t, "", Options{})
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var recs []Record
	for i := range 6 {
		recs = append(recs, testRecord([]string{"a", "b"}[i%2], "ops", i, at))
	}
	putRecords(t, s, 1, recs...)
	dead := State{Attempts: 4, DeadAt: at, LastError: "gave up"}
	dead.AddAttempt(Attempt{At: at, Status: 500, Error: "HTTP 500"})
	_, err := s.Fail([]Failure{{Seq: 1, State: dead, Dead: true}, {Seq: 2, State: dead, Dead: true}, {Seq: 3, State: dead, Dead: true}})
	require.NoError(t, err)

	moved, matched, err := s.ReplayDead(&Filter{Destination: "a", Refs: []string{"1", "2", "nope"}})
	require.NoError(t, err)
	assert.Equal(t, []Removed{{Seq: 1, Destination: "a", Size: int64(len(EncodeRecord(&recs[0])))}}, moved)
	assert.Equal(t, []bool{true, false, false}, matched, "seq 2 is destination b")
	back, err := s.Find("1")
	require.NoError(t, err)
	assert.Equal(t, KindPending, back.Kind)
	assert.Zero(t, back.State.Attempts, "a fresh attempt count")
	assert.True(t, back.State.DeadAt.IsZero())
	assert.Len(t, back.State.History, 1, "the history stays")

	removed, _, err := s.PurgeDead(&Filter{Destination: "b"})
	require.NoError(t, err)
	assert.Equal(t, []uint64{2}, []uint64{removed[0].Seq})
	removed, _, err = s.PurgeDead(nil)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3}, []uint64{removed[0].Seq})

	waiting := State{Attempts: 2, NextAttempt: at.Add(time.Hour)}
	_, err = s.Fail([]Failure{{Seq: 4, State: waiting}})
	require.NoError(t, err)
	due, matched, err := s.RetryNow(&Filter{Refs: []string{recs[3].ID, recs[4].ID, "77"}})
	require.NoError(t, err)
	assert.Len(t, due, 2)
	assert.Equal(t, []bool{true, true, false}, matched)
	now, err := s.Find("4")
	require.NoError(t, err)
	assert.True(t, now.State.NextAttempt.IsZero())
	assert.Equal(t, 2, now.State.Attempts, "retry-now keeps the attempt count")

	_, err = s.Apply(&Apply{Done: []Done{{Seq: 5, At: at}, {Seq: 6, At: at}}, Retain: true})
	require.NoError(t, err)
	held, matched, err := s.SelectDelivered(&Filter{Refs: []string{"6", "5", "2"}})
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, []bool{true, true, false}, matched)
	// One is dropped between selection and move: it is left out.
	_, err = s.Apply(&Apply{Evict: Evict{Events: 1}})
	require.NoError(t, err)
	moved, err = s.MoveDelivered(held)
	require.NoError(t, err)
	require.Len(t, moved, 1)
	assert.Equal(t, uint64(6), moved[0].Seq, "seq 5 was delivered first, so dropped first")
	again, err := s.Find("6")
	require.NoError(t, err)
	assert.Equal(t, KindPending, again.Kind)
	assert.True(t, again.State.DeliveredAt.IsZero())
	assert.Len(t, again.State.History, 1, "the success stays in the history")
}
