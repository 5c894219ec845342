package forward

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// probeData is what Writable writes (and removes) to prove the directory
// takes writes.
var probeData = []byte("imedge outbox write probe\n")

// Writable reports whether the outbox can store events now, for readiness
// checks. It stores nothing in the outbox: it checks that the store is open
// for writing, that its file is still the one opened (not removed or
// replaced, which would make every event stored from now on vanish at the
// next start), and that the directory takes a new file, written and fsynced
// (which catches a read-only or failing filesystem and a directory replaced
// or made unusable). Errors wrap [ErrNotWritable] or [ErrClosed].
//
// Each call creates, syncs and removes one small file; callers probing often
// should cache the result for a second or so. Safe for concurrent use.
func (o *Outbox) Writable() error {
	if o.closed.Load() {
		return ErrClosed
	}
	path := o.st.Path()
	if o.readOnly {
		return fmt.Errorf("checking outbox %q: %w: opened read-only", path, ErrNotWritable)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking outbox %q: %w: %w", path, ErrNotWritable, err)
	}
	if opened := o.st.Opened(); opened == nil || !os.SameFile(fi, opened) {
		return fmt.Errorf("checking outbox %q: %w: the file was removed or replaced since it was opened (events stored now would be lost at restart)", path, ErrNotWritable)
	}
	if j := o.ap.jr; j != nil {
		fi, err := os.Stat(j.Path())
		if err != nil {
			return fmt.Errorf("checking outbox journal %q: %w: %w", j.Path(), ErrNotWritable, err)
		}
		if !os.SameFile(fi, j.Opened()) {
			return fmt.Errorf("checking outbox journal %q: %w: the file was removed or replaced since it was opened (events journaled now would be lost at a crash)", j.Path(), ErrNotWritable)
		}
	}
	if err := o.ap.failure(); err != nil {
		return fmt.Errorf("checking outbox %q: %w: storing journaled events fails: %w", path, ErrNotWritable, err)
	}
	if err := probeDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("checking outbox directory %q: %w: %w", filepath.Dir(path), ErrNotWritable, err)
	}
	return nil
}

// probeDir creates a file in dir, writes and fsyncs it, then removes it.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(probeData)
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	return errors.Join(werr, serr, cerr, rerr)
}
