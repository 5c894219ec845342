package forward

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFresh_FirstAttemptSendsWhatWasStored delivers an event from memory
// (its first attempt reads no store) after the caller reused the body's
// buffer, with a local, monotonic ReceivedAt: the internal server gets the
// body as appended and the time as the store would give it.
func TestFresh_FirstAttemptSendsWhatWasStored(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{})
	d := newTestDispatcher(t, fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL})))

	ev := testEvent("fresh", 1)
	body := append([]byte(nil), ev.Body...)
	want := append([]byte(nil), ev.Body...)
	ev.Body = body
	ev.ReceivedAt = time.Now().In(time.FixedZone("UTC+8", 8*3600))
	require.NoError(t, ob.Append(t.Context(), ev))
	copy(body, bytes.Repeat([]byte("X"), len(body))) // the receiver reuses its buffer
	_, err := ob.Stats()                             // stored: now in fresh
	require.NoError(t, err)
	ob.mu.Lock()
	require.Len(t, ob.fresh, 1)
	ob.mu.Unlock()

	runDispatcher(t, d)
	requireDrained(t, ob)
	got := recv.deliveries()
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0].Body)
	assert.Equal(t, ev.ReceivedAt.UTC().Format(time.RFC3339Nano), got[0].Header.Get(HeaderReceivedAt))
	assert.Equal(t, http.StatusOK, got[0].Status)
	ob.mu.Lock()
	assert.Empty(t, ob.fresh, "taken by the first attempt")
	ob.mu.Unlock()
}

// TestEarlyDelivery_LeavesNothingBehind appends 300 events while a
// dispatcher delivers them: some are delivered before the applier stored
// them (their records are never written), every event arrives once, and a
// reopened outbox holds nothing pending (no record stored after its
// delivery).
func TestEarlyDelivery_LeavesNothingBehind(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	dir := t.TempDir()
	ob := openTestOutbox(t, OutboxOptions{Dir: dir})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.BatchSize = 16
	d := newTestDispatcher(t, o)
	stop := runDispatcher(t, d)
	want := map[string]bool{}
	for i := range 300 {
		ev := testEvent("early", i)
		want[ev.ID] = true
		require.NoError(t, ob.Append(t.Context(), ev))
	}
	requireDrained(t, ob)
	stop()
	got := map[string]int{}
	for _, dl := range recv.deliveries() {
		for _, e := range decodeBatch(t, dl) {
			got[e.ID]++
		}
	}
	assert.Len(t, got, len(want))
	for id, n := range got {
		assert.True(t, want[id])
		assert.Equal(t, 1, n, "delivered once")
	}
	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Positive(t, st.Absorbed, "some events were delivered before they were stored")
	assert.False(t, st.StoreFailing)
	require.NoError(t, ob.Close())

	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	st, err = re.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Pending)
	ids := 0
	require.NoError(t, re.AcceptedSince(time.Time{}, func(string, time.Time) { ids++ }))
	assert.Equal(t, 300, ids, "every id is remembered for the dedupe window")
}
