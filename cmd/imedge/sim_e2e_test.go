package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runBin runs the imedge binary with args and returns its stdout, stderr
// and error (an *exec.ExitError for a non-zero exit).
func runBin(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(append(os.Environ(), "IMEDGE_TOKEN="), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("imedge %s did not finish in 60s", args[0])
		return "", "", nil
	}
}

// simArgs are the flags that point send/load at a running imedge as its
// client-certificate holder.
func simArgs(p *pki, addr string) []string {
	return []string{"--addr", addr, "--cert", p.clientCert, "--key", p.clientKey, "--cacert", p.caFile, "--sdkappid", appID}
}

func TestE2E_SendIsTheVerifyButton(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("im-token-1\n"), 0o600))
	auditLog := filepath.Join(dir, "audit.log")
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog), "--token-file", tokenFile)...)

	// Signed, with a client certificate: accepted and forwarded.
	out, errOut, err := runBin(t, nil, append([]string{"send"}, append(simArgs(p, im.addr),
		"--token-file", tokenFile, "--client-ip", "36.112.173.178", "--from", "alice", "--to", "bob")...)...)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s\nimedge:\n%s", out, errOut, im.stderr.String())
	assert.Contains(t, out, "status 200\n")
	assert.Contains(t, out, "reply "+okReply+"\n")
	assert.Regexp(t, `request-id [0-9a-f]{12}-[0-9a-f]+\n`, out)
	require.Eventually(t, func() bool { return s.count() == 1 }, 10*time.Second, 20*time.Millisecond, "the verify callback was not forwarded")
	s.mu.Lock()
	for id, bodies := range s.bodies {
		assert.Equal(t, friendDeleteBody("alice", "bob"), string(bodies[0]))
		assert.Equal(t, "36.112.173.178", s.hdrs[id].Get("X-Imedge-Client-Ip"))
	}
	s.mu.Unlock()

	// The token from the environment works the same.
	out, _, err = runBin(t, []string{"IMEDGE_TOKEN=im-token-1"}, append([]string{"send"}, append(simArgs(p, im.addr), "--from", "env")...)...)
	require.NoError(t, err, out)

	// A body from a file.
	bodyFile := filepath.Join(dir, "body.json")
	custom := `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"张三","To_Account":"id2"}]}`
	require.NoError(t, os.WriteFile(bodyFile, []byte(custom), 0o600))
	out, _, err = runBin(t, nil, append([]string{"send"}, append(simArgs(p, im.addr), "--token-file", tokenFile, "--body", bodyFile)...)...)
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { return s.count() == 3 }, 10*time.Second, 20*time.Millisecond, "the file body was not forwarded")

	// Refusals: non-zero exit, the status and IM's reason printed.
	for _, tc := range []struct {
		name   string
		args   []string
		status string
		reason string
	}{
		{"no token", simArgs(p, im.addr), "status 401", "missing_sign"},
		{"other app", append(simArgs(p, im.addr), "--token-file", tokenFile, "--sdkappid", "1400009999"), "status 403", "bad_sdkappid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runBin(t, nil, append([]string{"send"}, tc.args...)...)
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "a refused callback exits non-zero; stdout:\n%s", out)
			assert.Contains(t, out, tc.status)
			assert.Contains(t, out, tc.reason)
			assert.Contains(t, errOut, "callback not accepted")
		})
	}

	// No client certificate: the TLS handshake is refused.
	_, errOut, err = runBin(t, nil, "send", "--addr", im.addr, "--cacert", p.caFile, "--sdkappid", appID, "--token-file", tokenFile)
	require.Error(t, err)
	assert.Contains(t, errOut, "tls")
	require.Eventually(t, func() bool {
		for _, r := range auditRecords(t, auditLog) {
			if r["reason"] == "tls_no_cert" {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "the refused handshake is audited")
	im.stop(t)
}

func TestE2E_SendBadUsage(t *testing.T) {
	t.Parallel()
	_, errOut, err := runBin(t, nil, "send", "--addr", "127.0.0.1:1", "--cert", "x.pem")
	require.Error(t, err)
	assert.Contains(t, errOut, "--sdkappid is required")
	assert.Contains(t, errOut, "--cert and --key go together")

	_, errOut, err = runBin(t, nil, "send", "--addr", "127.0.0.1:1", "--sdkappid", appID, "--body", "/nonexistent/body.json", "--from", "a")
	require.Error(t, err)
	assert.Contains(t, errOut, "--body and --from/--to exclude each other")
	assert.Contains(t, errOut, "/nonexistent/body.json")
}

// loadJSON runs imedge load with --json and decodes its summary.
func loadJSON(t *testing.T, args ...string) loadSummary {
	t.Helper()
	out, errOut, err := runBin(t, nil, append([]string{"load", "--json"}, args...)...)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var s loadSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	return s
}

func TestE2E_LoadAgainstTheBinary(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--rate-limit-exempt", "10.0.0.0/8")...)
	sim := simArgs(p, im.addr)

	ka := loadJSON(t, append(sim, "--mode", "keepalive", "--concurrency", "8", "--requests", "300", "--duration", "0",
		"--distinct-client-ips", "3")...)
	assert.Equal(t, "keepalive", ka.Mode)
	assert.Equal(t, int64(300), ka.Requests)
	assert.Equal(t, int64(300), ka.OK)
	assert.Equal(t, int64(300), ka.Fresh)
	assert.Empty(t, ka.Errors)
	assert.Equal(t, int64(8), ka.Handshakes, "one connection per worker")
	assert.Positive(t, ka.LatencyMS.P50)
	assert.LessOrEqual(t, ka.LatencyMS.P99, ka.LatencyMS.Max)
	require.Eventually(t, func() bool { return s.count() == 300 }, 20*time.Second, 20*time.Millisecond, "300 events reach the internal URL, got %d", s.count())

	nc := loadJSON(t, append(sim, "--mode", "new-conn", "--concurrency", "2", "--requests", "10", "--duration", "0")...)
	assert.Equal(t, int64(10), nc.OK)
	assert.Equal(t, int64(10), nc.Handshakes)
	assert.Zero(t, nc.Resumed)

	rs := loadJSON(t, append(sim, "--mode", "resume", "--concurrency", "2", "--requests", "20", "--duration", "0")...)
	assert.Equal(t, int64(20), rs.OK)
	assert.GreaterOrEqual(t, rs.Resumed, int64(18), "imedge resumes TLS sessions from tickets")

	// Half repeats: imedge forwards only the new bodies.
	before := s.count()
	dup := loadJSON(t, append(sim, "--concurrency", "2", "--requests", "200", "--duration", "0", "--duplicates", "0.5")...)
	assert.Equal(t, int64(200), dup.OK, "a duplicate is answered OK")
	assert.Less(t, dup.Fresh, int64(200))
	require.Eventually(t, func() bool { return s.count() == before+int(dup.Fresh) }, 20*time.Second, 20*time.Millisecond, "only the %d new bodies are forwarded, got %d", dup.Fresh, s.count()-before)

	// The human summary.
	out, _, err := runBin(t, nil, append([]string{"load"}, append(sim, "--requests", "5", "--duration", "0", "--concurrency", "1")...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "mode keepalive, concurrency 1")
	assert.Contains(t, out, "5 requests, 5 OK")
	assert.Contains(t, out, "latency ms: p50")
	im.stop(t)
}

func TestE2E_LoadCountsRefusalsByKind(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--rate", "1", "--burst", "5")...)
	// One ClientIP, no exemption: the limiter refuses most of the load.
	res := loadJSON(t, append(simArgs(p, im.addr), "--concurrency", "4", "--requests", "60", "--duration", "0")...)
	assert.Equal(t, int64(60), res.Requests)
	assert.Positive(t, res.OK)
	assert.Positive(t, res.Errors["http_429:rate_limited"])
	assert.Equal(t, int64(60), res.OK+res.Errors["http_429:rate_limited"], "errors: %v", res.Errors)

	// Nothing accepted at all: load exits non-zero.
	_, errOut, err := runBin(t, nil, append([]string{"load"}, append(simArgs(p, im.addr), "--sdkappid", "1400009999",
		"--requests", "3", "--duration", "0")...)...)
	require.Error(t, err)
	assert.Contains(t, errOut, "no callback was answered OK")
	im.stop(t)
}

// batchSink is an internal URL that takes batched deliveries.
type batchSink struct {
	mu  sync.Mutex
	ids map[string]int
	n   int // requests
}

func (b *batchSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var elems []struct {
		ID   string          `json:"id"`
		Body json.RawMessage `json:"body"`
	}
	if json.Unmarshal(body, &elems) != nil || r.Header.Get("X-Imedge-Batch-Size") == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.n++
	for _, e := range elems {
		b.ids[e.ID]++
	}
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (b *batchSink) counts() (ids, requests int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids), b.n
}

func TestE2E_ForwardBatchDeliversArrays(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	bs := &batchSink{ids: map[string]int{}}
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--forward-batch", "32", "--rate", "0")...)
	res := loadJSON(t, append(simArgs(p, im.addr), "--concurrency", "16", "--requests", "400", "--duration", "0")...)
	require.Equal(t, int64(400), res.OK)
	require.Eventually(t, func() bool { ids, _ := bs.counts(); return ids == 400 }, 20*time.Second, 20*time.Millisecond, "every event arrives in a batch")
	ids, requests := bs.counts()
	assert.Equal(t, 400, ids)
	assert.Less(t, requests, 400, "events share requests")
	bs.mu.Lock()
	for id, n := range bs.ids {
		assert.Equal(t, 1, n, "event %s delivered once", id)
	}
	bs.mu.Unlock()
	im.stop(t)

	_, errOut, err := runBin(t, nil, append(baseArgs(p, srv.URL, filepath.Join(dir, "state2"), filepath.Join(dir, "a2.log")),
		"--forward-batch", "5000")...)
	require.Error(t, err)
	assert.Contains(t, errOut, "--forward-batch must be 0..1000")
}
