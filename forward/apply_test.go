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
	_, err := ob.Stats()                                // stored: now in fresh
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
