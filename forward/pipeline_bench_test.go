//go:build unix

package forward

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipeline appends events from 16 writers while a Dispatcher
// delivers them (one per request, or batches of 16) to a real HTTP server
// on loopback, and waits until every one is delivered: the whole outbox
// path, journal, applier and store included, with delivered events
// retained for replay or not. It reports events/s and the process's CPU
// per event (cpu-us/event; the server's share included).
func BenchmarkPipeline(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	for _, batch := range []int{1, 16} {
		for _, retain := range []time.Duration{-1, DefaultRetainDelivered} {
			name := fmt.Sprintf("batch=%d/retain=%v", batch, retain > 0)
			b.Run(name, func(b *testing.B) {
				ob := openTestOutbox(b, OutboxOptions{MaxEvents: 20_000, MaxBytes: 1 << 30, RetainDelivered: retain})
				c := newTestClient(b, ClientOptions{URL: srv.URL, MaxConns: 4})
				d := newTestDispatcher(b, DispatcherOptions{Outbox: ob, Deliverer: c, BatchSize: batch, BatchWait: time.Millisecond})
				runDispatcher(b, d)
				const writers = 16
				events := make([]Event, writers)
				for w := range events {
					events[w] = testEvent(fmt.Sprint("pipe", w), w)
				}
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				b.ResetTimer()
				appendN(b, ob, events)
				for d.Stats().Successes < uint64(b.N) {
					time.Sleep(time.Millisecond) // polls: the timed span ends at the last delivery
				}
				b.StopTimer()
				cpu := cpuTime(b) - cpu0
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/event")
			})
		}
	}
}
