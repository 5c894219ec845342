package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imedge/imedge/egress"
)

// Egress reports IM's callback egress list used as the source allow-list
// (--im-egress). *egress.Source implements it.
type Egress interface {
	Status() egress.Status
}

// egressCollector exports the egress list's state at scrape time.
type egressCollector struct {
	src                                             Egress
	entries, age, stale, ready, skipped, staleAfter *prometheus.Desc
	refreshes, changes                              *prometheus.Desc
}

func newEgressCollector(src Egress) *egressCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("imedge_im_egress_"+name, help, labels, nil)
	}
	return &egressCollector{
		src:        src,
		entries:    d("entries", "Networks in IM's callback egress list as enforced (0: no list yet, only --allow-source peers are admitted)."),
		age:        d("age_seconds", "Seconds since the list was last fetched successfully; 0 before the first fetch."),
		stale:      d("stale", "1 when the list is older than its stale threshold (several refresh intervals without a successful fetch); it is still enforced."),
		ready:      d("ready", "1 once a list is held."),
		skipped:    d("skipped_entries", "Entries of the last answer skipped as malformed or too broad."),
		staleAfter: d("stale_after_seconds", "Age past which the list is reported stale."),
		refreshes:  d("refreshes_total", "GetIPList refreshes, by result: ok, empty (answers held no usable entry; list kept) or error (list kept).", "result"),
		changes:    d("changes_total", "Times the enforced list changed, the first load included."),
	}
}

func (c *egressCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.age, c.stale, c.ready, c.skipped, c.staleAfter, c.refreshes, c.changes} {
		ch <- d
	}
}

func (c *egressCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(c.entries, float64(st.Entries))
	gauge(c.age, st.AgeSeconds)
	gauge(c.stale, b2f(st.Stale))
	gauge(c.ready, b2f(st.Ready))
	gauge(c.skipped, float64(st.Skipped))
	gauge(c.staleAfter, st.StaleAfterSeconds)
	ok := st.Refreshes - min(st.Refreshes, st.Failures+st.EmptyAnswers)
	for result, n := range map[string]uint64{"ok": ok, "empty": st.EmptyAnswers, "error": st.Failures} {
		ch <- prometheus.MustNewConstMetric(c.refreshes, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(st.Changes))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// checkEgress: a list is held. A stale list does not fail readiness: it is
// still enforced, and failing every instance's readiness during an outage
// of IM's REST API would take the whole fleet out of its balancer.
func (s *Server) checkEgress() check {
	c := check{Name: "im_egress"}
	st := s.o.Egress.Status()
	if !st.Ready {
		c.Error = "no IM egress list yet (only --allow-source peers are admitted)"
		if st.LastError != "" {
			c.Error += ": " + st.LastError
		}
		return c
	}
	c.OK = true
	return c
}
