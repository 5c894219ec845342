package forward

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/forward/internal/store"
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
	ob.def.mu.Lock()
	require.Len(t, ob.def.fresh, 1)
	ob.def.mu.Unlock()

	runDispatcher(t, d)
	requireDrained(t, ob)
	got := recv.deliveries()
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0].Body)
	assert.Equal(t, ev.ReceivedAt.UTC().Format(time.RFC3339Nano), got[0].Header.Get(HeaderReceivedAt))
	assert.Equal(t, http.StatusOK, got[0].Status)
	ob.def.mu.Lock()
	assert.Empty(t, ob.def.fresh, "taken by the first attempt")
	ob.def.mu.Unlock()
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

// TestBatchIndex_FindsEveryEntryInAnyOrder: a batch in journal order (with
// gaps, as when a record went to the store directly) and the same batch
// shuffled are both searchable; absent numbers are not found.
func TestBatchIndex_FindsEveryEntryInAnyOrder(t *testing.T) {
	var batch []*journalEntry
	for seq := uint64(3); seq < 300; seq += 1 + seq%3 {
		batch = append(batch, &journalEntry{Entry: store.Entry{Seq: seq}})
	}
	shuffled := slices.Clone(batch)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	require.False(t, slices.IsSortedFunc(shuffled, func(a, b *journalEntry) int { return cmp.Compare(a.Seq, b.Seq) }))

	for _, b := range [][]*journalEntry{batch, shuffled} {
		idx := newBatchIndex(b)
		for _, e := range batch {
			got, ok := idx.find(e.Seq)
			if assert.True(t, ok, "seq %d", e.Seq) {
				assert.Same(t, e, got)
			}
		}
		for _, seq := range []uint64{0, 1, 2, 5, 300, 1 << 40} {
			_, ok := idx.find(seq)
			assert.False(t, ok, "seq %d", seq)
		}
	}
	_, ok := batchIndex(nil).find(1)
	assert.False(t, ok)
}

// TestWaitApplied_WaitsForTheRemovalsQueuedBeforeIt: Stats and the other
// reads wait for the removals queued before the call, not for those queued
// while they wait. Under a steady delivery load there is always one more
// queued; a wait that chased them could last as long as the load.
func TestWaitApplied_WaitsForTheRemovalsQueuedBeforeIt(t *testing.T) {
	ob := openTestOutbox(t, OutboxOptions{})
	a := ob.ap
	require.NotNil(t, a)
	a.delMu.Lock()
	a.delQueued++ // one removal queued before the call, not yet done
	a.delMu.Unlock()

	// The load: each step finishes the oldest removal and queues a new
	// one, so one is always outstanding.
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			a.delMu.Lock()
			a.delQueued++
			a.delDone++
			a.delMu.Unlock()
			a.delCond.Broadcast()
		}
	}()
	returned := make(chan struct{})
	go func() {
		a.waitApplied()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		assert.Fail(t, "waitApplied still waiting after 10 s of removals queued behind it")
	}
	close(stop)
	<-loadDone
	a.delMu.Lock()
	a.delDone = a.delQueued // nothing is really outstanding: let Close finish
	a.delMu.Unlock()
	a.delCond.Broadcast()
	<-returned
}
