package tlsconf

import (
	"context"
	"crypto/sha256"
	"os"
	"time"

	"github.com/imedge/imedge/certs"
)

// fileStamp is what a poll remembers of one watched file.
type fileStamp struct {
	size int64
	mod  time.Time
	sum  [sha256.Size]byte
}

// watcher is the polling state of one Watch call; it is owned by that call.
type watcher struct {
	stamps map[string]fileStamp
	tried  map[string][sha256.Size]byte // contents a failed Reload was attempted with
}

// DefaultWatchInterval is how often imedge serve polls the watched files
// (--reload-interval).
const DefaultWatchInterval = 2 * time.Second

// Watch polls the watched files (server certificate and key, client-CA
// bundle, CRLs) every interval and calls Reload when the content of any of
// them differs from what the current material was loaded from. Size and
// modification time decide whether a file is read again; its SHA-256
// decides whether it changed, so touching a file reloads nothing. While any
// file is missing (mid atomic rename) nothing is reloaded; a file that
// reappears with new content triggers a reload. A content set that already
// failed to load is not retried until a file changes again.
//
// Watch blocks until ctx is done or the Source is closed; run it in a
// goroutine the caller owns. A non-positive interval means one second.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	w := &watcher{stamps: make(map[string]fileStamp)}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
		s.poll(ctx, w)
	}
}

// watchedFiles lists the files a reload reads.
func (s *Source) watchedFiles() []string {
	var files []string
	if s.acme == nil {
		files = append(files, s.opts.CertFile, s.opts.KeyFile)
	}
	if s.opts.ClientCAFile != "" {
		files = append(files, s.opts.ClientCAFile)
	}
	if s.opts.AllowedClientsFile != "" {
		files = append(files, s.opts.AllowedClientsFile)
	}
	return append(files, s.opts.ClientCRLFiles...)
}

// poll runs one check and reloads when needed.
func (s *Source) poll(ctx context.Context, w *watcher) {
	cur := make(map[string][sha256.Size]byte)
	for _, p := range s.watchedFiles() {
		fi, err := os.Stat(p)
		if err != nil {
			delete(w.stamps, p)
			return // missing: wait until it is back
		}
		if old, ok := w.stamps[p]; ok && old.size == fi.Size() && old.mod.Equal(fi.ModTime()) {
			cur[p] = old.sum
			continue
		}
		data, err := certs.ReadFile("watching", p)
		if err != nil {
			delete(w.stamps, p)
			return
		}
		sum := sha256.Sum256(data)
		w.stamps[p] = fileStamp{size: fi.Size(), mod: fi.ModTime(), sum: sum}
		cur[p] = sum
	}
	if sameSums(cur, s.cur.Load().sums) {
		w.tried = nil
		return
	}
	if w.tried != nil && sameSums(cur, w.tried) {
		return
	}
	if ctx.Err() != nil {
		return // shutting down: not a failed reload
	}
	if err := s.Reload(ctx); err != nil {
		w.tried = cur
		return
	}
	w.tried = nil
}

func sameSums(a, b map[string][sha256.Size]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
