//go:build linux

package forward

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// TestOpenOutbox_JournalIsWrittenNotSparse: a new journal has every block
// allocated before the first callback, so no append makes the filesystem
// allocate (and an fdatasync commit that metadata); a journal of another
// size, here one left by a smaller configuration, is rewritten to the
// new size the same way, after recovery took its records.
func TestOpenOutbox_JournalIsWrittenNotSparse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, JournalFileName)
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, journalSize: 4 << 20})
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(4<<20), fi.Size())
	assert.GreaterOrEqual(t, testkit.AllocatedBytes(t, path), int64(4<<20), "every block written at creation")

	require.NoError(t, ob.Append(t.Context(), testEvent("alloc", 1)))
	require.NoError(t, ob.Close())
	ob = openTestOutbox(t, OutboxOptions{Dir: dir, journalSize: 6 << 20})
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(6<<20), fi.Size())
	assert.GreaterOrEqual(t, testkit.AllocatedBytes(t, path), int64(6<<20), "a resized journal is written to its new size")
	list := listAll(t, ob, StatePending)
	require.Len(t, list, 1, "the event survives the resize")
	assert.Equal(t, testEvent("alloc", 1).ID, list[0].Event.ID)
}
