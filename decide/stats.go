package decide

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
)

// latencyBounds are the upper bounds, in seconds, of the decision latency
// histogram's buckets: fine below 10 ms, where a healthy decision service on
// the same network answers, and around the budget (1.5 s by default, 1.9 s
// at most), where a failing one ends.
var latencyBounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 1.9, 2.5}

// LatencyBounds returns the upper bounds, in seconds, of the decision
// latency histogram's buckets (a fresh copy).
func LatencyBounds() []float64 { return append([]float64(nil), latencyBounds[:]...) }

// Histogram is a snapshot of a latency histogram.
type Histogram struct {
	// Counts holds the observations per bucket, not cumulative: Counts[i]
	// those at most LatencyBounds()[i] and above the bound before; the last
	// element those above every bound.
	Counts []uint64
	// Count is the number of observations, Sum their total in seconds.
	Count uint64
	Sum   float64
}

// histogram counts latencies into latencyBounds without locking.
type histogram struct {
	counts [len(latencyBounds) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	out.Sum = time.Duration(h.sum.Load()).Seconds()
	return out
}

// Outcomes a decision service's answer can have, as counted per command:
// the labels of catalog.Outcome.
var outcomes = [...]catalog.Outcome{catalog.Allow, catalog.Deny, catalog.Rewrite, catalog.Drop, catalog.Partial}

// commandCounters are one command's counters.
type commandCounters struct {
	decided [len(outcomes) + 1]atomic.Uint64 // by catalog.Outcome (index = value)
	cached  atomic.Uint64
	joined  atomic.Uint64
	observe atomic.Uint64
	latency histogram

	mu        sync.Mutex
	fallbacks map[audit.Reason]uint64 // by reason; the set is closed (audit.Reasons)
}

func (c *commandCounters) fallback(r audit.Reason) {
	c.mu.Lock()
	if c.fallbacks == nil {
		c.fallbacks = make(map[audit.Reason]uint64)
	}
	c.fallbacks[r]++
	c.mu.Unlock()
}

// CommandStats are one Before or Reply command's counters.
type CommandStats struct {
	// Command is the CallbackCommand.
	Command string
	// Target is the Pattern of the decision service answering it; empty in
	// observe mode.
	Target string
	// Fallback is its fallback: "allow", "deny" or "deny:CODE".
	Fallback string
	// Decisions counts the decision service's answers relayed, by outcome
	// label (allow, deny, rewrite, drop, partial), remembered and shared
	// ones included.
	Decisions map[string]uint64
	// Cached and Joined count the decisions of Decisions that came from
	// the cache or from an identical callback's call in flight.
	Cached, Joined uint64
	// Fallbacks counts the callbacks answered with the fallback, by audit
	// reason: decide_timeout, decide_error and decide_bad_reply from the
	// decision path, and the receiver's refusals (rate_limited, bad_field,
	// …) of callbacks it would not pass on.
	Fallbacks map[audit.Reason]uint64
	// Observed counts the callbacks answered in observe mode.
	Observed uint64
	// Latency is the time to each answer of Decide, fallbacks and observe
	// mode included.
	Latency Histogram
}

// TargetStats describe one decision service.
type TargetStats struct {
	// Pattern is the commands it answers.
	Pattern string
	// URL is its URL without credentials or query.
	URL string
	// State is its circuit: "closed", "open" or "half_open".
	State string
	// ConsecutiveFailures counts the failed calls since the last success
	// while closed.
	ConsecutiveFailures int
	// OpenedAt is when the circuit last opened; zero if never.
	OpenedAt time.Time
	// Opens counts the times the circuit opened from closed.
	Opens uint64
	// Calls counts the calls made; Failures those that ended without a
	// 2xx answer (time-out, connection error, other status); Rejected the
	// callbacks answered with the fallback because the circuit was open.
	Calls, Failures, Rejected uint64
}

// Stats is a snapshot of a [Service]'s counters.
type Stats struct {
	// Commands holds every Before and Reply command, in catalog order.
	Commands []CommandStats
	// Targets holds every decision service, in configuration order.
	Targets []TargetStats
	// Cache describes the decision cache.
	Cache CacheStats
}
