//go:build linux

package uring_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/imedge/imedge/internal/uring"
)

// newRing returns a ring, failing the test where the kernel says io_uring
// is enabled (kernel.io_uring_disabled is 0) but New still fails, and
// skipping only where the kernel has it switched off or lacks it.
func newRing(t *testing.T) *uring.Ring {
	t.Helper()
	r, err := uring.New()
	if err != nil {
		b, rerr := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
		if rerr == nil && strings.TrimSpace(string(b)) == "0" {
			require.NoError(t, err, "io_uring is enabled in this kernel")
		}
		require.ErrorIs(t, err, uring.ErrUnavailable)
		t.Skipf("io_uring unavailable here: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "data"), os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestFdatasync_FlushesWrittenFile(t *testing.T) {
	r := newRing(t)
	f := tempFile(t)
	// Many more flushes than the ring has entries: both rings wrap.
	for i := range 50 {
		_, err := f.WriteAt([]byte("record\n"), int64(i*7))
		require.NoError(t, err)
		require.NoError(t, r.Fdatasync(f), "flush %d", i)
	}
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("record\n", 50), string(b))
}

// The kernel runs the operation on the file given: on a pipe, which cannot
// be flushed, it fails as fdatasync(2) itself does.
func TestFdatasync_ReportsTheKernelsError(t *testing.T) {
	r := newRing(t)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()

	want := unix.Fdatasync(int(pw.Fd()))
	require.Error(t, want)
	err = r.Fdatasync(pw)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "fdatasync", se.Syscall)
	assert.ErrorIs(t, err, want)

	// The ring stays usable after a failed operation.
	assert.NoError(t, r.Fdatasync(tempFile(t)))
}

func TestFdatasync_ClosedFile(t *testing.T) {
	r := newRing(t)
	f := tempFile(t)
	require.NoError(t, f.Close())
	assert.ErrorIs(t, r.Fdatasync(f), os.ErrClosed)
}

func TestFdatasync_ConcurrentCallers(t *testing.T) {
	r := newRing(t)
	files := []*os.File{tempFile(t), tempFile(t), tempFile(t), tempFile(t)}
	var wg sync.WaitGroup
	errs := make(chan error, 8*25)
	for g := range 8 {
		wg.Go(func() {
			f := files[g%len(files)]
			for range 25 {
				if _, err := f.Write([]byte("x")); err != nil {
					errs <- err
					return
				}
				errs <- r.Fdatasync(f)
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		assert.NoError(t, err)
		n++
	}
	assert.Equal(t, 8*25, n)
}

func TestClose_ThenFdatasyncIsErrClosed(t *testing.T) {
	r := newRing(t)
	require.NoError(t, r.Close())
	assert.NoError(t, r.Close(), "a second Close does nothing")
	err := r.Fdatasync(tempFile(t))
	assert.True(t, errors.Is(err, uring.ErrClosed), "got %v", err)
}
