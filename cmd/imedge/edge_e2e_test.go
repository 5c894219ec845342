package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
)

// slowPost starts an HTTP/1.1 callback over TLS that sends its headers and
// the first half of the body, and returns the connection and the rest of
// the body.
func slowPost(t *testing.T, p *pki, addr, clientIP string) (*tls.Conn, string) {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: certstest.Pool(p.ca), Certificates: []tls.Certificate{p.client},
		NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	t.Cleanup(func() { tc.Close() })
	body := friendDeleteBody("slow-"+clientIP, "friend")
	path := strings.TrimPrefix(callbackURL(addr, clientIP), "https://"+addr)
	_, err = io.WriteString(tc, "POST "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:len(body)/2])
	require.NoError(t, err)
	return tc, body[len(body)/2:]
}

// waitInProgress waits until imedge's handler is serving a request (the
// slow post's body is being read), as its admin metrics say.
func waitInProgress(t *testing.T, im *proc) {
	t.Helper()
	base := "http://" + im.adminAddr(t)
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_requests_in_progress") >= 1
	}, 10*time.Second, 20*time.Millisecond, "the slow request reaches the handler")
}

// waitExit waits up to d for the process to exit and returns how long it
// took and its error.
func waitExit(t *testing.T, p *proc, d time.Duration) (time.Duration, error) {
	t.Helper()
	began := time.Now()
	select {
	case err := <-p.done:
		p.done <- err
		return time.Since(began), err
	case <-time.After(d):
		t.Fatalf("imedge still running %s after SIGTERM; stderr:\n%s", d, p.stderr.String())
		return 0, nil
	}
}

// SIGTERM while a slow request is in flight: the request still completes
// with OK, and imedge then exits 0 without waiting for its full
// --shutdown-timeout; a client stuck before its TLS handshake does not
// hold the drain.
func TestShutdown_FinishesInFlightRequest(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--shutdown-timeout", "20s", "--read-timeout", "20s", "--handshake-timeout", "30s")...)

	stuck, err := net.Dial("tcp", im.addr) // never sends a ClientHello
	require.NoError(t, err)
	defer stuck.Close()
	tc, rest := slowPost(t, p, im.addr, "198.51.100.1")
	waitInProgress(t, im)

	began := time.Now()
	require.NoError(t, im.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), `"msg":"draining"`) }, 10*time.Second, 20*time.Millisecond, "draining logged")
	time.Sleep(500 * time.Millisecond) // well into the drain: long enough for a wrong drain to have closed the connection
	_, err = io.WriteString(tc, rest)
	require.NoError(t, err, "the in-flight connection is still open during the drain")
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, okReply, string(b))

	_, err = waitExit(t, im, 15*time.Second)
	require.NoError(t, err, "a clean drain exits 0; stderr:\n%s", im.stderr.String())
	assert.Less(t, time.Since(began), 15*time.Second, "did not wait for the 20s --shutdown-timeout")
	assert.True(t, closedOrReset(stuck), "the stuck pre-handshake connection was closed")
}

// A client that never finishes its body cannot hold shutdown beyond
// --shutdown-timeout: imedge closes it and exits.
func TestShutdown_StuckClientIsBoundedByTimeout(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--shutdown-timeout", "1s", "--read-timeout", "60s", "--read-header-timeout", "60s", "--write-timeout", "60s")...)
	tc, _ := slowPost(t, p, im.addr, "198.51.100.2") // never sends the rest
	waitInProgress(t, im)

	require.NoError(t, im.cmd.Process.Signal(syscall.SIGTERM))
	took, err := waitExit(t, im, 20*time.Second)
	t.Logf("exit %v after %s", err, took)
	assert.Less(t, took, 8*time.Second, "bounded by --shutdown-timeout (1s) plus the close")
	assert.GreaterOrEqual(t, took, 900*time.Millisecond, "the drain waited for the request first")
	assert.Contains(t, im.stderr.String(), `"msg":"draining"`)
	assert.True(t, closedOrReset(tc), "the stuck client's connection is closed")
}

func closedOrReset(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return err == nil || !isTimeout(err)
}

// The start log says which sandbox mode is active and why; under Landlock
// imedge still reopens its audit log after rotation and reloads
// certificates replaced by rename.
func TestSandbox_StartLogAndRotationUnderLandlock(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	auditLog := filepath.Join(dir, "log", "audit.log")
	require.NoError(t, os.MkdirAll(filepath.Dir(auditLog), 0o700))
	im := start(t, baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog)...)
	mode, line := sandboxLine(t, im.stderr.String())
	t.Logf("sandbox: %s", line)
	require.Contains(t, []string{"landlock", "unsupported"}, mode)

	// No certificate: one audit record; rotate the log; SIGUSR1; another.
	refuse := func() {
		if c, err := tls.Dial("tcp", im.addr, &tls.Config{RootCAs: certstest.Pool(p.ca)}); err == nil {
			_, _ = c.Read(make([]byte, 1)) // TLS 1.3: the refusal arrives after the client's Finished
			c.Close()
		}
	}
	refuse()
	require.Eventually(t, func() bool { return len(auditRecords(t, auditLog)) == 1 }, 10*time.Second, 20*time.Millisecond, "first record")
	require.NoError(t, os.Rename(auditLog, auditLog+".1"))
	require.NoError(t, im.cmd.Process.Signal(syscall.SIGUSR1))
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), "audit log reopened") }, 10*time.Second, 20*time.Millisecond, "audit log reopened under the sandbox; stderr:\n%s", im.stderr.String())
	refuse()
	require.Eventually(t, func() bool { return len(auditRecords(t, auditLog)) == 1 }, 10*time.Second, 20*time.Millisecond, "a record in the new file")

	// Rotate the server certificate by rename in its directory and reload.
	next := p.ca.WriteFiles(t, p.ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	for _, f := range [][2]string{{next.Cert, p.certFile}, {next.Key, p.keyFile}} {
		data, err := os.ReadFile(f[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f[1]+".new", data, 0o600))
		require.NoError(t, os.Rename(f[1]+".new", f[1]))
	}
	require.NoError(t, im.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), `"msg":"reloaded"`) }, 10*time.Second, 20*time.Millisecond, "reloaded under the sandbox; stderr:\n%s", im.stderr.String())
	im.stop(t)

	off := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state2"), filepath.Join(dir, "audit2.log")), "--no-sandbox")...)
	mode, _ = sandboxLine(t, off.stderr.String())
	assert.Equal(t, "off", mode)
	off.stop(t)
}

// sandboxLine finds the "sandbox" start log line and returns its mode.
func sandboxLine(t *testing.T, logs string) (string, string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "sandbox" {
			mode, _ := m["mode"].(string)
			return mode, line
		}
	}
	t.Fatalf("no sandbox line in:\n%s", logs)
	return "", ""
}

// HTTP/2 is served by default, with its stream limit; --http2=false makes
// imedge negotiate HTTP/1.1 only, and callbacks still work.
func TestEdge_HTTP2Switch(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	for _, tc := range []struct {
		args  []string
		proto string
	}{
		{nil, "HTTP/2.0"},
		{[]string{"--http2=false"}, "HTTP/1.1"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			sub := t.TempDir()
			im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(sub, "state"), filepath.Join(dir, "audit.log")), tc.args...)...)
			cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: certstest.Pool(p.ca), Certificates: []tls.Certificate{p.client}},
				ForceAttemptHTTP2: true,
			}}
			defer cl.CloseIdleConnections()
			resp, err := cl.Post(callbackURL(im.addr, "198.51.100.9"), "application/json",
				strings.NewReader(friendDeleteBody("h2-"+tc.proto, "b")))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tc.proto, resp.Proto)
			assert.JSONEq(t, okReply, string(b))
			im.stop(t)
		})
	}
}
