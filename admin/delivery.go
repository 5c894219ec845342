package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imedge/imedge/forward"
)

// DeliveryHistogram records how long delivery attempts to the internal
// URLs take, by destination and result: single and batched attempts alike
// (it is the dispatchers' OnAttempt hook). Create it with
// [NewDeliveryHistogram], pass its Observe method as each
// [forward.DispatcherOptions.OnAttempt], and pass it as [Options.Delivery]
// to expose it. Safe for concurrent use.
type DeliveryHistogram struct {
	hist *prometheus.HistogramVec
}

// NewDeliveryHistogram returns an empty DeliveryHistogram.
func NewDeliveryHistogram() *DeliveryHistogram {
	return &DeliveryHistogram{hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "imedge_delivery_duration_seconds",
		Help:    "Duration of delivery attempts (one event or a batch) to the internal URLs, by destination and result: success (2xx), failure, or abandoned (cut short by a shutdown).",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"destination", "result"})}
}

// Observe records one attempt.
func (h *DeliveryHistogram) Observe(a forward.AttemptReport) {
	result := "success"
	switch {
	case a.Abandoned:
		result = "abandoned"
	case a.Err != nil:
		result = "failure"
	}
	h.hist.WithLabelValues(a.Destination, result).Observe(a.Duration.Seconds())
}
