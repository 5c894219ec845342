package forward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/forward/internal/store"
	"github.com/imedge/imedge/internal/testkit"
)

// openTestOutbox opens an outbox in a fresh temporary directory (unless
// o.Dir is set) and closes it when the test ends.
func openTestOutbox(t testing.TB, o OutboxOptions) *Outbox {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 200 * time.Millisecond
	}
	ob, err := OpenOutbox(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ob.Close() })
	return ob
}

// testEvent returns a distinct, realistic Sns.CallbackFriendDelete event.
func testEvent(tag string, i int) Event {
	body := fmt.Appendf(nil, `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"%s","To_Account":"friend_%d"},{"To_Account":"%s","From_Account":"friend_%d"}],"Extra":"ünïcødé"}`, tag, i, tag, i)
	return Event{
		ID:          eventID("1400000000", "Sns.CallbackFriendDelete", body),
		AppID:       "1400000000",
		Command:     "Sns.CallbackFriendDelete",
		ClientIP:    "203.0.113.7",
		OptPlatform: "iOS",
		Identity:    "spiffe://tencent/im",
		CertSHA256:  "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12",
		RequestID:   fmt.Sprintf("req-%s-%d", tag, i),
		ReceivedAt:  time.Date(2025, 3, 10, 8, 9, 10, 123456789, time.FixedZone("CST", 8*3600)),
		Body:        body,
	}
}

func eventID(appID, command string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(appID))
	h.Write([]byte{0})
	h.Write([]byte(command))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// delivery is one request the internal test server received.
type delivery struct {
	ID      string
	Body    []byte
	Header  http.Header
	Proto   int
	At      time.Time
	Status  int
	Attempt string
}

// internal is a real HTTP server standing in for the internal URL. respond
// chooses the status for the n-th request (from 0) and may set headers.
type internal struct {
	mu      sync.Mutex
	got     []delivery
	respond func(n int, w http.ResponseWriter, r *http.Request) int
}

func (s *internal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, delivery{ID: r.Header.Get(HeaderEventID), Body: body, Header: r.Header.Clone(), Proto: r.ProtoMajor, At: time.Now(), Attempt: r.Header.Get(HeaderAttempt)})
	respond := s.respond
	s.mu.Unlock()
	status := http.StatusOK
	if respond != nil {
		status = respond(n, w, r)
	}
	s.mu.Lock()
	s.got[n].Status = status
	s.mu.Unlock()
	w.WriteHeader(status)
}

func (s *internal) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.got...)
}

// okByID counts 2xx-answered deliveries per event id.
func (s *internal) okByID() map[string]int {
	out := map[string]int{}
	for _, d := range s.deliveries() {
		if d.Status >= 200 && d.Status < 300 {
			out[d.ID]++
		}
	}
	return out
}

func startInternal(t testing.TB, s *internal) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c, err := NewClient(o)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// runDispatcher runs d until the test ends (or stop is called) and checks
// that Run returns cleanly.
func runDispatcher(t testing.TB, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				require.NoError(t, err)
			case <-time.After(15 * time.Second):
				t.Error("dispatcher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fastDispatcher returns dispatcher options with millisecond backoffs.
func fastDispatcher(ob *Outbox, del Deliverer) DispatcherOptions {
	return DispatcherOptions{Outbox: ob, Deliverer: del, BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
}

func newTestDispatcher(t testing.TB, o DispatcherOptions) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(o)
	require.NoError(t, err)
	return d
}

const waitFor, tick = 15 * time.Second, 5 * time.Millisecond

// syncBuffer collects log output from several goroutines.
type syncBuffer struct{ testkit.SyncBuffer }

func (s *syncBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// appendConcurrently appends 8 x 25 test events tagged tag from 8
// goroutines and returns the ids of those appended.
func appendConcurrently(t *testing.T, ob *Outbox, tag string) []string {
	t.Helper()
	var ids []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				ev := testEvent(fmt.Sprint(tag, w), i)
				if assert.NoError(t, ob.Append(t.Context(), ev)) {
					mu.Lock()
					ids = append(ids, ev.ID)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return ids
}

// listAll returns every stored entry of ob in state, in sequence order.
func listAll(t testing.TB, ob *Outbox, state State) []Entry {
	t.Helper()
	return listN(t, ob, state, -1)
}

// listN returns the first page of at most limit entries of ob in state.
func listN(t testing.TB, ob *Outbox, state State, limit int) []Entry {
	t.Helper()
	p, err := ob.List(context.Background(), Query{State: state, Limit: limit})
	require.NoError(t, err)
	return p.Entries
}

// encodeRecord returns ev's record as Append stores it, accepted at at.
func encodeRecord(ev Event, at time.Time) []byte {
	if ev.Destination == "" {
		ev.Destination = DefaultDestination
	}
	r := ev.record(at)
	return store.EncodeRecord(&r)
}
