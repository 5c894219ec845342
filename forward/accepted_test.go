package forward

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// acceptedKeys returns the number of keys and of ids in ob's accepted bucket.
func acceptedKeys(t *testing.T, ob *Outbox) (keys int, ids int64) {
	t.Helper()
	require.NoError(t, ob.db.View(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAccepted)
		keys = a.Stats().KeyN
		ids = countAccepted(a)
		return nil
	}))
	return keys, ids
}

// TestAccepted_OneBlockPerTransaction: concurrent Appends are applied
// together, and each transaction stores its ids as one value; all of them
// come back from AcceptedSince and count in Stats.Remembered, also after
// a reopen.
func TestAccepted_OneBlockPerTransaction(t *testing.T) {
	dir := t.TempDir()
	// Every reading a millisecond later: events applied together have
	// different acceptance times.
	clock := &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC), step: time.Millisecond}
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Now: clock.Now})
	want := appendConcurrently(t, ob, "blk")
	require.Len(t, want, 200)
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 200, st.Remembered)
	keys, ids := acceptedKeys(t, ob)
	assert.Equal(t, int64(200), ids)
	assert.Less(t, keys, 100, "ids applied together share a value")
	assert.GreaterOrEqual(t, keys, 200/acceptedBlockIDs, "at most acceptedBlockIDs to a value")

	check := func(ob *Outbox) {
		got := map[string]time.Time{}
		var times []time.Time
		require.NoError(t, ob.AcceptedSince(time.Time{}, func(id string, at time.Time) {
			_, dup := got[id]
			assert.False(t, dup, "id %s listed twice", id)
			got[id] = at
			times = append(times, at)
		}))
		assert.Len(t, got, len(want))
		for _, id := range want {
			assert.Contains(t, got, id)
		}
		// Since a time inside the blocks: exactly the ids accepted at or
		// after it, which means comparing ids within a block.
		require.Len(t, times, 200)
		since := times[100]
		later := map[string]bool{}
		for id, at := range got {
			if !at.Before(since) {
				later[id] = true
			}
		}
		listed := map[string]bool{}
		require.NoError(t, ob.AcceptedSince(since, func(id string, _ time.Time) { listed[id] = true }))
		assert.Equal(t, later, listed)
	}
	check(ob)
	require.NoError(t, ob.Close())
	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	st, err = re.Stats()
	require.NoError(t, err)
	assert.Equal(t, 200, st.Remembered, "counted from the blocks at open")
	check(re)
}

// TestAccepted_ReadsAndPrunesIdsStoredOneByOne: a store written before
// blocks (one id per key) keeps working: its ids are listed with their
// times next to new blocks, counted at open, and pruned first.
func TestAccepted_ReadsAndPrunesIdsStoredOneByOne(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Now: clock.Now})
	require.NoError(t, ob.Close())

	// Three ids the old way: a hex id, another, and an id that is not hex.
	old := []string{testEvent("old", 0).ID, testEvent("old", 1).ID, "not-a-hex-id"}
	db, err := bolt.Open(ob.Path(), 0o600, nil)
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

	ob = openTestOutbox(t, OutboxOptions{Dir: dir, Now: clock.Now, MaxRemembered: 4})
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Remembered, "ids stored one by one are counted")

	var got []string
	since := time.Date(2025, 1, 1, 11, 51, 0, 0, time.UTC)
	require.NoError(t, ob.AcceptedSince(since, func(id string, at time.Time) {
		got = append(got, id)
		assert.False(t, at.Before(since))
	}))
	assert.Equal(t, old[1:], got, "old ids at or after since, with their times")

	// Two new ids make five against a bound of four: the oldest old id goes.
	for i := range 2 {
		require.NoError(t, ob.Append(t.Context(), testEvent("new", i)))
	}
	got = nil
	require.NoError(t, ob.AcceptedSince(time.Time{}, func(id string, _ time.Time) { got = append(got, id) }))
	assert.Equal(t, []string{old[1], old[2], testEvent("new", 0).ID, testEvent("new", 1).ID}, got)
	st, err = ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 4, st.Remembered)
}

// TestAccepted_BlockFormat: ids survive a block round trip in acceptance
// order; dropping the oldest keeps the rest; damaged blocks are read up to
// the damage, and pruning treats them as one id to remove.
func TestAccepted_BlockFormat(t *testing.T) {
	first, last := testEvent("a", 0).ID, testEvent("a", 1).ID
	ids := []acceptedID{newAcceptedID(time.Unix(0, 3), first), newAcceptedID(time.Unix(0, 5), "plain"), newAcceptedID(time.Unix(0, 9), last)}
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
	id := testEvent("hex", 0).ID
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
	ob := openTestOutbox(t, OutboxOptions{})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var entries []*journalEntry
	for i := range 150 {
		at := base.Add(time.Duration((i*37)%150) * time.Millisecond) // a permutation of 0..149 ms
		id := testEvent("put", i).ID
		entries = append(entries, &journalEntry{seq: uint64(1000 + i), at: at, acc: newAcceptedID(at, id)})
	}
	require.NoError(t, ob.db.Update(func(tx *bolt.Tx) error { return putAccepted(tx.Bucket(bucketAccepted), entries) }))

	var sizes []int
	var times []time.Time
	require.NoError(t, ob.db.View(func(tx *bolt.Tx) error {
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
