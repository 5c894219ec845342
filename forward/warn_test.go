package forward

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// logLines decodes the JSON log lines of buf whose message is msg.
func logLines(t *testing.T, buf *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range testkit.JSONLines(t, buf.String()) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// sumField adds up the numeric field of lines.
func sumField(lines []map[string]any, field string) int {
	n := 0
	for _, l := range lines {
		if v, ok := l[field].(float64); ok {
			n += int(v)
		}
	}
	return n
}

// TestDispatcher_SampledFailureWarnings: an internal service answering
// 503 gets a warning per window, not per event, naming the destination,
// the failures in the window, the window and the last error; together
// the warnings count every failure. Per-event lines are debug only.
func TestDispatcher_SampledFailureWarnings(t *testing.T) {
	var buf syncBuffer
	recv := &internal{respond: func(int, http.ResponseWriter, *http.Request) int { return http.StatusServiceUnavailable }}
	srv := startInternal(t, recv)
	ob := openTestOutbox(t, OutboxOptions{Destinations: []string{"Group.*"}})
	o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
	o.Logger, o.Destination, o.MaxAttempts = buf.logger(), "Group.*", 3
	d := newTestDispatcher(t, o)
	d.warnEvery = 50 * time.Millisecond
	for i := range 30 {
		require.NoError(t, ob.Append(t.Context(), routed("Group.*", i)))
	}
	stop := runDispatcher(t, d)
	require.Eventually(t, func() bool { return d.Stats().DeadLettered == 30 }, waitFor, tick)
	stop() // flushes what the last window counted

	failing := logLines(t, &buf, "delivery failing")
	require.NotEmpty(t, failing)
	assert.Less(t, len(failing), 90, "sampled, not one per failure")
	assert.Equal(t, int(d.Stats().Failures), sumField(failing, "failures"), "every failure is counted once")
	for _, l := range failing {
		assert.Equal(t, "WARN", l["level"])
		assert.Equal(t, "Group.*", l["destination"])
		assert.Equal(t, "50ms", l["window"], "a duration string")
		assert.Equal(t, "HTTP 503 Service Unavailable", l["last_error"])
	}
	dead := logLines(t, &buf, "events dead-lettered")
	require.NotEmpty(t, dead)
	assert.Equal(t, 30, sumField(dead, "events"))
	assert.Contains(t, dead[len(dead)-1]["last_error"], "gave up after 3 attempts")
	assert.NotEmpty(t, dead[len(dead)-1]["last_event_id"])
	for _, l := range logLines(t, &buf, "event dead-lettered") {
		assert.Equal(t, "DEBUG", l["level"], "per-event lines are debug")
	}
}

// TestDispatcher_OnAttemptSeesSingleAndBatchedAttempts: the hook gets
// every attempt with its destination, size, duration and outcome, batched
// ones included (they bypass a Deliverer wrapper's Deliver).
func TestDispatcher_OnAttemptSeesSingleAndBatchedAttempts(t *testing.T) {
	for _, batch := range []int{1, 8} {
		var mu sync.Mutex
		var reports []AttemptReport
		recv := &internal{respond: func(n int, _ http.ResponseWriter, _ *http.Request) int {
			if n == 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}}
		srv := startInternal(t, recv)
		ob := openTestOutbox(t, OutboxOptions{})
		o := fastDispatcher(ob, newTestClient(t, ClientOptions{URL: srv.URL}))
		o.BatchSize, o.Concurrency = batch, 1
		o.OnAttempt = func(r AttemptReport) {
			mu.Lock()
			reports = append(reports, r)
			mu.Unlock()
		}
		for i := range 20 {
			require.NoError(t, ob.Append(t.Context(), testEvent("hook", i)))
		}
		runDispatcher(t, newTestDispatcher(t, o))
		requireDrained(t, ob)

		mu.Lock()
		delivered, failed, biggest := 0, 0, 0
		for _, r := range reports {
			assert.Equal(t, DefaultDestination, r.Destination)
			assert.Positive(t, r.Duration)
			assert.False(t, r.Abandoned)
			biggest = max(biggest, r.Events)
			if r.Err == nil {
				delivered += r.Events
				assert.Zero(t, r.Status)
				continue
			}
			failed++
			assert.Equal(t, http.StatusServiceUnavailable, r.Status)
		}
		mu.Unlock()
		assert.Equal(t, 20, delivered, "batch %d: every delivered event reported", batch)
		assert.Equal(t, 1, failed, "batch %d: the failed attempt reported", batch)
		if batch > 1 {
			assert.Greater(t, biggest, 1, "a batch attempt is observed as one report")
		}
	}
}
