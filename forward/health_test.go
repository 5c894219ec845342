package forward

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	berrors "go.etcd.io/bbolt/errors"
)

func TestOutbox_Writable_FreshStoreLeavesNoProbeFiles(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	for range 3 {
		require.NoError(t, ob.Writable())
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{FileName, JournalFileName}, names, "the probe file is removed")
}

// Root ignores permissions, so the tests make the directory unusable in
// ways that stop root too: the directory moved away and a file in its place,
// and the store file replaced.
func TestOutbox_Writable_DirectoryReplacedByFile(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "spool")
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, ob.Writable())

	require.NoError(t, os.Rename(dir, dir+".moved"))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	err := ob.Writable()
	require.ErrorIs(t, err, ErrNotWritable)
	assert.Contains(t, err.Error(), dir)

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Rename(dir+".moved", dir))
	assert.NoError(t, ob.Writable(), "writable again once the directory is back")
}

// An immutable directory (chattr +i) refuses new files even to root, while
// the open store file stays the same: only the write probe can see it.
func TestOutbox_Writable_ImmutableDirectory(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("chattr +i unsupported here (needs e2fsprogs, CAP_LINUX_IMMUTABLE and ext4/xfs): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	err := ob.Writable()
	require.ErrorIs(t, err, ErrNotWritable)
	assert.ErrorIs(t, err, os.ErrPermission)

	require.NoError(t, exec.Command("chattr", "-i", dir).Run())
	assert.NoError(t, ob.Writable())
}

func TestOutbox_Writable_StoreFileReplaced(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.Rename(path, path+".old"))
	require.NoError(t, os.WriteFile(path, b, 0o600))

	err = ob.Writable()
	require.ErrorIs(t, err, ErrNotWritable)
	assert.Contains(t, err.Error(), "removed or replaced")
}

func TestOutbox_Writable_StoreFileRemoved(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, os.Remove(filepath.Join(dir, FileName)))
	assert.ErrorIs(t, ob.Writable(), ErrNotWritable)
}

func TestProbeDir_FailsWhereNoFileCanBeCreated(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	assert.Error(t, probeDir(notDir))
	assert.Error(t, probeDir(filepath.Join(t.TempDir(), "missing")))
	assert.NoError(t, probeDir(t.TempDir()))
}

func TestOutbox_Writable_ReadOnlyAndClosed(t *testing.T) {
	dir := t.TempDir()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, ob.Close())
	assert.ErrorIs(t, ob.Writable(), ErrClosed)

	ro := openTestOutbox(t, OutboxOptions{Dir: dir, ReadOnly: true})
	assert.ErrorIs(t, ro.Writable(), ErrNotWritable)
}

func TestOutbox_Writable_JournalRemoved(t *testing.T) {
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	require.NoError(t, ob.Writable())
	require.NoError(t, os.Remove(filepath.Join(dir, JournalFileName)))
	err := ob.Writable()
	require.ErrorIs(t, err, ErrNotWritable)
	assert.Contains(t, err.Error(), "journal")
}

// TestOutbox_Writable_FalseWhileTheApplierFails fills a store capped by
// MaxFileSize: once the applier cannot store journaled events, the outbox
// reports itself not writable (readiness fails) with the store's error.
func TestOutbox_Writable_FalseWhileTheApplierFails(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{MaxFileSize: 256 << 10})
	require.NoError(t, ob.Writable())
	for i := range 1000 {
		ev := testEvent("cap", i)
		ev.Body = append(bytes.Repeat([]byte(" "), 2000), ev.Body...)
		if ob.Append(t.Context(), ev) != nil {
			break
		}
	}
	err := ob.Writable()
	require.ErrorIs(t, err, ErrNotWritable)
	assert.ErrorIs(t, err, berrors.ErrMaxSizeReached)
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.True(t, st.StoreFailing)
}
