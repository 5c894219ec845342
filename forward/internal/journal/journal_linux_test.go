//go:build linux

package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// TestOpen_WritesTheFileNotSparse: a new journal has every block allocated
// before the first record, so no write makes the filesystem allocate (and
// a flush commit that metadata); a file of another size is rewritten to
// the new size the same way.
func TestOpen_WritesTheFileNotSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path, Options{Size: 4 << 20})
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(4<<20), fi.Size())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.GreaterOrEqual(t, testkit.AllocatedBytes(t, path), int64(4<<20), "every block written at creation")
	require.NoError(t, j.Close())

	j, err = Open(path, Options{Size: 6 << 20})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(6<<20), fi.Size())
	assert.GreaterOrEqual(t, testkit.AllocatedBytes(t, path), int64(6<<20), "a resized journal is written to its new size")
}
