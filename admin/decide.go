package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/decide"
)

// Decide reports the decision path: per command, its answers and their
// latency; per decision service, its circuit. *decide.Service implements
// it.
type Decide interface {
	Stats() decide.Stats
}

// decideCollector exports the decision path's counters at scrape time
// (imedge_decide_*). It is registered when [Options.Decide] is set.
type decideCollector struct {
	src  Decide
	recv Receiver // nil: the observe-mode storage counters are left out
	d    decideDescs
}

type decideDescs struct {
	duration, decisions, fallbacks, observed, reused, observeMode          *prometheus.Desc
	circuit, opens, calls, failures, rejected                              *prometheus.Desc
	cacheEntries, cacheBytes, cacheEvictions, observeStored, observeFailed *prometheus.Desc
}

// decideStates are the circuit states, one imedge_decide_circuit_state
// series each.
func decideStates() [3]string {
	return [...]string{decide.Closed.String(), decide.Open.String(), decide.HalfOpen.String()}
}

// decideReasons are the fallback reasons of the decision path itself,
// exported from the start (at 0) for every command with a decision service.
func decideReasons() [3]audit.Reason {
	return [...]audit.Reason{audit.DecideTimeout, audit.DecideError, audit.DecideBadReply}
}

func newDecideCollector(src Decide, recv Receiver) *decideCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("imedge_decide_"+name, help, labels, nil)
	}
	return &decideCollector{src: src, recv: recv, d: decideDescs{
		duration:    d("duration_seconds", "Time to answer a before-callback (decision, remembered decision, fallback or observe mode), by command.", "command"),
		decisions:   d("decisions_total", "Decision service answers relayed to IM, by command and outcome (allow, deny, rewrite, drop, partial); remembered and shared ones included.", "command", "outcome"),
		fallbacks:   d("fallbacks_total", "Before-callbacks answered with their fallback, by command and audit reason (decide_timeout, decide_error, decide_bad_reply, or the receiver's refusal reason).", "command", "reason"),
		observed:    d("observed_total", "Before-callbacks answered with their fallback in observe mode (no decision service), by command.", "command"),
		reused:      d("reused_total", "Decisions relayed without a call of their own, by command and source: cache (an identical callback within --sign-window) or joined (an identical callback's call in flight).", "command", "source"),
		observeMode: d("observe_mode", "1 for each before-callback in observe mode: no --decide target, answered with its fallback.", "command", "fallback"),

		circuit:  d("circuit_state", "1 for the decision service's current circuit state (closed, open, half_open), 0 for the others.", "target", "state"),
		opens:    d("circuit_opens_total", "Times the decision service's circuit opened after consecutive failures.", "target"),
		calls:    d("calls_total", "Calls made to the decision service.", "target"),
		failures: d("call_failures_total", "Calls to the decision service that ended without a 2xx answer (time-out, connection error, other status).", "target"),
		rejected: d("circuit_rejected_total", "Before-callbacks answered with their fallback without a call because the circuit was open.", "target"),

		cacheEntries:   d("cache_entries", "Decisions remembered for identical callbacks."),
		cacheBytes:     d("cache_bytes", "Approximate size of the remembered decisions."),
		cacheEvictions: d("cache_evictions_total", "Remembered decisions pushed out by the cache's bounds before they expired."),
		observeStored:  d("observe_stored_total", "Observe-mode callbacks handed to the outbox after their answer."),
		observeFailed:  d("observe_store_failures_total", "Observe-mode callbacks the outbox refused (their answer stood)."),
	}}
}

// Describe implements prometheus.Collector.
func (c *decideCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, desc := range []*prometheus.Desc{
		d.duration, d.decisions, d.fallbacks, d.observed, d.reused, d.observeMode,
		d.circuit, d.opens, d.calls, d.failures, d.rejected,
		d.cacheEntries, d.cacheBytes, d.cacheEvictions, d.observeStored, d.observeFailed,
	} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *decideCollector) Collect(ch chan<- prometheus.Metric) {
	d := &c.d
	st := c.src.Stats()
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	bounds := decide.LatencyBounds()
	for _, cs := range st.Commands {
		buckets := make(map[float64]uint64, len(bounds))
		var cum uint64
		for i, b := range bounds {
			cum += cs.Latency.Counts[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(d.duration, cs.Latency.Count, cs.Latency.Sum, buckets, cs.Command)
		for outcome, n := range cs.Decisions {
			counter(d.decisions, n, cs.Command, outcome)
		}
		if cs.Target != "" {
			for _, r := range decideReasons() {
				counter(d.fallbacks, cs.Fallbacks[r], cs.Command, string(r))
			}
		}
		for r, n := range cs.Fallbacks {
			if cs.Target == "" || !isDecideReason(r) {
				counter(d.fallbacks, n, cs.Command, string(r))
			}
		}
		counter(d.observed, cs.Observed, cs.Command)
		counter(d.reused, cs.Cached, cs.Command, "cache")
		counter(d.reused, cs.Joined, cs.Command, "joined")
		if cs.Target == "" {
			gauge(d.observeMode, 1, cs.Command, cs.Fallback)
		}
	}
	for _, ts := range st.Targets {
		for _, s := range decideStates() {
			v := 0.0
			if s == ts.State {
				v = 1
			}
			gauge(d.circuit, v, ts.Pattern, s)
		}
		counter(d.opens, ts.Opens, ts.Pattern)
		counter(d.calls, ts.Calls, ts.Pattern)
		counter(d.failures, ts.Failures, ts.Pattern)
		counter(d.rejected, ts.Rejected, ts.Pattern)
	}
	gauge(d.cacheEntries, float64(st.Cache.Entries))
	gauge(d.cacheBytes, float64(st.Cache.Bytes))
	counter(d.cacheEvictions, st.Cache.Evictions)
	if c.recv != nil {
		r := c.recv.Stats()
		counter(d.observeStored, r.Observed)
		counter(d.observeFailed, r.ObserveFailed)
	}
}

func isDecideReason(r audit.Reason) bool {
	for _, k := range decideReasons() {
		if k == r {
			return true
		}
	}
	return false
}

// decideStatus is the /status document's "decide" member.
type decideStatus struct {
	Targets []decideTarget `json:"targets"`
	Observe []string       `json:"observe"` // commands in observe mode
	Cache   decideCache    `json:"cache"`
}

type decideCache struct {
	Entries   int    `json:"entries"`
	Bytes     int64  `json:"bytes"`
	Hits      uint64 `json:"hits"`
	Joined    uint64 `json:"joined"`
	Evictions uint64 `json:"evictions"`
}

type decideTarget struct {
	Pattern             string     `json:"pattern"`
	URL                 string     `json:"url"`
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	OpenedAt            *time.Time `json:"opened_at"` // null if it never opened
	Opens               uint64     `json:"opens"`
	Calls               uint64     `json:"calls"`
	Failures            uint64     `json:"failures"`
	Rejected            uint64     `json:"rejected"`
}

// decideStatus returns the decide member of /status; nil without Decide.
func (s *Server) decideStatus() *decideStatus {
	if s.o.Decide == nil {
		return nil
	}
	st := s.o.Decide.Stats()
	c := st.Cache
	out := &decideStatus{Targets: []decideTarget{}, Observe: []string{},
		Cache: decideCache{Entries: c.Entries, Bytes: c.Bytes, Hits: c.Hits, Joined: c.Joined, Evictions: c.Evictions}}
	for _, t := range st.Targets {
		dt := decideTarget{Pattern: t.Pattern, URL: t.URL, State: t.State, ConsecutiveFailures: t.ConsecutiveFailures,
			Opens: t.Opens, Calls: t.Calls, Failures: t.Failures, Rejected: t.Rejected}
		if !t.OpenedAt.IsZero() {
			at := t.OpenedAt.UTC()
			dt.OpenedAt = &at
		}
		out.Targets = append(out.Targets, dt)
	}
	for _, c := range st.Commands {
		if c.Target == "" {
			out.Observe = append(out.Observe, c.Command)
		}
	}
	return out
}
