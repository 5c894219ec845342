package forward

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures durable appends (each returns after fsync) with
// 1, 16 and 64 concurrent writers sharing journal writes and syncs. It reports
// events/s; ns/op is wall time per event across all writers.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ob := openTestOutbox(b, OutboxOptions{MaxEvents: 1 << 30, MaxBytes: 1 << 40})
			events := make([]Event, writers)
			for w := range events {
				events[w] = testEvent(fmt.Sprint("bench", w), w)
			}
			b.ReportAllocs()
			b.ResetTimer()
			appendN(b, ob, events)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// appendN appends b.N events to ob from one goroutine per event of events,
// each appending its own event, and returns when all are in.
func appendN(b *testing.B, ob *Outbox, events []Event) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, ev := range events {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := ob.Append(b.Context(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
