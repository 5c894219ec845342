package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const okReply = `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`

func TestE2E_CurlCallbackIsForwardedByteForByte(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		serve     []string // extra imedge flags
		curl      string   // curl's HTTP version flag
		wantProto string   // as curl reports it
	}{
		{"net/http over HTTP/2", nil, "--http2", "2"},
		{"net/http over HTTP/1.1", nil, "--http1.1", "1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) { curlByteForByte(t, tc.serve, tc.curl, tc.wantProto) })
	}
}

func curlByteForByte(t *testing.T, serve []string, curlProto, wantProto string) {
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	im := start(t, append(baseArgs(p, s.srv.URL+"/im", filepath.Join(dir, "state"), auditLog), serve...)...)

	// Unicode ids, an unknown field and mirrored pairs: forwarded exactly as sent.
	body := `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"张三","To_Account":"id2"},{"From_Account":"id2","To_Account":"张三"}],"Extra":{"k":[1,2]}}`
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "--max-time", "10", curlProto,
		"--cacert", p.caFile, "--cert", p.clientCert, "--key", p.clientKey,
		"-H", "Content-Type: application/json", "--data-binary", body,
		"-w", "\nproto=%{http_version}",
		callbackURL(im.addr, "36.112.173.178")+"&RequestId=2d1c5e4e").CombinedOutput()
	require.NoError(t, err, "curl: %s\nimedge:\n%s", out, im.stderr.String())
	reply, proto, _ := strings.Cut(string(out), "\nproto=")
	assert.JSONEq(t, okReply, reply)
	assert.Equal(t, wantProto, proto, "HTTP version curl used")

	var id string
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range s.bodies {
			id = k
		}
		return id != ""
	}, 10*time.Second, 20*time.Millisecond, "the event never reached the internal URL; imedge:\n%s", im.stderr.String())
	bodies, h := s.get(id)
	require.Len(t, bodies, 1)
	assert.Equal(t, body, string(bodies[0]), "the body arrives byte for byte")
	assert.Len(t, id, 64)
	assert.Equal(t, appID, h.Get("X-Imedge-Sdkappid"))
	assert.Equal(t, "36.112.173.178", h.Get("X-Imedge-Client-Ip"))
	assert.Equal(t, "iOS", h.Get("X-Imedge-Opt-Platform"))
	assert.Equal(t, "spiffe://tencent-im/callback", h.Get("X-Imedge-Client-Identity"))
	assert.Len(t, h.Get("X-Imedge-Client-Cert-Sha256"), 64)
	assert.Empty(t, auditRecords(t, auditLog), "an accepted callback is not audited")
	im.stop(t)
}

func TestE2E_RefusalsAreAudited(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	auditLog, accessLog := filepath.Join(dir, "audit.log"), filepath.Join(dir, "access.log")
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog), "--access-log", accessLog)...)

	// No client certificate: the handshake is refused and audited.
	out, err := exec.Command("curl", "-sS", "--max-time", "10", "--cacert", p.caFile,
		"--data-binary", friendDeleteBody("a", "b"), callbackURL(im.addr, "1.2.3.4")).CombinedOutput()
	require.Error(t, err, "curl without a client certificate must fail: %s", out)

	// Wrong app id: 403 with the FAIL JSON.
	cl := p.httpsClient()
	resp, err := cl.Post(strings.Replace(callbackURL(im.addr, "1.2.3.4"), appID, "1400009999", 1), "application/json",
		strings.NewReader(friendDeleteBody("a", "b")))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.JSONEq(t, `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"bad_sdkappid"}`, string(b))

	var reasons []string
	require.Eventually(t, func() bool {
		reasons = reasons[:0]
		for _, r := range auditRecords(t, auditLog) {
			reasons = append(reasons, fmt.Sprint(r["reason"]))
		}
		return len(reasons) >= 2
	}, 5*time.Second, 20*time.Millisecond, "expected two audit records")
	assert.ElementsMatch(t, []string{"tls_no_cert", "bad_sdkappid"}, reasons)
	for _, r := range auditRecords(t, auditLog) {
		assert.NotEmpty(t, r["remote_addr"], "every record names the peer: %v", r)
	}

	// The server keeps serving after both refusals.
	resp, err = cl.Post(callbackURL(im.addr, "1.2.3.4"), "application/json", strings.NewReader(friendDeleteBody("a", "b")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return s.count() == 1 }, 10*time.Second, 20*time.Millisecond, "accepted event not delivered")
	im.stop(t)

	// --access-log: one line per callback that reached HTTP, with its outcome.
	var outcomes []string
	for _, r := range auditRecords(t, accessLog) {
		outcomes = append(outcomes, fmt.Sprint(r["outcome"]))
		assert.Equal(t, "Sns.CallbackFriendDelete", r["command"])
	}
	assert.Equal(t, []string{"refused", "accepted"}, outcomes)
}

func TestE2E_BadConfigFailsWithOneLineNamingTheFile(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	other := newPKI(t)
	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("nothing here\n"), 0o644))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name     string
		cert     string
		key      string
		ca       string
		wantFile string
	}{
		{"missing cert", missing, p.keyFile, p.caFile, missing},
		{"key does not match", p.certFile, other.keyFile, p.caFile, other.keyFile},
		{"CA file without a certificate", p.certFile, p.keyFile, empty, empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, "serve", "--listen", "127.0.0.1:0", "--cert", tc.cert, "--key", tc.key,
				"--client-ca", tc.ca, "--sdkappid", appID, "--forward-url", "http://127.0.0.1:1/",
				"--state-dir", filepath.Join(t.TempDir(), "state"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			require.Error(t, err)
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, 1, ee.ExitCode())
			last := lastLine(stderr.String())
			assert.True(t, strings.HasPrefix(last, "imedge: "), "one clear line: %q", last)
			assert.Contains(t, last, tc.wantFile)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestE2E_ClientAuthNoneNeedsToken(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	cmd := exec.Command(binPath, "serve", "--cert", p.certFile, "--key", p.keyFile, "--client-auth", "none",
		"--sdkappid", appID, "--forward-url", "http://127.0.0.1:1/", "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "IMEDGE_TOKEN=")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "--client-auth=none is refused without a token")
}

func TestE2E_DevModeCurlCommandWorks(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), "dev")
	im := start(t, "serve", "--dev", "--dev-dir", devDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	var curlCmd string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`(?s)\n(curl .*?--data '[^']*')`).FindStringSubmatch(im.stdout.String())
		if m != nil {
			curlCmd = m[1]
		}
		return curlCmd != ""
	}, 5*time.Second, 20*time.Millisecond, "dev mode printed no curl command; stdout:\n%s", im.stdout.String())

	out, err := exec.Command("bash", "-c", curlCmd+" -sS --max-time 10").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.JSONEq(t, okReply, string(out))
	require.Eventually(t, func() bool { return strings.Contains(im.stdout.String(), "dev sink: event ") }, 10*time.Second, 20*time.Millisecond, "the dev sink printed no event; stdout:\n%s\nstderr:\n%s", im.stdout.String(), im.stderr.String())

	for _, k := range []string{"ca-key.pem", "server-key.pem", "client-key.pem"} {
		st, err := os.Stat(filepath.Join(devDir, k))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), k)
	}
	im.stop(t)
}

func TestE2E_CertsCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := func(n string) string { return filepath.Join(dir, n) }
	run := func(args ...string) string {
		out, err := exec.Command(binPath, args...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	run("certs", "ca", "--out-cert", j("ca.pem"), "--out-key", j("ca-key.pem"), "--cn", "Test Root")
	run("certs", "issue", "--ca-cert", j("ca.pem"), "--ca-key", j("ca-key.pem"), "--server",
		"--dns", "im.example.com", "--ip", "127.0.0.1", "--out-cert", j("srv.pem"), "--out-key", j("srv-key.pem"))
	run("certs", "issue", "--ca-cert", j("ca.pem"), "--ca-key", j("ca-key.pem"), "--client", "--key-type", "rsa-2048",
		"--uri", "spiffe://im/sender", "--out-cert", j("cli.pem"), "--out-key", j("cli-key.pem"))
	out := run("certs", "inspect", "--json", j("srv.pem"), j("cli.pem"))
	var infos []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &infos))
	require.Len(t, infos, 2)
	assert.Equal(t, []any{"im.example.com"}, infos[0]["dns_names"])
	assert.Equal(t, []any{"serverAuth"}, infos[0]["ext_key_usage"])
	assert.Equal(t, []any{"spiffe://im/sender"}, infos[1]["uris"])
	assert.Equal(t, []any{"clientAuth"}, infos[1]["ext_key_usage"])
	assert.Contains(t, run("certs", "inspect", j("ca.pem")), "CN=Test Root")
	for _, k := range []string{"ca-key.pem", "srv-key.pem", "cli-key.pem"} {
		st, err := os.Stat(j(k))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	}
	// openssl, an independent implementation, agrees with the chain.
	vout, err := exec.Command("openssl", "verify", "-CAfile", j("ca.pem"), "-purpose", "sslclient", j("cli.pem")).CombinedOutput()
	require.NoError(t, err, "%s", vout)
	assert.Contains(t, string(vout), "OK")
}

func TestE2E_Version(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binPath, "version").CombinedOutput()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), "imedge "), "%s", out)
}

// --pid-file holds the process id while imedge listens and is gone after a
// clean exit (the rotation scripts and init systems read it).
func TestServe_PIDFile(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	s := newSink(t)
	pidFile := filepath.Join(dir, "run", "imedge.pid")
	require.NoError(t, os.Mkdir(filepath.Dir(pidFile), 0o755))
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--pid-file", pidFile)...)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(im.cmd.Process.Pid)
	}, 10*time.Second, 20*time.Millisecond, "the pid file names the running process")
	im.stop(t)
	assert.NoFileExists(t, pidFile, "removed at exit")

	_, errOut, err := runBin(t, nil, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state2"), filepath.Join(dir, "a2.log")),
		"--pid-file", filepath.Join(dir, "missing-dir", "imedge.pid"))...)
	require.Error(t, err)
	assert.Contains(t, errOut, "--pid-file: directory of")
}
