package testkit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// logger's or an audit log's output, or a child process's.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BuildImedge builds the imedge binary into dir, with the race detector
// when cgo allows it, and returns its path.
func BuildImedge(dir string) (string, error) {
	bin := filepath.Join(dir, "imedge")
	const pkg = "github.com/imedge/imedge/cmd/imedge"
	out, err := exec.Command("go", "build", "-race", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		// -race needs cgo; fall back to a plain build.
		out, err = exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	}
	if err != nil {
		return "", fmt.Errorf("building imedge: %w\n%s", err, out)
	}
	return bin, nil
}

// MainWithImedge is a TestMain body for packages whose tests run the real
// binary: it builds imedge into a temporary directory, stores its path in
// *bin, runs the tests and exits with their code after removing the
// directory. A failed build exits with code 2 and the build's output.
func MainWithImedge(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "imedge-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *bin, err = BuildImedge(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
