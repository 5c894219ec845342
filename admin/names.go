package admin

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricNames lists the name of every metric of imedge's own that the
// admin listener can export (whatever is configured: the egress, decision
// path and delivery metrics are included), sorted; histograms are listed by their
// base name (imedge_request_duration_seconds, not its _bucket, _sum and
// _count series). The Go runtime and process collectors' names are left
// out. Tests use it to keep the alert rules in step with the code.
func MetricNames() []string {
	cs := []prometheus.Collector{&collector{d: newDescs()}, newEgressCollector(nil), newDecideCollector(nil, nil), NewDeliveryHistogram().hist}
	cs = append(cs, newInstruments(time.Now).collectors()...)
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		names = append(names, descName(d))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// descName is the fully-qualified name of d, which client_golang shows
// only in d's String ("Desc{fqName: \"imedge_ready\", ...").
func descName(d *prometheus.Desc) string {
	s := strings.TrimPrefix(d.String(), "Desc{fqName: ")
	if q, err := strconv.QuotedPrefix(s); err == nil {
		if name, err := strconv.Unquote(q); err == nil {
			return name
		}
	}
	return ""
}
