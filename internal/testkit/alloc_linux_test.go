package testkit_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

func TestAllocatedBytes(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(8<<20))
	require.NoError(t, f.Close())
	full := filepath.Join(dir, "full")
	require.NoError(t, os.WriteFile(full, make([]byte, 1<<20), 0o600))

	assert.Less(t, testkit.AllocatedBytes(t, sparse), int64(1<<20), "a truncated file holds (almost) no blocks")
	assert.GreaterOrEqual(t, testkit.AllocatedBytes(t, full), int64(1<<20), "a written file holds its blocks")
}
