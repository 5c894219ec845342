package store

import (
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// acceptedKeys returns the number of keys and of ids in s's accepted bucket.
func acceptedKeys(t *testing.T, s *Store) (keys int, ids int64) {
	t.Helper()
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAccepted)
		keys = a.Stats().KeyN
		ids = countAccepted(a)
		return nil
	}))
	return keys, ids
}

// applyTimes stores one record per time, with sequences from first on, in
// transactions of per records each, and returns their ids.
func applyTimes(t *testing.T, s *Store, first uint64, per int, times ...time.Time) []string {
	t.Helper()
	var ids []string
	for i := 0; i < len(times); i += per {
		var es []*Entry
		for j := i; j < min(i+per, len(times)); j++ {
			r := testRecord(DefaultDestination, "acc", int(first)+j, times[j])
			es = append(es, entry(first+uint64(j), r))
			ids = append(ids, r.ID)
		}
		_, err := s.Apply(&Apply{Entries: es, Now: times[min(i+per, len(times))-1]})
		require.NoError(t, err)
	}
	return ids
}

// TestAccepted_BlocksPerTransaction: each transaction stores its ids in
// blocks of at most acceptedBlockIDs; all of them come back from
// AcceptedSince and count in Remembered, also after a reopen.
func TestAccepted_BlocksPerTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openTest(t, path, Options{RememberFor: time.Hour})
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var times []time.Time
	for i := range 200 {
		times = append(times, base.Add(time.Duration(i)*time.Millisecond))
	}
	want := applyTimes(t, s, 1, 50, times...)
	assert.Equal(t, int64(200), s.Remembered())
	keys, ids := acceptedKeys(t, s)
	assert.Equal(t, int64(200), ids)
	assert.Less(t, keys, 100, "ids applied together share a value")
	assert.GreaterOrEqual(t, keys, 200/acceptedBlockIDs, "at most acceptedBlockIDs to a value")

	check := func(s *Store) {
		got := map[string]time.Time{}
		var listed []string
		require.NoError(t, s.AcceptedSince(time.Time{}, func(id string, at time.Time) {
			_, dup := got[id]
			assert.False(t, dup, "id %s listed twice", id)
			got[id] = at
			listed = append(listed, id)
		}))
		assert.Equal(t, want, listed, "in acceptance order")
		// Since a time inside a block: exactly the ids accepted at or
		// after it, which means comparing ids within a block.
		var later []string
		require.NoError(t, s.AcceptedSince(times[101], func(id string, _ time.Time) { later = append(later, id) }))
		assert.Equal(t, want[101:], later)
	}
	check(s)
	require.NoError(t, s.Close())
	re := openTest(t, path, Options{RememberFor: time.Hour})
	assert.Equal(t, int64(200), re.Remembered(), "counted from the blocks at open")
	check(re)
}

// TestAccepted_ReadsAndPrunesIdsStoredOneByOne: a store written before
// blocks (one id per key) keeps working: its ids are listed with their
// times next to new blocks, counted at open, and pruned first.
func TestAccepted_ReadsAndPrunesIdsStoredOneByOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openTest(t, path, Options{})
	require.NoError(t, s.Close())

	// Three ids the old way: a hex id, another, and an id that is not hex.
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	old := []string{testRecord("", "old", 0, base).ID, testRecord("", "old", 1, base).ID, "not-a-hex-id"}
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAccepted)
		for i, id := range old {
			at := time.Date(2025, 1, 1, 11, 50+i, 0, 0, time.UTC)
			if err := a.Put(acceptedKey(at, uint64(1000+i)), encodeID(id)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	s = openTest(t, path, Options{MaxRemembered: 4})
	assert.Equal(t, int64(3), s.Remembered(), "ids stored one by one are counted")

	var got []string
	since := time.Date(2025, 1, 1, 11, 51, 0, 0, time.UTC)
	require.NoError(t, s.AcceptedSince(since, func(id string, at time.Time) {
		got = append(got, id)
		assert.False(t, at.Before(since))
	}))
	assert.Equal(t, old[1:], got, "old ids at or after since, with their times")

	// Two new ids make five against a bound of four: the oldest old id goes.
	newIDs := applyTimes(t, s, 2000, 1, base, base.Add(time.Second))
	got = nil
	require.NoError(t, s.AcceptedSince(time.Time{}, func(id string, _ time.Time) { got = append(got, id) }))
	assert.Equal(t, append([]string{old[1], old[2]}, newIDs...), got)
	assert.Equal(t, int64(4), s.Remembered())
}

// TestAccepted_PrunesExpiredAndExcess: ids past RememberFor go, and the
// oldest beyond MaxRemembered.
func TestAccepted_PrunesExpiredAndExcess(t *testing.T) {
	s := openTest(t, "", Options{RememberFor: 10 * time.Minute, MaxRemembered: 5})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	applyTimes(t, s, 1, 3, base, base.Add(time.Second), base.Add(2*time.Second))
	later := base.Add(11 * time.Minute)
	var times []time.Time
	for i := range 7 {
		times = append(times, later.Add(time.Duration(i)*time.Second))
	}
	fresh := applyTimes(t, s, 10, 1, times...)
	var got []string
	require.NoError(t, s.AcceptedSince(time.Time{}, func(id string, _ time.Time) { got = append(got, id) }))
	assert.Equal(t, fresh[2:], got, "expired ids and the oldest beyond MaxRemembered are pruned")
	assert.Equal(t, int64(5), s.Remembered())
}

// TestAccepted_BlockFormat: ids survive a block round trip in acceptance
// order; dropping the oldest keeps the rest; damaged blocks are read up to
// the damage, and pruning treats them as one id to remove.
func TestAccepted_BlockFormat(t *testing.T) {
	first, last := testRecord("", "a", 0, time.Time{}).ID, testRecord("", "a", 1, time.Time{}).ID
	ids := []AcceptedID{NewAcceptedID(time.Unix(0, 3), first), NewAcceptedID(time.Unix(0, 5), "plain"), NewAcceptedID(time.Unix(0, 9), last)}
	v := appendAcceptedBlock(nil, ids)
	assert.Equal(t, 3, acceptedCount(v))
	k := acceptedKeyNanos(9, 7)
	type got struct {
		id string
		at int64
	}
	read := func(v []byte) []got {
		var out []got
		eachAccepted(k, v, func(id string, at time.Time) { out = append(out, got{id, at.UnixNano()}) })
		return out
	}
	assert.Equal(t, []got{{first, 3}, {"plain", 5}, {last, 9}}, read(v))

	rest, ok := dropOldestAccepted(v, 2)
	require.True(t, ok)
	assert.Equal(t, 1, acceptedCount(rest))
	assert.Equal(t, []got{{last, 9}}, read(rest))
	_, ok = dropOldestAccepted(v, 3)
	assert.False(t, ok, "dropping every id is a delete, not a rewrite")

	torn := v[:len(v)-5]
	assert.Equal(t, []got{{first, 3}, {"plain", 5}}, read(torn), "entries before the damage are read")
	_, ok = dropOldestAccepted(torn, 1)
	assert.False(t, ok, "a damaged block is not rewritten")
	assert.Equal(t, 1, acceptedCount([]byte{acceptedBlock}), "no count: one id to remove")
	assert.Equal(t, 1, acceptedCount(encodeID("x")), "an id stored alone")
}

func TestDecodeHexID_AgreesWithEncodeID(t *testing.T) {
	id := testRecord("", "hex", 0, time.Time{}).ID
	for _, s := range []string{id, strings.ToUpper(id), id[:63], id + "0", id[:10] + "g" + id[11:], "", "plain"} {
		var bin [32]byte
		ok := decodeHexID(&bin, s)
		assert.Equal(t, isHexID(s), ok, "%q", s)
		if ok {
			assert.Equal(t, encodeID(s)[1:], bin[:])
		}
	}
}

// TestPutAccepted_BlocksOfAtMost64InTimeOrder: a transaction's ids, given
// out of time order, are stored sorted by time in blocks of at most
// acceptedBlockIDs whose keys keep that order.
func TestPutAccepted_BlocksOfAtMost64InTimeOrder(t *testing.T) {
	s := openTest(t, "", Options{})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var entries []*Entry
	for i := range 150 {
		at := base.Add(time.Duration((i*37)%150) * time.Millisecond) // a permutation of 0..149 ms
		id := testRecord("", "put", i, at).ID
		entries = append(entries, &Entry{Seq: uint64(1000 + i), ID: NewAcceptedID(at, id)})
	}
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error { return putAccepted(tx.Bucket(bucketAccepted), entries) }))

	var sizes []int
	var times []time.Time
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAccepted).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sizes = append(sizes, acceptedCount(v))
			eachAccepted(k, v, func(_ string, at time.Time) {
				assert.False(t, at.After(acceptedKeyTime(k)), "a block's key time is its newest")
				times = append(times, at)
			})
		}
		return nil
	}))
	assert.Equal(t, []int{64, 64, 22}, sizes)
	require.Len(t, times, 150)
	for i, at := range times {
		assert.Equal(t, base.Add(time.Duration(i)*time.Millisecond), at, "id %d in time order", i)
	}
}

// encodeID is the form stores written before blocks kept each id in (a
// lowercase hex SHA-256 in 33 bytes behind tag 1, any other id as is
// behind tag 0), the form blocks keep too (appendAcceptedBlock); decodeID
// reads it. Tests use it to write such stores.
func encodeID(id string) []byte {
	if isHexID(id) {
		b, _ := hex.AppendDecode([]byte{1}, []byte(id)) // isHexID: valid hex
		return b
	}
	return append([]byte{0}, id...)
}

// isHexID reports whether id is a lowercase hex SHA-256.
func isHexID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
