package audit

import (
	"fmt"
	"os"
	"sync"
)

// File is an append-only audit log file that can be reopened after
// logrotate moved it (the SIGUSR1 convention). Each Write is one record.
// Safe for concurrent use; call Close when done.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFile opens (creating, mode 0600) path for appending.
func OpenFile(path string) (*File, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return f, nil
}

// Write appends p.
func (a *File) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Write(p)
}

// Reopen opens the path anew and closes the old descriptor. On failure the
// old descriptor stays in use and the error is returned.
func (a *File) Reopen() error {
	f, err := openAppend(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.f
	a.f = f
	a.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (a *File) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}
