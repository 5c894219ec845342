package admin

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imedge/imedge/forward"
)

// DeliveryTimer wraps a [forward.Deliverer] and records how long each
// delivery attempt to the internal URL takes, by result. Create it with
// [NewDeliveryTimer] and hand it to the dispatcher in place of the wrapped
// deliverer; pass it as [Options.Delivery] to expose the histogram. Safe for
// concurrent use.
type DeliveryTimer struct {
	next forward.Deliverer
	hist *prometheus.HistogramVec
	now  func() time.Time
}

// NewDeliveryTimer returns a DeliveryTimer around next.
func NewDeliveryTimer(next forward.Deliverer) *DeliveryTimer {
	return &DeliveryTimer{
		next: next,
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imedge_delivery_duration_seconds",
			Help:    "Duration of delivery attempts to the internal URL, by result: success (2xx), failure, or abandoned (cut short by a shutdown).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		now: time.Now,
	}
}

// Deliver implements forward.Deliverer: it calls the wrapped deliverer and
// observes the attempt's duration.
func (t *DeliveryTimer) Deliver(ctx context.Context, ev forward.Event, attempt int) error {
	start := t.now()
	err := t.next.Deliver(ctx, ev, attempt)
	result := "success"
	switch {
	case err != nil && ctx.Err() != nil:
		result = "abandoned"
	case err != nil:
		result = "failure"
	}
	t.hist.WithLabelValues(result).Observe(t.now().Sub(start).Seconds())
	return err
}
