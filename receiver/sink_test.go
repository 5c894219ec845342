package receiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
)

func TestHandler_Sink_Failures(t *testing.T) {
	id := eventIDOf(testAppID, CommandFriendDelete, goodBody)
	for _, tc := range []struct {
		name   string
		err    error
		reason audit.Reason
	}{
		{"full", fmt.Errorf("appending to outbox: %w", ErrSinkFull), audit.OutboxFull},
		{"error", errors.New("appending to outbox: read-only file system"), audit.OutboxError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := newRecSeen()
			f := newFixture(t, func(o *Options) { o.Seen = seen })
			f.sink.err = tc.err

			w := f.serve(f.request(goodQuery, goodBody))
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Equal(t, failJSON(tc.reason), w.Body.String())
			recs := f.audit.records(t)
			require.Len(t, recs, 1)
			assert.Equal(t, string(tc.reason), recs[0]["reason"])
			assert.NotContains(t, f.audit.String(), "read-only", "sink error text stays out of the audit record")
			assert.NotContains(t, w.Body.String(), "outbox:", "no internal detail in the reply")
			bodySum := sha256.Sum256([]byte(goodBody))
			assert.Equal(t, hex.EncodeToString(bodySum[:]), recs[0]["body_sha256"])
			assert.EqualValues(t, len(goodBody), recs[0]["body_size"])

			claims, settles := seen.calls()
			assert.Equal(t, []string{id}, claims)
			assert.Equal(t, []settleCall{{id, false}}, settles, "a failed accept is forgotten")

			// IM's retry goes through once the sink recovers.
			f.sink.mu.Lock()
			f.sink.err = nil
			f.sink.mu.Unlock()
			w = f.serve(f.request(goodQuery, goodBody))
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Len(t, f.sink.got(), 1)
			_, settles = seen.calls()
			assert.Equal(t, []settleCall{{id, false}, {id, true}}, settles)
		})
	}
}

func TestHandler_Seen_DuplicateAnsweredOKNotForwarded(t *testing.T) {
	seen := newRecSeen()
	f := newFixture(t, func(o *Options) { o.Seen = seen })

	for range 3 {
		w := f.serve(f.request(goodQuery, goodBody))
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, okJSON, w.Body.String())
	}
	assert.Len(t, f.sink.got(), 1)
	st := f.h.Stats()
	assert.Equal(t, uint64(1), st.Accepted)
	assert.Equal(t, uint64(2), st.Duplicates)
	assert.Empty(t, f.audit.records(t))

	// A different body is a different event.
	w := f.serve(f.request(goodQuery, pairs("x", "y")))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Len(t, f.sink.got(), 2)
}

func TestHandler_Seen_EmptyPairListSkipsDedupe(t *testing.T) {
	seen := newRecSeen()
	f := newFixture(t, func(o *Options) { o.Seen = seen })
	w := f.serve(f.request(goodQuery, `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[]}`))
	assert.Equal(t, http.StatusOK, w.Code)
	claims, settles := seen.calls()
	assert.Empty(t, claims)
	assert.Empty(t, settles)
}

func TestHandler_Seen_ClaimErrorIs503(t *testing.T) {
	seen := newRecSeen()
	seen.claimErr = errors.New("dedupe: first copy failed")
	f := newFixture(t, func(o *Options) { o.Seen = seen })

	w := f.serve(f.request(goodQuery, goodBody))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, failJSON(audit.OutboxError), w.Body.String())
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.OutboxError), recs[0]["reason"])
	assert.Equal(t, "identical request in flight failed", recs[0]["detail"])
	assert.Empty(t, f.sink.got())
	_, settles := seen.calls()
	assert.Empty(t, settles, "a key not claimed is not settled")
}

func TestHandler_SinkPanic_Is500AndReleasesKey(t *testing.T) {
	seen := newRecSeen()
	f := newFixture(t, func(o *Options) { o.Seen = seen })
	f.sink.panics = true

	w := f.serve(f.request(goodQuery, goodBody))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Equal(t, failJSON(audit.Internal), w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.Internal), recs[0]["reason"])
	assert.NotContains(t, w.Body.String(), "exploded")
	id := eventIDOf(testAppID, CommandFriendDelete, goodBody)
	_, settles := seen.calls()
	assert.Equal(t, []settleCall{{id, false}}, settles)
	assert.Equal(t, map[audit.Reason]uint64{audit.Internal: 1}, f.h.Stats().Rejected)
}

// TestHandler_ConcurrentRequests sends identical and distinct callbacks at
// once: each distinct event is forwarded once, request ids never repeat.
func TestHandler_ConcurrentRequests(t *testing.T) {
	seen := newRecSeen()
	f := newFixture(t, func(o *Options) { o.Seen = seen })
	const n = 64
	var wg sync.WaitGroup
	codes := make([]int, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			body := pairs(fmt.Sprintf("from%d", i%16), "to")
			w := f.serve(f.request(goodQuery, body))
			codes[i] = w.Code
			ids[i] = w.Header().Get("X-Request-Id")
		})
	}
	wg.Wait()
	uniq := make(map[string]bool)
	for i := range n {
		assert.Equal(t, http.StatusOK, codes[i])
		uniq[ids[i]] = true
	}
	assert.Len(t, uniq, n, "request ids are unique")
	st := f.h.Stats()
	assert.Equal(t, uint64(16), st.Accepted)
	assert.Equal(t, uint64(n-16), st.Duplicates)
	assert.Len(t, f.sink.got(), 16)
}

func TestHandler_SinkGetsRequestContext(t *testing.T) {
	ctxSink := &ctxCheckSink{}
	f := newFixture(t, func(o *Options) { o.Sink = ctxSink })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := f.request(goodQuery, goodBody).WithContext(ctx)
	w := f.serve(r)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, failJSON(audit.OutboxError), w.Body.String())
}

// ctxCheckSink fails when the context is done, as a durable store would.
type ctxCheckSink struct{}

func (ctxCheckSink) Accept(ctx context.Context, _ Event) error { return ctx.Err() }
