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
			var next atomic.Int64
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := ob.Append(b.Context(), events[w]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
