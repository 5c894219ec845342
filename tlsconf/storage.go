package tlsconf

import (
	"context"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// memStorage is a process-local certmagic.Storage. With unmanaged
// certificates certmagic stores only OCSP staples, so nothing needs to
// survive a restart and nothing is written under the user's home directory
// (certmagic's default FileStorage). An ACME source would replace it with a
// FileStorage rooted at an operator-chosen directory. Safe for concurrent
// use; the zero value is not usable, use newMemStorage.
type memStorage struct {
	mu    sync.Mutex
	items map[string]memItem
	locks map[string]chan struct{}
}

type memItem struct {
	value    []byte
	modified time.Time
}

var _ certmagic.Storage = (*memStorage)(nil)

func newMemStorage() *memStorage {
	return &memStorage{items: make(map[string]memItem), locks: make(map[string]chan struct{})}
}

// Lock acquires the named lock, waiting for its holder or ctx.
func (m *memStorage) Lock(ctx context.Context, name string) error {
	for {
		m.mu.Lock()
		held, ok := m.locks[name]
		if !ok {
			m.locks[name] = make(chan struct{})
			m.mu.Unlock()
			return nil
		}
		m.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Unlock releases the named lock.
func (m *memStorage) Unlock(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.locks[name]; ok {
		close(ch)
		delete(m.locks, name)
	}
	return nil
}

// Store puts a copy of value at key.
func (m *memStorage) Store(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[key] = memItem{value: append([]byte(nil), value...), modified: time.Now()}
	return nil
}

// Load returns a copy of the value at key, or an error wrapping
// fs.ErrNotExist.
func (m *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if !ok {
		return nil, &fs.PathError{Op: "load", Path: key, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), it.value...), nil
}

// Delete removes key and every key below it.
func (m *memStorage) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.items {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(m.items, k)
		}
	}
	return nil
}

// Exists reports whether key is a stored key or a prefix of one.
func (m *memStorage) Exists(_ context.Context, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.items {
		if k == key || strings.HasPrefix(k, key+"/") {
			return true
		}
	}
	return false
}

// List returns the keys below prefix: its direct children, or every
// descendant (including intermediate "directories") when recursive.
func (m *memStorage) List(_ context.Context, prefix string, recursive bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]struct{})
	base := strings.TrimSuffix(prefix, "/")
	for k := range m.items {
		rest, ok := strings.CutPrefix(k, base+"/")
		if base == "" {
			rest, ok = k, true
		}
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		n := 1
		if recursive {
			n = len(parts)
		}
		for i := 1; i <= n; i++ {
			seen[path.Join(base, strings.Join(parts[:i], "/"))] = struct{}{}
		}
	}
	if len(seen) == 0 {
		return nil, &fs.PathError{Op: "list", Path: prefix, Err: fs.ErrNotExist}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Stat describes key.
func (m *memStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.items[key]; ok {
		return certmagic.KeyInfo{Key: key, Modified: it.modified, Size: int64(len(it.value)), IsTerminal: true}, nil
	}
	for k := range m.items {
		if strings.HasPrefix(k, key+"/") {
			return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
		}
	}
	return certmagic.KeyInfo{}, &fs.PathError{Op: "stat", Path: key, Err: fs.ErrNotExist}
}
