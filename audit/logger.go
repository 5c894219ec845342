package audit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Options configures a Logger. The zero value writes every record unsampled
// with time.Now.
type Options struct {
	// Interval is the sampling window; zero disables sampling.
	Interval time.Duration
	// Burst is how many records per reason and key are written in each
	// window before the rest are counted; zero means 10.
	Burst int
	// MaxKeys bounds the (reason, key) pairs tracked per window; keys past it
	// share one overflow counter. Zero means 10000.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Logger writes audit records as JSON lines. With sampling on, per reason and
// key (the ClientIP, or the remote IP when there is none) it writes the first
// Burst records of each Interval and then, once the interval is over, one
// summary record with the number suppressed. Memory is bounded by MaxKeys.
//
// A nil *Logger discards everything. Safe for concurrent use.
type Logger struct {
	h    slog.Handler
	opts Options

	mu          sync.Mutex
	windowStart time.Time
	counts      map[sampleKey]int
	written     uint64
	suppressed  uint64
	byReason    map[Reason]uint64 // every record passed to Log, before sampling; see Counts
}

type sampleKey struct {
	reason Reason
	key    string
}

const overflowKey = "(other keys)"

// Sampling defaults: what imedge serve uses unless told otherwise.
const (
	// DefaultInterval is the sampling window imedge serve uses.
	DefaultInterval = 10 * time.Second
	// DefaultBurst is the number of records per reason and key written in
	// each window before they are summarised; a zero Options.Burst means it.
	DefaultBurst = 10
)

// New returns a Logger writing JSON lines to w.
func New(w io.Writer, o Options) *Logger {
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Logger{
		h:      slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}),
		opts:   o,
		counts: make(map[sampleKey]int),
	}
}

// Log writes r, or counts it when its (reason, key) has used its burst in
// this window.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	now := l.opts.Now()
	if l.opts.Interval > 0 {
		l.mu.Lock()
		l.rollLocked(now)
		l.countLocked(r.Reason)
		k := sampleKey{r.Reason, sampleKeyOf(r)}
		if _, ok := l.counts[k]; !ok && len(l.counts) >= l.opts.MaxKeys {
			k.key = overflowKey
		}
		n := l.counts[k] + 1
		l.counts[k] = n
		if n > l.opts.Burst {
			l.suppressed++
			l.mu.Unlock()
			return
		}
		l.written++
		l.mu.Unlock()
	} else {
		l.mu.Lock()
		l.countLocked(r.Reason)
		l.written++
		l.mu.Unlock()
	}
	l.write(now, "audit", r.attrs(now))
}

// Admin writes a, unsampled, as an "admin action" record. It counts in
// Stats' written but in no reason of Counts (an action is not a refusal).
func (l *Logger) Admin(a AdminAction) {
	if l == nil {
		return
	}
	now := l.opts.Now()
	l.mu.Lock()
	l.written++
	l.mu.Unlock()
	l.writeLevel(now, slog.LevelInfo, "admin action", a.attrs())
}

// Flush writes the summary records of a finished window. Call it
// periodically (imedge serve does, every Interval) and once before exit
// with force set, so the last window's counts are not lost.
func (l *Logger) Flush(force bool) {
	if l == nil || l.opts.Interval <= 0 {
		return
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if force {
		l.summariseLocked(now)
		l.windowStart = now
		return
	}
	l.rollLocked(now)
}

// Stats returns how many records were written and suppressed since New.
func (l *Logger) Stats() (written, suppressed uint64) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written, l.suppressed
}

func (l *Logger) rollLocked(now time.Time) {
	if l.windowStart.IsZero() {
		l.windowStart = now
		return
	}
	if now.Sub(l.windowStart) < l.opts.Interval {
		return
	}
	l.summariseLocked(now)
	l.windowStart = now
}

// summariseLocked writes one summary per key that had records suppressed
// and starts a new window. It is called with mu held; the handler has its
// own lock and never calls back into l.
func (l *Logger) summariseLocked(now time.Time) {
	for k, n := range l.counts {
		if n > l.opts.Burst {
			l.write(now, "audit summary", []slog.Attr{
				slog.String("reason", string(k.reason)),
				slog.String("key", k.key),
				slog.Int("suppressed", n-l.opts.Burst),
				slog.Time("window_start", l.windowStart),
				slog.String("window", l.opts.Interval.String()), // durations are Go strings in every log
			})
		}
	}
	clear(l.counts)
}

func (l *Logger) write(t time.Time, msg string, attrs []slog.Attr) {
	l.writeLevel(t, slog.LevelWarn, msg, attrs)
}

func (l *Logger) writeLevel(t time.Time, level slog.Level, msg string, attrs []slog.Attr) {
	rec := slog.NewRecord(t, level, msg, 0)
	rec.AddAttrs(attrs...)
	_ = l.h.Handle(context.Background(), rec)
}

func sampleKeyOf(r Record) string {
	if r.ClientIP != "" {
		return clip(r.ClientIP)
	}
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			host = host[:i]
			break
		}
	}
	return host
}
