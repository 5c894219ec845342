package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imedge/imedge/admin"
)

// credentialFileName is the local credential's file in the state
// directory. imedge outbox reads it to reach the outbox operations of a
// plain-HTTP (loopback) admin listener.
const credentialFileName = "admin.credential"

// credentialBytes is the local credential's entropy, written as hex.
const credentialBytes = 32

// credentialPath is the local credential's file for state directory dir.
func credentialPath(dir string) string { return filepath.Join(dir, credentialFileName) }

// openCredential writes a new local credential for the admin listener's
// outbox operations, STATE-DIR/admin.credential (0600, atomically; a new
// one at each start, so one read from an earlier run no longer works).
// Only a plain-HTTP admin listener needs it: with mutual TLS the client
// certificate is the identity, and a file left by an earlier start is
// removed so that it misleads no one.
func (s *Server) openCredential(context.Context, io.Writer) error {
	ac := s.cfg.Admin
	path := credentialPath(s.cfg.State.Dir)
	if !ac.enabled() || ac.mTLS() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("removing the previous admin credential", "path", path, "err", err)
		}
		return nil
	}
	b := make([]byte, credentialBytes)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("making the admin credential: %w", err)
	}
	cred := hex.EncodeToString(b)
	if err := writeSecretFile(path, []byte(cred+"\n")); err != nil {
		return fmt.Errorf("writing the admin credential: %w", err)
	}
	s.adminCred = cred
	s.log.Info("admin credential written", "path", path) // never its value
	return nil
}

// outboxAPI configures the admin listener's outbox operations.
func (s *Server) outboxAPI() *admin.OutboxAPI {
	return &admin.OutboxAPI{Outbox: s.box, Audit: s.audit, Credential: s.adminCred}
}

// writeSecretFile replaces path with data atomically: a 0600 temporary
// file in the same directory, synced, renamed over path, and the directory
// synced, so a crash leaves the old file or the new one, never a part.
func writeSecretFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
