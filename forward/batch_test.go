package forward

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batchElem is one element of a batched delivery, as the internal service
// would decode it.
type batchElem struct {
	ID               string          `json:"id"`
	SdkAppid         string          `json:"sdkappid"`
	Command          string          `json:"command"`
	ClientIP         string          `json:"client_ip"`
	OptPlatform      string          `json:"opt_platform"`
	ClientIdentity   string          `json:"client_identity"`
	ClientCertSHA256 string          `json:"client_cert_sha256"`
	RequestID        string          `json:"request_id"`
	ReceivedAt       string          `json:"received_at"`
	Attempt          int             `json:"attempt"`
	Body             json.RawMessage `json:"body"`
	BodyBase64       []byte          `json:"body_base64"`
}

func decodeBatch(t *testing.T, d delivery) []batchElem {
	t.Helper()
	var elems []batchElem
	require.NoError(t, json.Unmarshal(d.Body, &elems), "a batch is a JSON array: %s", d.Body)
	assert.Equal(t, strconv.Itoa(len(elems)), d.Header.Get(HeaderBatchSize))
	assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
	return elems
}

func TestDispatcher_BatchDeliversEveryEventOnceInArrays(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize, o.Concurrency = 16, 2
	d := newTestDispatcher(t, o)

	// Appended before the dispatcher runs, so that batches fill up.
	want := map[string]Event{}
	for i := range 200 {
		ev := testEvent("batch", i)
		want[ev.ID] = ev
		require.NoError(t, ob.Append(t.Context(), ev))
	}
	runDispatcher(t, d)
	requireDrained(t, ob)

	got := map[string]int{}
	full := 0
	for _, dl := range recv.deliveries() {
		elems := decodeBatch(t, dl)
		require.NotEmpty(t, elems)
		assert.LessOrEqual(t, len(elems), 16, "BatchSize bounds a batch")
		if len(elems) == 16 {
			full++
		}
		for _, e := range elems {
			got[e.ID]++
			ev, ok := want[e.ID]
			require.True(t, ok, "unknown event %s", e.ID)
			assert.Equal(t, string(ev.Body), string(e.Body), "the body is embedded byte for byte")
			assert.Equal(t, ev.AppID, e.SdkAppid)
			assert.Equal(t, ev.Command, e.Command)
			assert.Equal(t, ev.ClientIP, e.ClientIP)
			assert.Equal(t, ev.OptPlatform, e.OptPlatform)
			assert.Equal(t, ev.Identity, e.ClientIdentity)
			assert.Equal(t, ev.CertSHA256, e.ClientCertSHA256)
			assert.Equal(t, ev.RequestID, e.RequestID)
			assert.Equal(t, ev.ReceivedAt.UTC().Format(time.RFC3339Nano), e.ReceivedAt)
			assert.Equal(t, 1, e.Attempt)
		}
	}
	left := listAll(t, ob, StatePending)
	assert.Zero(t, len(left), "delivered events are deleted from the store")
	assert.Len(t, got, 200, "every event delivered")
	for id, n := range got {
		assert.Equal(t, 1, n, "event %s delivered once", id)
	}
	assert.Positive(t, full, "a backlog goes out in full batches")
	s := d.Stats()
	assert.Equal(t, uint64(200), s.Successes, "stats count events, not requests")
	assert.Equal(t, uint64(200), s.Attempts)
}

func TestDispatcher_BatchFailureRetriesEveryEventOfIt(t *testing.T) {
	// Every event fails its first two attempts, whichever batches it
	// travels in (retries are scheduled per event, with jitter, so a retry
	// batch may hold only some of them).
	recv := &internal{}
	recv.respond = func(n int, _ http.ResponseWriter, _ *http.Request) int {
		var elems []batchElem
		if json.Unmarshal(recv.deliveries()[n].Body, &elems) != nil {
			return http.StatusBadRequest
		}
		for _, e := range elems {
			if e.Attempt < 3 {
				return http.StatusInternalServerError
			}
		}
		return http.StatusOK
	}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize, o.Concurrency = 50, 1
	d := newTestDispatcher(t, o)
	for i := range 10 {
		require.NoError(t, ob.Append(t.Context(), testEvent("retry", i)))
	}
	runDispatcher(t, d)
	requireDrained(t, ob)

	// Each failed request counts as an attempt of every event in it: an
	// event succeeds at attempt 1 + the failed requests that carried it.
	delivered := map[string]int{} // id -> attempt that succeeded
	failedIn := map[string]int{}  // id -> failed requests that carried it
	failures := 0
	for _, dl := range recv.deliveries() {
		for _, e := range decodeBatch(t, dl) {
			if dl.Status == http.StatusOK {
				delivered[e.ID] = e.Attempt
			} else {
				failedIn[e.ID]++
				failures++
			}
		}
	}
	require.Len(t, delivered, 10)
	for id, attempt := range delivered {
		assert.GreaterOrEqual(t, attempt, 3, "event %s: failed twice first", id)
		assert.Equal(t, 1+failedIn[id], attempt, "event %s: every failed attempt was recorded", id)
	}
	s := d.Stats()
	assert.Equal(t, uint64(failures), s.Failures)
	assert.Equal(t, uint64(10), s.Successes)
	assert.Contains(t, s.LastError, "500")
}

func TestDispatcher_BatchPermanentFailureDeadLettersAll(t *testing.T) {
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusBadRequest }}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize, o.PermanentStatus = 8, []int{400, 422}
	d := newTestDispatcher(t, o)
	for i := range 5 {
		require.NoError(t, ob.Append(t.Context(), testEvent("dead", i)))
	}
	runDispatcher(t, d)
	requireDrained(t, ob)

	dead := listAll(t, ob, StateDead)
	require.Len(t, dead, 5)
	for _, e := range dead {
		assert.Equal(t, 1, e.Attempts)
		assert.Contains(t, e.LastError, "HTTP 400 Bad Request; permanent failure (status 400)")
	}
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 5, st.Dead)
	assert.Zero(t, st.Pending)
	assert.Positive(t, st.DeadBytes)
	assert.Zero(t, st.PendingBytes)
	// The counter follows the store's move, so it may lag the outbox.
	assert.Eventually(t, func() bool { return d.Stats().DeadLettered == 5 }, 5*time.Second, time.Millisecond)
}

func TestDispatcher_BatchStopKeepsClaimedEventsPending(t *testing.T) {
	release := make(chan struct{})
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { <-release; return http.StatusOK }}
	srv := startInternal(t, recv)
	t.Cleanup(func() { close(release) })
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize, o.DrainTimeout = 8, -1
	d := newTestDispatcher(t, o)
	for i := range 3 {
		require.NoError(t, ob.Append(t.Context(), testEvent("stop", i)))
	}
	_, err := ob.Stats() // waits until the three are deliverable, so one batch takes them
	require.NoError(t, err)
	stop := runDispatcher(t, d)
	require.Eventually(t, func() bool { return len(recv.deliveries()) == 1 }, waitFor, tick)
	stop()

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Pending, "abandoned events stay pending")
	assert.Zero(t, ob.def.inFlight())
	assert.Equal(t, uint64(3), d.Stats().Abandoned)
	entries := listAll(t, ob, StatePending)
	for _, e := range entries {
		assert.Zero(t, e.Attempts, "an abandoned attempt is not recorded")
	}
}

// plainDeliverer implements Deliverer only.
type plainDeliverer struct{}

func (plainDeliverer) Deliver(context.Context, Event, int) error { return nil }

func TestNewDispatcher_BatchOptions(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	_, err := NewDispatcher(DispatcherOptions{Outbox: ob, Deliverer: plainDeliverer{}, BatchSize: 8})
	assert.ErrorIs(t, err, ErrInvalidOptions, "batching needs a BatchDeliverer")
	c := newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"})
	_, err = NewDispatcher(DispatcherOptions{Outbox: ob, Deliverer: c, BatchSize: MaxBatch + 1})
	assert.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewDispatcher(DispatcherOptions{Outbox: ob, Deliverer: plainDeliverer{}, BatchSize: 1})
	assert.NoError(t, err, "a batch of one is no batching")
}

func TestClient_DeliverBatch_SignedEscapedArray(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	recv := &internal{}
	srv := startInternal(t, recv)
	now := time.Unix(1_700_000_000, 0)
	c := newTestClient(t, ClientOptions{URL: srv.URL + "/batch?k=v", SigningSecret: secret, Now: func() time.Time { return now }})

	odd := testEvent("odd", 1)
	odd.Identity = "uri:\"quoted\"\\back\x01\xff"
	odd.OptPlatform = ""
	odd.ReceivedAt = time.Time{}
	notJSON := testEvent("raw", 2)
	notJSON.Body = []byte("not json \x00")
	evs := []Event{testEvent("plain", 0), odd, notJSON}
	require.NoError(t, c.DeliverBatch(t.Context(), evs, []int{1, 2, 7}))

	got := recv.deliveries()
	require.Len(t, got, 1)
	verifySignature(t, secret, got[0].Header, got[0].Body)
	assert.Equal(t, BatchID(evs), got[0].Header.Get("webhook-id"))
	assert.True(t, strings.HasPrefix(BatchID(evs), "batch_"))
	assert.Equal(t, "1700000000", got[0].Header.Get("webhook-timestamp"))
	assert.Empty(t, got[0].Header.Get(HeaderEventID), "per-event headers are in the array")

	elems := decodeBatch(t, got[0])
	require.Len(t, elems, 3)
	assert.Equal(t, []int{1, 2, 7}, []int{elems[0].Attempt, elems[1].Attempt, elems[2].Attempt})
	assert.Equal(t, "uri:\"quoted\"\\back\x01\uFFFD", elems[1].ClientIdentity, "strings are escaped; invalid UTF-8 replaced")
	assert.Empty(t, elems[1].OptPlatform)
	assert.NotContains(t, string(got[0].Body), `"opt_platform":""`, "empty fields are left out")
	assert.Empty(t, elems[1].ReceivedAt)
	assert.Nil(t, elems[2].Body)
	assert.Equal(t, notJSON.Body, elems[2].BodyBase64, "a body that is not JSON travels base64-encoded")
	assert.Equal(t, base64.StdEncoding.EncodeToString(notJSON.Body), func() string {
		var raw []map[string]any
		require.NoError(t, json.Unmarshal(got[0].Body, &raw))
		return raw[2]["body_base64"].(string)
	}())
}

func TestClient_DeliverBatch_ClassifiesAnswers(t *testing.T) {
	recv := &internal{respond: func(_ int, w http.ResponseWriter, _ *http.Request) int {
		w.Header().Set("Retry-After", "7")
		return http.StatusServiceUnavailable
	}}
	srv := startInternal(t, recv)
	c := newTestClient(t, ClientOptions{URL: srv.URL})
	err := c.DeliverBatch(t.Context(), []Event{testEvent("x", 1)}, []int{1})
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, http.StatusServiceUnavailable, de.StatusCode)
	assert.Equal(t, 7*time.Second, de.RetryAfter)
	assert.False(t, de.Permanent)

	err = c.DeliverBatch(t.Context(), []Event{testEvent("x", 1)}, nil)
	assert.ErrorIs(t, err, ErrInvalidOptions, "one attempt number per event")
	assert.Len(t, recv.deliveries(), 1, "nothing sent for a malformed batch")
}

func TestAppendJSONString_RoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "\x00\x1f\t\n", "张三", "\xff\xfe", "a\u2028b", "</script>"} {
		b := appendJSONString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(b, &back), "%q -> %s", s, b)
		want := strings.ToValidUTF8(s, "\uFFFD")
		if s == "\xff\xfe" {
			want = "\uFFFD\uFFFD"
		}
		assert.Equal(t, want, back)
	}
}

func TestClient_DeliverBatch_EarlyAnswerNeverSharesABufferInUse(t *testing.T) {
	// The internal service answers before reading the (large) body, so the
	// transport may still be writing it when DeliverBatch returns; the next
	// batch must not be built in that buffer. Run with -race.
	srv := startInternal(t, &internal{})
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := newTestClient(t, ClientOptions{URL: srv.URL})
	big := strings.Repeat("x", 100<<10)
	for round := range 20 {
		evs := make([]Event, 8)
		attempts := make([]int, 8)
		for i := range evs {
			evs[i] = testEvent("early", round*8+i)
			evs[i].Body = []byte(`{"pad":"` + big + `"}`)
			attempts[i] = 1
		}
		err := c.DeliverBatch(t.Context(), evs, attempts)
		var de *DeliveryError
		if assert.ErrorAs(t, err, &de) && de.StatusCode != 0 {
			assert.Equal(t, http.StatusServiceUnavailable, de.StatusCode)
		}
	}
}

// TestDispatcher_BatchWaitFillsBatches appends events one at a time, a
// millisecond apart, while the dispatcher runs with a 200 ms BatchWait:
// batches leave full instead of with whatever was due (one or two events
// each without it, as every event is deliverable as soon as it is stored).
func TestDispatcher_BatchWaitFillsBatches(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize, o.Concurrency, o.BatchWait = 8, 1, 200*time.Millisecond
	d := newTestDispatcher(t, o)
	runDispatcher(t, d)
	for i := range 16 {
		require.NoError(t, ob.Append(t.Context(), testEvent("wait", i)))
		time.Sleep(time.Millisecond) // events trickle in: the pace is what is tested

	}
	requireDrained(t, ob)
	var sizes []int
	for _, dl := range recv.deliveries() {
		sizes = append(sizes, len(decodeBatch(t, dl)))
	}
	assert.Equal(t, []int{8, 8}, sizes)
}

func TestDispatcher_NegativeBatchWaitIsRefused(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: "http://127.0.0.1:1"}))
	o.BatchSize, o.BatchWait = 8, -time.Millisecond
	_, err := NewDispatcher(o)
	assert.ErrorIs(t, err, ErrInvalidOptions)
}

// flagRecorder is a BatchDeliverer that notes each event's BodyJSON on
// every attempt before the real Client posts the batch.
type flagRecorder struct {
	*Client
	mu    sync.Mutex
	flags map[int][]bool // attempt -> BodyJSON of each event in it
}

func (r *flagRecorder) DeliverBatch(ctx context.Context, evs []Event, attempts []int) error {
	r.mu.Lock()
	for i, ev := range evs {
		r.flags[attempts[i]] = append(r.flags[attempts[i]], ev.BodyJSON)
	}
	r.mu.Unlock()
	return r.Client.DeliverBatch(ctx, evs, attempts)
}

func TestDispatcher_BatchTrustsBodyJSONOnlyFromMemory(t *testing.T) {
	// The first attempt takes the event as appended, flag included; a retry
	// reads it back from the store, which does not keep the flag, so the
	// batch checks that body itself.
	recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	rec := &flagRecorder{Client: newTestClient(t, ClientOptions{URL: srv.URL}), flags: map[int][]bool{}}
	o := fastDispatcher(ob, rec)
	o.BatchSize = 8
	d := newTestDispatcher(t, o)
	for i := range 4 {
		ev := testEvent("flag", i)
		ev.BodyJSON = true
		require.NoError(t, ob.Append(t.Context(), ev))
	}
	_, err := ob.Stats() // all four deliverable, so the first batch takes them
	require.NoError(t, err)
	runDispatcher(t, d)
	requireDrained(t, ob)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, []bool{true, true, true, true}, rec.flags[1], "first attempt: the appended event, flag kept")
	assert.Equal(t, []bool{false, false, false, false}, rec.flags[2], "retry: read back from the store")
	// Retries leave on their own schedules, so they may regroup.
	got := recv.deliveries()
	require.GreaterOrEqual(t, len(got), 2, "a failed batch, then its retries")
	for _, dl := range got {
		for _, e := range decodeBatch(t, dl) {
			assert.True(t, json.Valid(e.Body), "either way the body is embedded as JSON")
			assert.Nil(t, e.BodyBase64)
		}
	}
}

func TestClient_DeliverBatch_BodyJSONSkipsTheCheck(t *testing.T) {
	// A body the caller vouches for goes in as it is: here a number, which
	// the check would also pass, and, to show that no check runs, a body
	// the check would have sent base64-encoded.
	recv := &internal{}
	srv := startInternal(t, recv)
	c := newTestClient(t, ClientOptions{URL: srv.URL})
	vouched, checked := testEvent("v", 1), testEvent("c", 2)
	vouched.Body, vouched.BodyJSON = []byte(`{"a":1`), true
	checked.Body = []byte(`{"a":1`)
	require.NoError(t, c.DeliverBatch(t.Context(), []Event{vouched, checked}, []int{1, 1}))
	got := recv.deliveries()
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Body), `"body":{"a":1}`, "the vouched body is embedded unchecked")
	assert.Contains(t, string(got[0].Body), `"body_base64":"eyJhIjox"`, "the unvouched one is checked")
}
