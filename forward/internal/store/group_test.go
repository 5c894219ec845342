package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openGroupDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("b"))
		return err
	}))
	return db
}

// TestGroupCommit_ConcurrentCallersShareCommits runs 64 writers of 20
// writes each on a real bbolt file: every write is stored, and concurrent
// writes shared transactions (fewer transactions than writes).
func TestGroupCommit_ConcurrentCallersShareCommits(t *testing.T) {
	db := openGroupDB(t)
	g := newTxGroup(db)
	const writers, each = 64, 20
	var mu sync.Mutex
	txs := map[int]int{} // tx id → writes committed in it
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var id int
				err := g.Run(func(tx *bolt.Tx) error {
					id = tx.ID()
					return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "%d-%d", w, i), []byte("v"))
				})
				assert.NoError(t, err)
				mu.Lock()
				txs[id]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		assert.Equal(t, writers*each, tx.Bucket([]byte("b")).Stats().KeyN)
		return nil
	}))
	assert.Less(t, len(txs), writers*each, "some writes shared a commit")
	t.Logf("%d writes in %d transactions", writers*each, len(txs))
}

// TestGroupCommit_OneFailureDoesNotFailOthers makes one call of each group
// fail: it alone gets the error, the others are committed.
func TestGroupCommit_OneFailureDoesNotFailOthers(t *testing.T) {
	db := openGroupDB(t)
	g := newTxGroup(db)
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			errs[i] = g.Run(func(tx *bolt.Tx) error {
				if i%10 == 3 {
					return errBoom
				}
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
			})
		})
	}
	wg.Wait()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i, err := range errs {
			if i%10 == 3 {
				assert.ErrorIs(t, err, errBoom, "call %d", i)
				assert.Nil(t, b.Get(fmt.Appendf(nil, "k%d", i)))
			} else {
				assert.NoError(t, err, "call %d", i)
				assert.NotNil(t, b.Get(fmt.Appendf(nil, "k%d", i)), "call %d committed", i)
			}
		}
		return nil
	}))
}

// TestGroupCommit_ClosedDatabase returns bbolt's error to every caller.
func TestGroupCommit_ClosedDatabase(t *testing.T) {
	db := openGroupDB(t)
	g := newTxGroup(db)
	require.NoError(t, db.Close())
	err := g.Run(func(*bolt.Tx) error { return nil })
	assert.Error(t, err)
}
