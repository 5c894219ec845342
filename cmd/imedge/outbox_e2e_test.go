package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
)

// adminCall makes an outbox API request to a running imedge with the given
// Authorization header ("" for none) and returns the status and the
// decoded JSON answer.
func adminCall(t *testing.T, c *http.Client, method, url, authz, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s %s answers JSON: %s", method, url, b)
	return resp.StatusCode, m
}

// readCredential reads a running imedge's local credential.
func readCredential(t *testing.T, state string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, credentialFileName))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// adminActions returns the "admin action" records of an audit log.
func adminActions(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range auditRecords(t, path) {
		if r["msg"] == "admin action" {
			out = append(out, r)
		}
	}
	return out
}

// post sends one callback and returns its status.
func post(t *testing.T, c *http.Client, addr, clientIP, from, to string) int {
	t.Helper()
	return postCallback(t, c, callbackURL(addr, clientIP), friendDeleteBody(from, to))
}

// The local credential: 32 random bytes in hex, 0600, a new one at each
// start; requests without it, or with a wrong or stale one, are refused
// and not audited as actions; the right one works, and each action is
// audited with its identity.
func TestE2E_OutboxAPI_LocalCredential(t *testing.T) {
	t.Parallel()
	p, s, args, state := outboxSetup(t, 0)
	auditLog := filepath.Join(filepath.Dir(state), "audit.log")
	im := start(t, args...)
	base := "http://" + im.adminAddr(t)
	path := filepath.Join(state, credentialFileName)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	cred := readCredential(t, state)
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), cred)
	assert.NotContains(t, im.stderr.String(), cred, "the credential is never logged")

	require.Equal(t, http.StatusOK, post(t, p.httpsClient(), im.addr, "10.5.0.1", "a", "b"))
	require.Eventually(t, func() bool { return s.count() == 1 }, 10*time.Second, 20*time.Millisecond, "delivered")
	for _, authz := range []string{"", "Bearer " + strings.Repeat("0", 64), "Bearer " + cred[:63], "Basic " + cred} {
		code, m := adminCall(t, http.DefaultClient, "POST", base+"/outbox/replay-delivered", authz, `{"all":true}`)
		assert.Equal(t, http.StatusUnauthorized, code, "%q: %v", authz, m)
		code, _ = adminCall(t, http.DefaultClient, "GET", base+"/outbox/events?state=delivered", authz, "")
		assert.Equal(t, http.StatusUnauthorized, code, "%q", authz)
	}
	assert.Empty(t, adminActions(t, auditLog), "refused requests are not actions")
	assert.Contains(t, im.stderr.String(), "outbox request refused", "but they are logged")

	code, m := adminCall(t, http.DefaultClient, "GET", base+"/outbox/events?state=delivered", "Bearer "+cred, "")
	require.Equal(t, http.StatusOK, code, "%v", m)
	assert.Len(t, m["events"], 1, "the delivered event is retained")
	code, m = adminCall(t, http.DefaultClient, "POST", base+"/outbox/replay-delivered", "Bearer "+cred, `{"all":true}`)
	require.Equal(t, http.StatusOK, code, "%v", m)
	assert.Equal(t, float64(1), m["count"])
	require.Eventually(t, func() bool { return metric(scrapeMetrics(t, base), "imedge_delivery_successes_total") == 2 }, 10*time.Second, 20*time.Millisecond, "delivered again")
	recs := adminActions(t, auditLog)
	require.Len(t, recs, 1)
	assert.Equal(t, "outbox.replay-delivered", recs[0]["action"])
	assert.Equal(t, "local credential", recs[0]["identity"])
	assert.Equal(t, "credential", recs[0]["auth"])
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, recs[0]["remote_addr"])
	assert.Equal(t, map[string]any{"all": "true"}, recs[0]["filter"])
	assert.Equal(t, float64(1), recs[0]["count"])
	im.stop(t)

	im = start(t, args...)
	base = "http://" + im.adminAddr(t)
	fresh := readCredential(t, state)
	assert.NotEqual(t, cred, fresh, "a new credential at each start")
	code, _ = adminCall(t, http.DefaultClient, "GET", base+"/outbox/stats", "Bearer "+cred, "")
	assert.Equal(t, http.StatusUnauthorized, code, "the previous start's credential is refused")
	code, _ = adminCall(t, http.DefaultClient, "GET", base+"/outbox/stats", "Bearer "+fresh, "")
	assert.Equal(t, http.StatusOK, code)
	im.stop(t)
}

// With mutual TLS on the admin listener, the client certificate is the
// identity: imedge outbox reaches it with --admin-cacert/--admin-cert/
// --admin-key, each action is audited with the certificate, and no local
// credential is written (one left by an earlier start is removed).
func TestE2E_OutboxAPI_MutualTLS(t *testing.T) {
	t.Parallel()
	p, s, args, state := outboxSetup(t, http.StatusInternalServerError)
	auditLog := filepath.Join(filepath.Dir(state), "audit.log")
	require.NoError(t, os.MkdirAll(state, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(state, credentialFileName), []byte("stale\n"), 0o600))
	im := start(t, append(args, "--max-attempts", "1",
		"--admin-cert", p.certFile, "--admin-key", p.keyFile, "--admin-client-ca", p.caFile)...)
	addr := im.adminAddr(t)
	_, err := os.Stat(filepath.Join(state, credentialFileName))
	assert.ErrorIs(t, err, os.ErrNotExist, "no credential with mutual TLS")

	for i := range 3 {
		require.Equal(t, http.StatusOK, post(t, p.httpsClient(), im.addr, "10.6.0.1", fmt.Sprintf("m%d", i), "tls"))
	}
	tlsArgs := []string{"--admin", addr, "--admin-cacert", p.caFile, "--admin-cert", p.clientCert, "--admin-key", p.clientKey}
	require.Eventually(t, func() bool {
		out, _, err := outboxCLI(t, append([]string{"stats", "--json"}, tlsArgs...)...)
		require.NoError(t, err, out)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &st))
		return st["dead_letters"] == float64(3)
	}, 10*time.Second, 20*time.Millisecond, "three dead letters")

	out, stderr, err := outboxCLI(t, append([]string{"purge-dead", "--command", "Sns.*", "--since", "1h"}, tlsArgs...)...)
	require.NoError(t, err, out+stderr)
	assert.Contains(t, stderr, "using the running imedge at https://"+addr)
	assert.Contains(t, out, "3 dead letter(s) purged")
	_, stderr, err = outboxCLI(t, "stats", "--admin", addr, "--admin-cacert", p.caFile)
	require.Error(t, err, "no client certificate, no answer")
	assert.NotContains(t, stderr, "using the outbox directory", "a refused handshake is not a stopped instance")

	recs := adminActions(t, auditLog)
	require.Len(t, recs, 1)
	clientCert, err := certs.LoadCertificates(p.clientCert)
	require.NoError(t, err)
	assert.Equal(t, "outbox.purge-dead", recs[0]["action"])
	assert.Equal(t, "spiffe://tencent-im/callback", recs[0]["identity"])
	assert.Equal(t, "mtls", recs[0]["auth"])
	assert.Equal(t, certs.CertFingerprint(clientCert[0]), recs[0]["cert_sha256"])
	assert.Equal(t, float64(3), recs[0]["count"])
	assert.Equal(t, "Sns.*", recs[0]["filter"].(map[string]any)["command"])
	assert.Contains(t, recs[0]["filter"], "since")
	assert.Equal(t, 0, s.count())
	im.stop(t)
}

// A 404 from the internal service no longer dead-letters: the events stay
// pending and their history shows each 404; once the route is fixed they
// are delivered, and the operator sees it all through imedge outbox on the
// running instance.
func TestE2E_Outbox404StaysPendingWithHistory(t *testing.T) {
	t.Parallel()
	p, s, args, state := outboxSetup(t, http.StatusNotFound)
	im := start(t, args...)
	adminAddr := im.adminAddr(t)
	cli := func(args ...string) (string, string, error) {
		return outboxCLI(t, append(args, "--admin", adminAddr, "--state-dir", state)...)
	}
	for i := range 3 {
		require.Equal(t, http.StatusOK, post(t, p.httpsClient(), im.addr, "10.7.0.1", fmt.Sprintf("nf%d", i), "x"))
	}
	var page struct {
		Events []struct {
			Seq      uint64 `json:"seq"`
			ID       string `json:"id"`
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		} `json:"events"`
	}
	require.Eventually(t, func() bool {
		out, _, err := cli("list", "--json")
		require.NoError(t, err, out)
		require.NoError(t, json.Unmarshal([]byte(out), &page))
		if len(page.Events) != 3 {
			return false
		}
		for _, e := range page.Events {
			if e.Attempts < 3 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "three pending events with three attempts each")
	out, stderr, err := cli("stats", "--json")
	require.NoError(t, err)
	assert.Contains(t, stderr, "using the running imedge at http://"+adminAddr)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, float64(0), st["dead_letters"], "a 404 is retried, not dead-lettered")
	assert.Equal(t, float64(3), st["pending"])

	out, _, err = cli("show", page.Events[0].ID)
	require.NoError(t, err, out)
	assert.Contains(t, out, "state:        pending")
	assert.GreaterOrEqual(t, strings.Count(out, "404 Not Found"), 3, "the history shows each 404:\n%s", out)
	out, _, err = cli("show", "--json", fmt.Sprint(page.Events[0].Seq))
	require.NoError(t, err, out)
	var ev struct {
		History []struct {
			Status   int    `json:"status"`
			Duration string `json:"duration"`
		} `json:"history"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ev))
	require.GreaterOrEqual(t, len(ev.History), 3)
	for _, a := range ev.History {
		assert.Equal(t, http.StatusNotFound, a.Status)
		_, err := time.ParseDuration(a.Duration)
		assert.NoError(t, err)
	}

	s.setStatus(0)
	out, _, err = cli("retry", "--all")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { return s.count() == 3 }, 10*time.Second, 20*time.Millisecond, "delivered once the route answers")
	assert.Equal(t, 0.0, metric(scrapeMetrics(t, "http://"+adminAddr), "imedge_delivery_dead_lettered_total"))
	im.stop(t)
}

// Dead letters are replayed through the admin API while imedge keeps
// answering a steady stream of callbacks: not one callback fails, and
// every event is delivered. Then the internal service "loses" what it got,
// and the retained copies are replayed: each arrives a second time.
func TestE2E_OutboxReplayUnderLoadAndRetainedReplay(t *testing.T) {
	t.Parallel()
	p, s, args, state := outboxSetup(t, http.StatusInternalServerError)
	auditLog := filepath.Join(filepath.Dir(state), "audit.log")
	im := start(t, append(args, "--max-attempts", "1")...)
	adminAddr := im.adminAddr(t)
	base := "http://" + adminAddr
	cli := func(args ...string) (string, string, error) {
		return outboxCLI(t, append(args, "--admin", adminAddr, "--state-dir", state)...)
	}
	const dead = 30
	c := p.httpsClient()
	for i := range dead {
		require.Equal(t, http.StatusOK, post(t, c, im.addr, "10.8.0.1", fmt.Sprintf("dead%d", i), "x"))
	}
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_outbox_dead_letters") == dead
	}, 20*time.Second, 20*time.Millisecond, "every event dead-lettered")
	s.setStatus(0)

	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		lc := p.httpsClient()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ip := fmt.Sprintf("10.9.%d.%d", n/200, n%200+1) // one ClientIP each: IM's users, under the per-IP rate limit
			resp, err := lc.Post(callbackURL(im.addr, ip), "application/json", strings.NewReader(friendDeleteBody(fmt.Sprintf("load%d", n), "y")))
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
				t.Logf("callback %d answered %d", n, resp.StatusCode)
			}
		}
	})
	require.Eventually(t, func() bool { return sent.Load() >= 20 }, 10*time.Second, 20*time.Millisecond, "the load runs")
	cred := readCredential(t, state)
	code, m := adminCall(t, http.DefaultClient, "POST", base+"/outbox/replay-dead", "Bearer "+cred, `{"command":"Sns.CallbackFriendDelete"}`)
	require.Equal(t, http.StatusOK, code, "%v", m)
	assert.Equal(t, float64(dead), m["count"])
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_outbox_dead_letters") == 0 && s.count() >= dead
	}, 20*time.Second, 20*time.Millisecond, "the replayed events delivered")
	during := sent.Load()
	require.Eventually(t, func() bool { return sent.Load() >= during+20 }, 10*time.Second, 20*time.Millisecond, "the load goes on")
	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load(), "no callback failed during the replay (%d sent)", sent.Load())
	total := dead + int(sent.Load())
	require.Eventually(t, func() bool { return s.count() == total }, 20*time.Second, 20*time.Millisecond, "all %d events delivered", total)
	t.Logf("%d callbacks answered during the replay, none failed", sent.Load())

	// The internal service lost five of the events it acknowledged: their
	// retained copies are replayed by id.
	s.mu.Lock()
	var ids []string
	for id := range s.bodies {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	out, _, err := cli(append([]string{"replay-delivered"}, ids[:5]...)...)
	require.NoError(t, err, out)
	assert.Contains(t, out, "5 delivered event(s) queued for delivery again")
	require.Eventually(t, func() bool {
		for _, id := range ids[:5] {
			if b, _ := s.get(id); len(b) != 2 {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "each replayed event arrives twice")
	for _, id := range ids[:5] {
		b, h := s.get(id)
		assert.Equal(t, string(b[0]), string(b[1]), "the same body")
		assert.Equal(t, id, h.Get("X-Imedge-Event-Id"), "the same event id: the internal service can tell")
	}
	_, stderr, err := cli("replay-delivered", ids[5], strings.Repeat("f", 64))
	require.Error(t, err, "an unknown ref fails the command")
	assert.Contains(t, stderr, "1 ref(s) match no delivered event")

	recs := adminActions(t, auditLog)
	require.Len(t, recs, 3)
	assert.Equal(t, "outbox.replay-dead", recs[0]["action"])
	assert.Equal(t, float64(dead), recs[0]["count"])
	assert.Equal(t, "outbox.replay-delivered", recs[1]["action"])
	assert.Len(t, recs[1]["refs"], 5)
	assert.Equal(t, float64(5), recs[1]["count"])
	assert.Equal(t, float64(1), recs[2]["count"])
	for _, r := range recs {
		assert.Equal(t, "local credential", r["identity"])
	}
	im.stop(t)
}
