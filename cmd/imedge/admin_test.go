package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// adminAddr returns the address from imedge's "admin listening" log line.
func (p *proc) adminAddr(t *testing.T) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "admin listening" {
				addr, _ = m["addr"].(string)
				return addr != ""
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "imedge logs \"admin listening\" with its addr; stderr:\n%s", p.stderr.String())
	return addr
}

// adminGet fetches url and returns the status code and body.
func adminGet(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// readyChecks fetches /readyz and returns its status and each check's error
// ("" for a passing check).
func readyChecks(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	code, b := adminGet(t, http.DefaultClient, base+"/readyz")
	var rd struct {
		Ready  bool `json:"ready"`
		Checks []struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(b, &rd), "/readyz answers JSON: %s", b)
	assert.Equal(t, code == http.StatusOK, rd.Ready)
	out := map[string]string{}
	for _, c := range rd.Checks {
		assert.Equal(t, c.OK, c.Error == "", "check %s: ok iff no error", c.Name)
		out[c.Name] = c.Error
	}
	return code, out
}

// scrapeMetrics fetches /metrics and parses it with the Prometheus text parser.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := adminGet(t, http.DefaultClient, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	require.NoError(t, err, "/metrics parses:\n%s", b)
	return fams
}

// metric sums the samples of name whose labels include the given pairs (a
// histogram contributes its sample count).
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	fam, ok := fams[name]
	if !ok {
		return -1
	}
	sum := 0.0
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return sum
}

func postCallback(t *testing.T, c *http.Client, url, body string) int {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestAdmin_E2E_EndpointsAndMetrics(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log"))...)
	base := "http://" + im.adminAddr(t)

	code, b := adminGet(t, http.DefaultClient, base+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", string(b))
	code, c := readyChecks(t, base)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, map[string]string{"tls": "", "outbox": "", "draining": ""}, c)

	before := scrapeMetrics(t, base)
	assert.Equal(t, 0.0, metric(before, "imedge_requests_total", "outcome", "accepted"))
	assert.Equal(t, 0.0, metric(before, "imedge_requests_rejected_total", "reason", "bad_sdkappid"))
	assert.Equal(t, 0.0, metric(before, "imedge_tls_handshake_failures_total", "reason", "tls_no_cert"))

	cli := p.httpsClient()
	assert.Equal(t, http.StatusOK, postCallback(t, cli, callbackURL(im.addr, "10.1.0.1"), friendDeleteBody("alice", "bob")))
	assert.Equal(t, http.StatusOK, postCallback(t, cli, callbackURL(im.addr, "10.1.0.1"), friendDeleteBody("alice", "carol")))
	bad := strings.Replace(callbackURL(im.addr, "10.1.0.2"), "SdkAppid="+appID, "SdkAppid=1400000999", 1)
	assert.Equal(t, http.StatusForbidden, postCallback(t, cli, bad, friendDeleteBody("alice", "bob")))
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(p.ca)}}}
	_, err := noCert.Post(callbackURL(im.addr, "10.1.0.3"), "application/json", strings.NewReader(friendDeleteBody("a", "b")))
	require.Error(t, err, "no client certificate: refused at the handshake")
	require.Eventually(t, func() bool { return s.count() == 2 }, 10*time.Second, 20*time.Millisecond, "both events delivered")

	var after map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		after = scrapeMetrics(t, base)
		return metric(after, "imedge_delivery_successes_total") == 2 && metric(after, "imedge_outbox_pending_events") == 0
	}, 10*time.Second, 20*time.Millisecond, "both events delivered and out of the outbox")
	assert.Equal(t, 2.0, metric(after, "imedge_requests_total", "outcome", "accepted"))
	assert.Equal(t, 1.0, metric(after, "imedge_requests_total", "outcome", "rejected"))
	assert.Equal(t, 1.0, metric(after, "imedge_requests_rejected_total", "reason", "bad_sdkappid"))
	assert.Equal(t, 1.0, metric(after, "imedge_tls_handshake_failures_total", "reason", "tls_no_cert"))
	assert.Equal(t, 3.0, metric(after, "imedge_tls_requests_total", "client_cert", "verified"))
	assert.Equal(t, 2.0, metric(after, "imedge_request_duration_seconds", "code", "200"))
	assert.Equal(t, 1.0, metric(after, "imedge_answer_duration_seconds", "code", "403"))
	assert.Equal(t, 2.0, metric(after, "imedge_delivery_duration_seconds", "result", "success"))
	assert.Equal(t, 0.0, metric(after, "imedge_outbox_pending_events"))
	assert.Equal(t, 2.0, metric(after, "imedge_dedupe_keys"))
	assert.Equal(t, 1.0, metric(after, "imedge_ratelimit_keys"))
	assert.Equal(t, 1.0, metric(after, "imedge_ready"))

	serverCert, err := certs.LoadCertificates(p.certFile)
	require.NoError(t, err)
	code, b = adminGet(t, http.DefaultClient, base+"/status")
	require.Equal(t, http.StatusOK, code)
	var st struct {
		Version string `json:"version"`
		TLS     struct {
			ServerCert struct {
				SHA256   string    `json:"sha256"`
				NotAfter time.Time `json:"not_after"`
			} `json:"server_cert"`
			ClientCAs []struct {
				SHA256 string `json:"sha256"`
			} `json:"client_cas"`
		} `json:"tls"`
		Outbox struct {
			Pending     int `json:"pending"`
			DeadLetters int `json:"dead_letters"`
		} `json:"outbox"`
		Callbacks struct {
			Accepted int `json:"accepted"`
		} `json:"callbacks"`
	}
	require.NoError(t, json.Unmarshal(b, &st), "%s", b)
	assert.Equal(t, certs.CertFingerprint(serverCert[0]), st.TLS.ServerCert.SHA256, "rotation scripts read .tls.server_cert.sha256")
	assert.True(t, st.TLS.ServerCert.NotAfter.Equal(serverCert[0].NotAfter))
	assert.Len(t, st.TLS.ClientCAs, 1)
	assert.Equal(t, 2, st.Callbacks.Accepted)
	assert.True(t, strings.HasPrefix(st.Version, "imedge "), st.Version)

	code, _ = adminGet(t, http.DefaultClient, base+"/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code, "pprof stays off without --admin-pprof")
	im.stop(t)
}

// A callback held in flight (its handler waits for the rest of the body)
// keeps the drain going; meanwhile /readyz says 503 and /healthz 200, and the
// held callback still gets its answer.
func TestAdmin_E2E_ReadyzFlipsDuringDrain(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--shutdown-timeout", "30s", "--read-timeout", "30s")...)
	base := "http://" + im.adminAddr(t)
	code, _ := readyChecks(t, base)
	require.Equal(t, http.StatusOK, code)

	conn, err := tls.Dial("tcp", im.addr, &tls.Config{RootCAs: certstest.Pool(p.ca), Certificates: []tls.Certificate{p.client}, ServerName: "localhost"})
	require.NoError(t, err)
	defer conn.Close()
	body := friendDeleteBody("held", "request")
	u := strings.TrimPrefix(callbackURL(im.addr, "10.2.0.1"), "https://"+im.addr)
	_, err = io.WriteString(conn, "POST "+u+" HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "100 Continue", "the handler is reading the body: the request is in flight")
	_, err = br.ReadString('\n') // blank line after the interim response
	require.NoError(t, err)

	require.NoError(t, im.cmd.Process.Signal(os.Interrupt))
	require.Eventually(t, func() bool {
		code, c := readyChecks(t, base)
		return code == http.StatusServiceUnavailable && c["draining"] != "" && c["tls"] == "" && c["outbox"] == ""
	}, 10*time.Second, 20*time.Millisecond, "/readyz answers 503 with the draining check failing")
	code, _ = adminGet(t, http.DefaultClient, base+"/healthz")
	assert.Equal(t, http.StatusOK, code, "alive while draining")
	select {
	case err := <-im.done:
		im.done <- err
		t.Fatalf("imedge exited with a request in flight: %v", err)
	default:
	}

	_, err = io.WriteString(conn, body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the held callback is answered: %s", b)
	assert.Contains(t, string(b), `"ActionStatus":"OK"`)
	select {
	case err := <-im.done:
		im.done <- err
		assert.NoError(t, err, "clean exit after the drain; stderr:\n%s", im.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("imedge did not exit after the drain")
	}
}

// Root ignores directory permissions, so the outbox directory is made
// unusable by moving it away and putting a file in its place.
func TestAdmin_E2E_ReadyzFlipsWhenOutboxUnwritable(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	state := filepath.Join(dir, "state")
	im := start(t, baseArgs(p, s.srv.URL, state, filepath.Join(dir, "audit.log"))...)
	base := "http://" + im.adminAddr(t)
	code, _ := readyChecks(t, base)
	require.Equal(t, http.StatusOK, code)

	spool := filepath.Join(state, "outbox")
	require.NoError(t, os.Rename(spool, spool+".moved"))
	require.NoError(t, os.WriteFile(spool, []byte("not a directory"), 0o600))
	var checks map[string]string
	require.Eventually(t, func() bool {
		code, checks = readyChecks(t, base)
		return code == http.StatusServiceUnavailable
	}, 10*time.Second, 20*time.Millisecond, "/readyz answers 503 once the outbox directory is gone")
	assert.Contains(t, checks["outbox"], "not writable")
	assert.Empty(t, checks["tls"])
	assert.Empty(t, checks["draining"])
	assert.Equal(t, 0.0, metric(scrapeMetrics(t, base), "imedge_ready"))

	require.NoError(t, os.Remove(spool))
	require.NoError(t, os.Rename(spool+".moved", spool))
	require.Eventually(t, func() bool {
		code, _ := readyChecks(t, base)
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "ready again once the directory is back")
	im.stop(t)
}

func TestAdmin_E2E_NonLoopbackWithoutMTLSRefused(t *testing.T) {
	t.Parallel()
	p, dir := newPKI(t), t.TempDir()
	for _, addr := range []string{"0.0.0.0:0", ":9443", "192.0.2.1:9443", "[::]:0"} {
		t.Run(addr, func(t *testing.T) {
			args := append(baseArgs(p, "http://127.0.0.1:1/", filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
				"--admin-listen", addr)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a started imedge would run on
			defer cancel()
			out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
			require.NoError(t, ctx.Err(), "imedge started instead of refusing: %s", out)
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "imedge refuses to start: %s", out)
			assert.Equal(t, 1, ee.ExitCode())
			last := lastLine(string(out))
			assert.Contains(t, last, "is not a loopback address")
			assert.Contains(t, last, "--admin-client-ca")
		})
	}
	t.Run("half the mTLS flags", func(t *testing.T) {
		args := append(baseArgs(p, "http://127.0.0.1:1/", filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
			"--admin-listen", "0.0.0.0:0", "--admin-cert", p.certFile)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
		require.NoError(t, ctx.Err(), "imedge started instead of refusing: %s", out)
		require.Error(t, err)
		assert.Contains(t, lastLine(string(out)), "go together")
	})
}

func TestAdmin_E2E_MutualTLS(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--admin-cert", p.certFile, "--admin-key", p.keyFile, "--admin-client-ca", p.caFile)...)
	addr := im.adminAddr(t)

	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "no plain HTTP on an mTLS admin listener")
	}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(p.ca)}}}
	_, err := noCert.Get("https://" + addr + "/healthz")
	assert.Error(t, err, "no client certificate, no admin access")
	rogue := certstest.NewCA(t)
	rogueCert := certstest.TLSCertificate(t, rogue.Issue(t, certstest.Client("spiffe://rogue/admin")))
	rogueCli := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: certstest.Pool(p.ca), Certificates: []tls.Certificate{rogueCert}}}}
	_, err = rogueCli.Get("https://" + addr + "/healthz")
	assert.Error(t, err, "a certificate from another CA is refused")

	code, b := adminGet(t, p.httpsClient(), "https://"+addr+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", string(b))
	im.stop(t)
}

func TestAdmin_E2E_DisabledAndPprof(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	off := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "off"), filepath.Join(dir, "audit-off.log")), "--admin-listen", "")...)
	assert.Contains(t, off.stderr.String(), "admin listener off")
	assert.NotContains(t, off.stderr.String(), "admin listening")
	off.stop(t)

	on := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "on"), filepath.Join(dir, "audit-on.log")), "--admin-pprof")...)
	code, b := adminGet(t, http.DefaultClient, "http://"+on.adminAddr(t)+"/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(b), "goroutine")
	on.stop(t)
}

// repoRoot is the module root (cmd/imedge's grandparent).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// `make build` stamps the commit even though GOFLAGS here says
// -buildvcs=false; `imedge version` prints it.
func TestMakeBuild_StampsCommit(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"make", "git"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed (.ci/run installs it)", tool)
	}
	root := repoRoot(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "imedge")
	cmd := exec.Command("make", "-C", root, "build", "BIN="+bin)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make build: %s", out)
	v, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^imedge \S+ \(commit `+strings.TrimSpace(string(head))+`(\+dirty)?\)\n$`), string(v))
}

// systemd-analyze verify wants ExecStart's binary to exist, so it checks a
// copy of the unit whose ExecStart points at the binary built for these
// tests; everything else is verified as shipped. It prints problems (unknown
// keys, bad values) as warnings and still exits 0, so any output about the
// unit fails the test.
func TestSystemdUnit_Verifies(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze is needed (.ci/run installs the systemd package)")
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "imedge.service"))
	require.NoError(t, err)
	unit := string(b)

	directives := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, want := range map[string]string{
		"User": "imedge", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "StateDirectory": "imedge",
		"AmbientCapabilities": "CAP_NET_BIND_SERVICE", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"ExecReload": "/bin/kill -HUP $MAINPID", "PrivateTmp": "yes", "ProtectHome": "yes",
		"MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
	} {
		assert.Contains(t, directives[k], want, "%s=%s", k, want)
	}
	assert.Contains(t, directives["ReadWritePaths"], "/var/lib/imedge /var/log/imedge")
	assert.Contains(t, directives["SystemCallFilter"], "@system-service")
	require.Len(t, directives["ExecStart"], 1)
	assert.Contains(t, directives["ExecStart"][0], "serve --config /etc/imedge/imedge.yaml")

	exec0 := strings.Fields(directives["ExecStart"][0])[0]
	copyDir := t.TempDir()
	path := filepath.Join(copyDir, "imedge.service")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart="+exec0, "ExecStart="+binPath, 1)), 0o644))
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		assert.NotContains(t, line, "imedge.service", "verify reports a problem with the unit")
	}
}

// The logrotate snippet, with its path moved into a temporary directory and
// its postrotate signalling the test's imedge instead of the systemd unit,
// parses (logrotate -d) and really rotates: imedge reopens its audit log and
// writes new records to the new file.
func TestLogrotateSnippet_RotatesTheAuditLog(t *testing.T) {
	t.Parallel()
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		logrotate, err = exec.LookPath("/usr/sbin/logrotate") // PATH without sbin
	}
	require.NoError(t, err, "logrotate is needed (.ci/run installs it)")
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "logrotate", "imedge"))
	require.NoError(t, err)
	snippet := string(b)
	require.Contains(t, snippet, "/var/log/imedge/audit.log")
	require.Contains(t, snippet, "systemctl kill -s USR1 imedge.service")

	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	logDir := filepath.Join(dir, "log")
	require.NoError(t, os.Mkdir(logDir, 0o750))
	auditLog := filepath.Join(logDir, "audit.log")
	im := start(t, baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog)...)

	conf := strings.ReplaceAll(snippet, "/var/log/imedge/", logDir+"/")
	conf = strings.ReplaceAll(conf, "systemctl kill -s USR1 imedge.service", "kill -USR1 "+strconv.Itoa(im.cmd.Process.Pid))
	confPath := filepath.Join(dir, "imedge.logrotate")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))
	statePath := filepath.Join(dir, "logrotate.state")

	cli := p.httpsClient()
	bad := func(ip string) string {
		return strings.Replace(callbackURL(im.addr, ip), "SdkAppid="+appID, "SdkAppid=1400000999", 1)
	}
	require.Equal(t, http.StatusForbidden, postCallback(t, cli, bad("10.3.0.1"), friendDeleteBody("a", "b")))
	require.Len(t, auditRecords(t, auditLog), 1)

	out, err := exec.Command(logrotate, "-d", "-s", statePath, confPath).CombinedOutput()
	require.NoError(t, err, "logrotate -d: %s", out)
	assert.Contains(t, string(out), auditLog)
	assert.NotContains(t, strings.ToLower(string(out)), "error")

	out, err = exec.Command(logrotate, "-f", "-s", statePath, confPath).CombinedOutput()
	require.NoError(t, err, "logrotate -f: %s", out)
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), "audit log reopened") }, 10*time.Second, 20*time.Millisecond, "imedge reopens the audit log after the postrotate signal; stderr:\n%s", im.stderr.String())
	require.Equal(t, http.StatusForbidden, postCallback(t, cli, bad("10.3.0.2"), friendDeleteBody("c", "d")))

	rotated := auditRecords(t, auditLog+".1")
	require.Len(t, rotated, 1, "the old records moved to audit.log.1 (delaycompress leaves it plain)")
	assert.Equal(t, "10.3.0.1", rotated[0]["client_ip"])
	fresh := auditRecords(t, auditLog)
	require.Len(t, fresh, 1, "new records go to the new audit.log")
	assert.Equal(t, "10.3.0.2", fresh[0]["client_ip"])
	fi, err := os.Stat(auditLog)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	im.stop(t)
}
