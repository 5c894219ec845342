package main

import (
	"context"

	"github.com/imedge/imedge/forward"
)

// batchingDeliverer passes single deliveries to the wrapped Deliverer (the
// admin's timer around the client) and batches straight to the client.
type batchingDeliverer struct {
	forward.Deliverer
	batch forward.BatchDeliverer
}

func (b batchingDeliverer) DeliverBatch(ctx context.Context, evs []forward.Event, attempts []int) error {
	return b.batch.DeliverBatch(ctx, evs, attempts)
}

// withBatching returns d, able to batch through c when --forward-batch is
// above 1.
func withBatching(d forward.Deliverer, c *forward.Client, batch int) forward.Deliverer {
	if batch <= 1 {
		return d
	}
	return batchingDeliverer{Deliverer: d, batch: c}
}
