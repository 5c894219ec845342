package receiver

import (
	"strings"
	"sync"
	"time"
)

// warnInterval is how often at most one warning per command is logged for
// unknown commands and, in warn mode, for nonconforming bodies.
const warnInterval = time.Minute

// maxWarnKeys bounds the commands a warnGate remembers. Past it, stale
// entries are dropped; if none is stale, the warning is skipped (it is
// still counted in Stats).
const maxWarnKeys = 1024

// warnGate lets at most one warning per key through per interval. The zero
// value with an interval set is ready; it is safe for concurrent use.
type warnGate struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

// allow reports whether a warning for key may be logged at now, and if so
// records it.
func (g *warnGate) allow(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, seen := g.last[key]
	if seen && now.Sub(t) < g.interval {
		return false
	}
	if g.last == nil {
		g.last = make(map[string]time.Time)
	}
	if !seen && len(g.last) >= maxWarnKeys {
		for k, t := range g.last {
			if now.Sub(t) >= g.interval {
				delete(g.last, k)
			}
		}
		if len(g.last) >= maxWarnKeys {
			return false
		}
	}
	// A clone: key may share memory with the request's query, and an
	// assignment replaces the stored key too.
	g.last[strings.Clone(key)] = now
	return true
}
