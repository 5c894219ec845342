package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/receiver"
)

// TestE2E_KillNineLosesNothing sends thousands of distinct callbacks while
// the imedge process is SIGKILLed at random moments and restarted on the
// same state directory. Every callback answered OK must reach the internal
// URL, compared by event id.
func TestE2E_KillNineLosesNothing(t *testing.T) {
	t.Parallel()
	const (
		total   = 2000
		workers = 8
		kills   = 4
	)
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	args := baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log"))
	args = append(args, "--rate", "0")

	var (
		mu      sync.Mutex
		im      = start(t, args...)
		next    atomic.Int64
		acked   sync.Map // event id -> true
		nAcked  atomic.Int64
		refused atomic.Int64
	)
	addr := func() string { mu.Lock(); defer mu.Unlock(); return im.addr }

	sendAll := func(cl *http.Client) {
		for {
			i := next.Add(1)
			if i > total {
				return
			}
			body := friendDeleteBody(fmt.Sprintf("user%05d", i), "friend")
			for attempt := 0; attempt < 200; attempt++ { // a refused or cut request is retried, like IM's retry
				resp, err := cl.Post(callbackURL(addr(), "10.1.2.3"), "application/json", strings.NewReader(body))
				if err != nil {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond) // the client's retry pace, not a wait for imedge
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && string(b) == okReply {
					acked.Store(receiver.EventID(appID, "Sns.CallbackFriendDelete", []byte(body)), true)
					nAcked.Add(1)
					break
				}
				refused.Add(1)
				time.Sleep(10 * time.Millisecond) // the client's retry pace, not a wait for imedge
			}
		}
	}
	var wg sync.WaitGroup
	for range workers {
		cl := p.httpsClient()
		wg.Go(func() { sendAll(cl) })
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := 0; k < kills; k++ {
		// Let a random share of the traffic through, then kill -9 mid-flight.
		target := int64((k + 1) * total / (kills + 1))
		require.Eventually(t, func() bool { return nAcked.Load() >= target-int64(rng.IntN(50)) }, 60*time.Second, 20*time.Millisecond, "progress stalled before kill %d", k)
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // a random instant to kill at, not a wait
		mu.Lock()
		im.kill()
		im = start(t, args...)
		mu.Unlock()
	}
	wg.Wait()
	require.Equal(t, int64(total), nAcked.Load(), "every callback was eventually answered OK")

	missing := func() []string {
		var out []string
		acked.Range(func(k, _ any) bool {
			if b, _ := s.get(k.(string)); len(b) == 0 {
				out = append(out, k.(string))
			}
			return true
		})
		return out
	}
	require.Eventually(t, func() bool { return len(missing()) == 0 }, 60*time.Second, 20*time.Millisecond, "events answered OK but never delivered: %d", len(missing()))
	assert.Equal(t, total, s.count(), "every acknowledged event reached the internal URL exactly by id")
	t.Logf("%d callbacks, %d kills, %d refused or cut attempts retried", total, kills, refused.Load())
	mu.Lock()
	im.stop(t)
	mu.Unlock()
}

// TestE2E_InternalURLDownThenUp: while the internal service fails, callbacks
// are still answered OK at once; once it recovers every event arrives once.
func TestE2E_InternalURLDownThenUp(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	s.setStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")), "--rate", "0")...)
	cl := p.httpsClient()
	for i := range 50 {
		start := time.Now()
		resp, err := cl.Post(callbackURL(im.addr, "10.0.0.1"), "application/json", strings.NewReader(friendDeleteBody(fmt.Sprint("u", i), "f")))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Less(t, time.Since(start), 2*time.Second, "IM's 2 s budget does not depend on the internal URL")
	}
	base := "http://" + im.adminAddr(t)
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_delivery_failures_total", "destination", "default") >= 1
	}, 10*time.Second, 20*time.Millisecond, "deliveries are tried and fail")
	assert.Equal(t, 0, s.count(), "nothing counts as delivered while the sink answers 503")
	s.setStatus(0)
	require.Eventually(t, func() bool { return s.count() == 50 }, 30*time.Second, 20*time.Millisecond, "not every event arrived after recovery")
	s.mu.Lock()
	for id, b := range s.bodies {
		assert.Len(t, b, 1, "event %s delivered more than once in a successful run", id)
	}
	s.mu.Unlock()
	im.stop(t)
}

// TestE2E_RetriedCallbackForwardedOnce and the rate limit over real mTLS.
func TestE2E_DedupeAndRateLimit(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	args := append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog), "--rate", "1", "--burst", "5")
	im := start(t, args...)
	cl := p.httpsClient()
	post := func(clientIP, body string) int {
		resp, err := cl.Post(callbackURL(im.addr, clientIP), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	retry := friendDeleteBody("alice", "bob")
	assert.Equal(t, http.StatusOK, post("10.9.9.9", retry))
	assert.Equal(t, http.StatusOK, post("10.9.9.9", retry), "a duplicate is answered OK")

	statuses := map[int]int{}
	for i := range 20 {
		statuses[post("10.0.0.7", friendDeleteBody("flood", fmt.Sprint(i)))]++
	}
	assert.Equal(t, 5, statuses[http.StatusOK], "the burst passes")
	assert.Equal(t, 15, statuses[http.StatusTooManyRequests], "the rest is limited")
	assert.Equal(t, http.StatusOK, post("10.0.0.8", friendDeleteBody("other", "x")), "another ClientIP still gets through")

	require.Eventually(t, func() bool { return s.count() == 1+5+1 }, 10*time.Second, 20*time.Millisecond, "deliveries: got %d", s.count())
	id := receiver.EventID(appID, "Sns.CallbackFriendDelete", []byte(retry))
	b, _ := s.get(id)
	assert.Len(t, b, 1, "the retried callback is forwarded once")
	limited := 0
	for _, r := range auditRecords(t, auditLog) {
		if r["reason"] == "rate_limited" {
			limited++
			assert.Equal(t, "10.0.0.7", r["client_ip"])
		}
	}
	assert.Equal(t, 15, limited)

	// After a restart the dedupe window is reloaded from the outbox.
	im.stop(t)
	im = start(t, args...)
	cl = p.httpsClient()
	assert.Equal(t, http.StatusOK, post("10.9.9.9", retry))
	assert.Equal(t, 1.0, metric(scrapeMetrics(t, "http://"+im.adminAddr(t)), "imedge_requests_total", "outcome", "duplicate"),
		"a retry after restart is still recognised: answered as a duplicate, so never stored again")
	b, _ = s.get(id)
	assert.Len(t, b, 1)
	im.stop(t)
}
