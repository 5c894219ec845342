package certs

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed into place, with the given mode. Readers see
// the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return &FileError{Path: path, Op: "writing", Err: err}
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return &FileError{Path: path, Op: "writing", Err: err}
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return &FileError{Path: path, Op: "writing", Err: err}
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return &FileError{Path: path, Op: "writing", Err: err}
	}
	return nil
}

// WriteIssued writes the certificate (0644) and its private key (0600) to
// the two paths, atomically each.
func WriteIssued(i *Issued, certPath, keyPath string) error {
	keyPEM, err := i.KeyPEM()
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteFileAtomic(certPath, i.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("after writing key: %w", err)
	}
	return nil
}
