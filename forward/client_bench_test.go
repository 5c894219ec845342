package forward

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkClient_Deliver measures one delivery per event to a real HTTP
// server on loopback, and batched deliveries of 16 and 64 events; ns/op and
// allocs/op are per event. The server's CPU is included: it runs in the
// same process.
func BenchmarkClient_Deliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	for _, batch := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := newTestClient(b, ClientOptions{URL: srv.URL + "/events", SigningSecret: []byte("bench-secret")})
			evs := make([]Event, batch)
			attempts := make([]int, batch)
			for i := range evs {
				evs[i], attempts[i] = testEvent("bench", i), 1
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				var err error
				if batch == 1 {
					err = c.Deliver(b.Context(), evs[0], 1)
				} else {
					err = c.DeliverBatch(b.Context(), evs, attempts)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
