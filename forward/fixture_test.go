package forward

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/forward/internal/store"
	"github.com/imedge/imedge/internal/testkit"
)

// v1FixtureEvent is one event of testdata/outbox-v1.json, the manifest of
// the format 1 outbox in testdata/outbox-v1. Both were written by the code
// of commit 0bde643 (imedge before destinations), with
//
//	git checkout 0bde643 && go test -tags v1fixture -run TestWriteV1Fixture ./forward/
type v1FixtureEvent struct {
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	RequestID string `json:"request_id"`
	State     string `json:"state"` // pending, retrying, dead, journal (only in the journal)
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// copyDir copies the files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, d.Name()), b, 0o600)
	}))
	return dst
}

// TestOutbox_OpensAFormat1Outbox opens a copy of an outbox written by
// imedge before destinations: it is upgraded to format 2, every event is
// found (those only in its journal too) under the default destination
// with its attempts and errors, all pending ones are delivered, and the
// dead letter is shown and, replayed, delivered.
func TestOutbox_OpensAFormat1Outbox(t *testing.T) {
	raw, err := os.ReadFile("testdata/outbox-v1.json")
	require.NoError(t, err)
	var manifest []v1FixtureEvent
	require.NoError(t, json.Unmarshal(raw, &manifest))
	require.Len(t, manifest, 7)
	dir := copyDir(t, "testdata/outbox-v1")

	var logs syncBuffer
	ob := openTestOutbox(t, OutboxOptions{Dir: dir, Destinations: []string{"Group.*"}, Logger: logs.logger()})
	assert.Contains(t, logs.String(), `"msg":"outbox format upgraded"`)
	assert.Contains(t, logs.String(), `"from":1,"to":2`)
	assert.Contains(t, logs.String(), `"msg":"outbox journal recovered","events":2`)

	st, err := ob.Stats()
	require.NoError(t, err)
	assert.Equal(t, 6, st.Pending)
	assert.Equal(t, 1, st.Dead)
	def := st.Destinations[slicesIndex(st.Destinations, DefaultDestination)]
	assert.Equal(t, 6, def.Pending, "format 1 events belong to the default destination")
	assert.Equal(t, 1, def.Dead)

	pending := listAll(t, ob, StatePending)
	dead := listAll(t, ob, StateDead)
	byID := map[string]Entry{}
	for _, e := range append(pending, dead...) {
		byID[e.Event.ID] = e
	}
	want := map[string]bool{}
	for _, m := range manifest {
		e, ok := byID[m.ID]
		require.True(t, ok, "event %d (%s) found", m.Seq, m.State)
		assert.Equal(t, m.Seq, e.Seq)
		assert.Equal(t, DefaultDestination, e.Event.Destination)
		assert.Equal(t, m.RequestID, e.Event.RequestID)
		assert.Equal(t, m.Attempts, e.Attempts)
		assert.Equal(t, m.LastError, e.LastError)
		if m.State == "dead" {
			assert.Equal(t, StateDead, e.State)
			continue
		}
		assert.Equal(t, StatePending, e.State)
		want[m.ID] = true
	}

	deadRef := dead[0].Event.ID
	shown, err := ob.Show(t.Context(), deadRef)
	require.NoError(t, err)
	assert.Equal(t, StateDead, shown.State)
	assert.Contains(t, string(shown.Event.Body), "Sns.CallbackFriendDelete")
	assert.False(t, shown.DeadAt.IsZero())

	// Deliver: the dispatcher's clock an hour after the fixture was
	// written, so the retrying event's backoff is over.
	clock := testkit.NewClock(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC))
	recv := &internal{}
	srv := startInternal(t, recv)
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Now = clock.Now
	stop := runDispatcher(t, newTestDispatcher(t, o))
	requireDrained(t, ob)
	assert.Equal(t, len(want), len(recv.okByID()))
	for id := range want {
		assert.Equal(t, 1, recv.okByID()[id], "event %s delivered once", id)
	}
	for _, d := range recv.deliveries() {
		assert.Equal(t, http.StatusOK, d.Status)
		assert.True(t, strings.Contains(string(d.Body), "v1-fixture"))
	}

	n, err := ob.ReplayDead(t.Context(), Filter{})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	requireDrained(t, ob)
	assert.Equal(t, 1, recv.okByID()[deadRef], "the replayed dead letter is delivered")
	stop()
	require.NoError(t, ob.Close())

	// Upgraded for good: the next open finds format 2.
	re := openTestOutbox(t, OutboxOptions{Dir: dir})
	assert.Equal(t, store.Format, re.st.FoundFormat())
}

// slicesIndex returns the index of destination name in ds, -1 if absent.
func slicesIndex(ds []DestinationStats, name string) int {
	for i, d := range ds {
		if d.Name == name {
			return i
		}
	}
	return -1
}
