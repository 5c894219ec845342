package testkit

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// AllocatedBytes returns how many bytes of path's blocks the filesystem
// holds: less than the file's size for a sparse file.
func AllocatedBytes(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}
