package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// engine is a real server process (redis-server, haproxy) owned by a test:
// started by run, stopped by stop or at cleanup.
type engine struct {
	t    *testing.T
	name string
	args []string
	port int // where it listens, for the readiness check
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

func newEngine(t *testing.T, name string, port int, args ...string) *engine {
	t.Helper()
	_, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			if _, err2 := os.Stat(filepath.Join(dir, name)); err2 == nil {
				name, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	require.NoError(t, err, "%s is needed (installed by .ci/run)", name)
	e := &engine{t: t, name: name, args: args, port: port}
	e.run()
	t.Cleanup(e.stop)
	return e
}

func (e *engine) run() {
	e.t.Helper()
	e.out = &syncBuffer{}
	e.cmd = exec.Command(e.name, e.args...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	require.NoError(e.t, e.cmd.Start())
	e.done = make(chan struct{})
	cmd, done := e.cmd, e.done
	go func() { _ = cmd.Wait(); close(done) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port))
	require.Eventually(e.t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "%s did not listen on %s: %s", e.name, addr, e.out)
}

func (e *engine) stop() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

func startRedisServer(t *testing.T) *engine {
	port := freePort(t)
	return newEngine(t, "redis-server", port, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
}

// startHAProxy runs haproxy in TCP mode, round robin over backends, each
// with send-proxy-v2, and returns its frontend address.
func startHAProxy(t *testing.T, backends ...string) string {
	t.Helper()
	port := freePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "global\n  maxconn 256\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\n")
	fmt.Fprintf(&b, "frontend callbacks\n  bind 127.0.0.1:%d\n  default_backend imedge\n\n", port)
	fmt.Fprintf(&b, "backend imedge\n  balance roundrobin\n")
	for i, be := range backends {
		// check: plain TCP health checks, which imedge must close unaudited.
		fmt.Fprintf(&b, "  server imedge%d %s send-proxy-v2 check inter 200ms\n", i+1, be)
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(b.String()), 0o600))
	newEngine(t, "haproxy", port, "-f", cfg, "-db")
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// clientFrom is an HTTPS client of the PKI that dials every request on a
// new connection (so round robin alternates instances) from the loopback
// address src, and addresses every request to addr.
func (p *pki) clientFrom(src, addr string) *http.Client {
	c := p.httpsClient()
	tr := c.Transport.(*http.Transport)
	tr.DisableKeepAlives = true
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return c
}

func clusterPost(t *testing.T, c *http.Client, addr, clientIP, body string) int {
	t.Helper()
	resp, err := c.Post(callbackURL(addr, clientIP), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// callbackLogs returns the debug "callback" log lines of an instance.
func callbackLogs(p *proc) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "callback" {
			out = append(out, m)
		}
	}
	return out
}

// deliveries counts every delivery the sink received, copies of one event
// included (s.count counts distinct event ids).
func deliveries(s *sink) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.bodies {
		n += len(b)
	}
	return n
}

func hasLog(p *proc, msg string) bool { return strings.Contains(p.stderr.String(), msg) }

// TestCluster_TwoInstancesBehindHAProxy runs the deployment of
// docs/deploy.md on loopback: one redis-server, two imedge processes, and
// haproxy in TCP mode with send-proxy-v2 in front, the client dialling
// from 127.0.0.55.
func TestCluster_TwoInstancesBehindHAProxy(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	rds := startRedisServer(t)
	dir := t.TempDir()
	args := func(name string) []string {
		return append(baseArgs(p, s.srv.URL+"/im", filepath.Join(dir, name), filepath.Join(dir, name+"-audit.log")),
			"--redis-url", "redis://127.0.0.1:"+strconv.Itoa(rds.port), "--redis-timeout", "1s",
			"--proxy-protocol", "127.0.0.1/32", "--rate", "0.01", "--burst", "3", "--log-level", "debug")
	}
	a := start(t, args("a")...)
	b := start(t, args("b")...)
	lb := startHAProxy(t, a.addr, b.addr)
	client := p.clientFrom("127.0.0.55", lb)

	// 1. The same callback, retried through the balancer until both
	// instances have received a copy (the balancer decides where each
	// connection goes), is forwarded once. ClientIP varies so the rate
	// limit stays out of the way; the event id covers only app, command and
	// body.
	body := friendDeleteBody("alice", "bob")
	for i := 1; i <= 20 && (len(callbackLogs(a)) == 0 || len(callbackLogs(b)) == 0); i++ {
		require.Equal(t, http.StatusOK, clusterPost(t, client, lb, fmt.Sprintf("203.0.113.%d", 100+i), body), "every copy is acknowledged")
		require.Eventually(t, func() bool { return len(callbackLogs(a))+len(callbackLogs(b)) == i }, 10*time.Second, 10*time.Millisecond,
			"the access line follows the reply")
	}
	ca, cb := callbackLogs(a), callbackLogs(b)
	require.NotEmpty(t, ca, "instance a received a copy")
	require.NotEmpty(t, cb, "instance b received a copy")
	for _, m := range append(ca, cb...) {
		assert.True(t, strings.HasPrefix(m["remote_addr"].(string), "127.0.0.55:"), "the instance sees the client, not haproxy: %v", m["remote_addr"])
	}
	require.Eventually(t, func() bool { return deliveries(s) == 1 }, 10*time.Second, 20*time.Millisecond, "the event reaches the sink")
	// No second delivery can follow: across both instances exactly one copy
	// was stored, every other was answered as a duplicate.
	accepted := func() float64 {
		return metric(scrapeMetrics(t, "http://"+a.adminAddr(t)), "imedge_requests_total", "outcome", "accepted") +
			metric(scrapeMetrics(t, "http://"+b.adminAddr(t)), "imedge_requests_total", "outcome", "accepted")
	}
	assert.Equal(t, 1.0, accepted(), "the copies on both instances were one event")
	assert.Equal(t, 1, deliveries(s))

	// 2. One ClientIP's budget (burst 3) is shared by both instances: two
	// callbacks to a, then two to b, sent directly (127.0.0.55 is not a
	// trusted balancer, so it is served without a PROXY header).
	direct := func(inst *proc) *http.Client { return p.clientFrom("127.0.0.55", inst.addr) }
	var codes []int
	for i, inst := range []*proc{a, a, b, b} {
		codes = append(codes, clusterPost(t, direct(inst), inst.addr, "203.0.113.2", friendDeleteBody("carol", fmt.Sprint("dave", i))))
	}
	assert.Equal(t, []int{200, 200, 200, 429}, codes, "three in total pass across both instances, the fourth is limited")

	// 3. A refusal made through the balancer is audited with the real
	// client's address, and so is the direct one.
	require.Equal(t, http.StatusBadRequest, clusterPost(t, client, lb, "203.0.113.3", `{"CallbackCommand":`))
	var viaLB []map[string]any
	require.Eventually(t, func() bool {
		viaLB = viaLB[:0]
		for _, name := range []string{"a", "b"} {
			for _, r := range auditRecords(t, filepath.Join(dir, name+"-audit.log")) {
				if r["reason"] == "bad_json" {
					viaLB = append(viaLB, r)
				}
			}
		}
		return len(viaLB) == 1
	}, 5*time.Second, 20*time.Millisecond, "one bad_json audit record")
	assert.True(t, strings.HasPrefix(viaLB[0]["remote_addr"].(string), "127.0.0.55:"), "audit remote_addr through haproxy: %v", viaLB[0]["remote_addr"])
	var limited []map[string]any
	for _, name := range []string{"a", "b"} {
		for _, r := range auditRecords(t, filepath.Join(dir, name+"-audit.log")) {
			if r["reason"] == "rate_limited" {
				limited = append(limited, r)
			}
		}
	}
	require.Len(t, limited, 1)
	for _, name := range []string{"a", "b"} {
		for _, r := range auditRecords(t, filepath.Join(dir, name+"-audit.log")) {
			assert.NotEqual(t, "proxy_refused", r["reason"], "haproxy's connections and health checks are not refused: %v", r)
		}
	}
	assert.True(t, strings.HasPrefix(limited[0]["remote_addr"].(string), "127.0.0.55:"), "audit remote_addr: %v", limited[0]["remote_addr"])

	// 4. Redis killed (fail-open, the default): callbacks are still
	// acknowledged and forwarded, from each instance's local state.
	rds.stop()
	before := deliveries(s)
	for i := range 2 {
		require.Equal(t, http.StatusOK, clusterPost(t, client, lb, "203.0.113.3", friendDeleteBody("erin", fmt.Sprint("frank", i))))
	}
	require.Eventually(t, func() bool { return deliveries(s) == before+2 }, 10*time.Second, 20*time.Millisecond, "callbacks acknowledged while redis is down are delivered")
	assert.True(t, hasLog(a, "redis unavailable") || hasLog(b, "redis unavailable"), "the switch to local state is logged")

	// 5. Redis back: the shared mode resumes (a fresh Redis has no keys, so
	// check with a new callback).
	rds.run()
	require.Eventually(t, func() bool {
		return hasLog(a, "redis reachable again") && hasLog(b, "redis reachable again")
	}, 10*time.Second, 20*time.Millisecond, "both instances see redis back")
	acceptedBefore := accepted()
	before = deliveries(s)
	body = friendDeleteBody("grace", "heidi")
	require.Equal(t, http.StatusOK, clusterPost(t, client, lb, "203.0.113.4", body))
	require.Equal(t, http.StatusOK, clusterPost(t, client, lb, "203.0.113.4", body))
	require.Eventually(t, func() bool { return deliveries(s) == before+1 }, 10*time.Second, 20*time.Millisecond, "the event reaches the sink")
	assert.Equal(t, acceptedBefore+1, accepted(), "shared dedupe again: stored once")
	assert.Equal(t, before+1, deliveries(s))

	a.stop(t)
	b.stop(t)
}

// TestCluster_FailClosedRefusesWhileRedisIsDown checks --redis-policy
// fail-closed: 503 redis_unavailable (audited) while Redis is down, then
// normal service when it returns.
func TestCluster_FailClosedRefusesWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	// With a rate limit the limiter meets Redis first; without, the dedupe
	// check does: both must refuse.
	for _, rate := range []string{"20", "0"} {
		t.Run("rate="+rate, func(t *testing.T) { failClosed(t, rate) })
	}
}

func failClosed(t *testing.T, rate string) {
	p := newPKI(t)
	s := newSink(t)
	rds := startRedisServer(t)
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	im := start(t, append(baseArgs(p, s.srv.URL+"/im", filepath.Join(dir, "state"), auditLog),
		"--redis-url", "redis://127.0.0.1:"+strconv.Itoa(rds.port), "--redis-timeout", "1s", "--redis-policy", "fail-closed", "--rate", rate)...)
	client := p.httpsClient()

	require.Equal(t, http.StatusOK, clusterPost(t, client, im.addr, "203.0.113.1", friendDeleteBody("a", "b")))
	rds.stop()
	for i := range 2 {
		assert.Equal(t, http.StatusServiceUnavailable, clusterPost(t, client, im.addr, "203.0.113.1", friendDeleteBody("c", fmt.Sprint("d", i))),
			"fail-closed refuses, so IM retries")
	}
	var refused []map[string]any
	for _, r := range auditRecords(t, auditLog) {
		if r["reason"] == "redis_unavailable" {
			refused = append(refused, r)
		}
	}
	assert.Len(t, refused, 2, "each refusal is audited")

	rds.run()
	require.Eventually(t, func() bool { return hasLog(im, "redis reachable again") }, 10*time.Second, 20*time.Millisecond, "redis seen back")
	require.Equal(t, http.StatusOK, clusterPost(t, client, im.addr, "203.0.113.1", friendDeleteBody("c", "d0")), "the retry succeeds")
	require.Eventually(t, func() bool { return deliveries(s) == 2 }, 10*time.Second, 20*time.Millisecond, "both acknowledged events delivered, none of the refused ones")
	im.stop(t)
}
