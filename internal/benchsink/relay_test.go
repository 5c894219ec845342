package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
)

// startRun runs benchsink with args until the test ends and returns the
// address it listens on.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), &out, &errs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("benchsink did not stop")
		}
	})
	require.Eventually(t, func() bool { return strings.HasSuffix(out.String(), "\n") },
		10*time.Second, 5*time.Millisecond, "benchsink started: %s", errs.String())
	addr, ok := strings.CutPrefix(strings.TrimSpace(out.String()), "sink listening on ")
	require.True(t, ok, out.String())
	return addr
}

func TestRelay_RelaysBodyQueryAndReplyOverMutualTLS(t *testing.T) {
	var mu sync.Mutex
	var gotPath, gotQuery, gotBody string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotPath, gotQuery, gotBody = r.URL.Path, r.URL.RawQuery, string(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":1}`)
	}))
	t.Cleanup(upstream.Close)

	ca := certstest.NewCA(t)
	srv := ca.WriteFiles(t, ca.Issue(t, certstest.Server("127.0.0.1")))
	addr := startRun(t, "--tls-cert", srv.Cert, "--tls-key", srv.Key, "--client-ca", srv.CA, "--proxy", upstream.URL+"/decide")

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: certstest.Pool(ca), Certificates: []tls.Certificate{certstest.TLSCertificate(t, ca.Issue(t))},
	}}}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Post("https://"+addr+"/im?SdkAppid=1&CallbackCommand=C2C.CallbackBeforeSendMsg", "application/json",
		strings.NewReader(`{"From_Account":"a"}`))
	require.NoError(t, err)
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, "the target's status is relayed")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":1}`, string(reply), "the target's reply is relayed")
	mu.Lock()
	assert.Equal(t, "/decide", gotPath, "the target URL's path, not the caller's")
	assert.Equal(t, "SdkAppid=1&CallbackCommand=C2C.CallbackBeforeSendMsg", gotQuery, "the caller's query string is relayed")
	assert.Equal(t, `{"From_Account":"a"}`, gotBody)
	mu.Unlock()

	noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(ca)}}}
	_, err = noCert.Post("https://"+addr+"/im", "application/json", strings.NewReader(`{}`))
	assert.Error(t, err, "a caller without a client certificate is refused in the handshake")

	upstream.Close()
	resp, err = client.Post("https://"+addr+"/im", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "a target that cannot be reached")
}

func TestRelay_FlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--proxy", "https://127.0.0.1:1/x"}, "want an http:// URL"},
		{[]string{"--proxy", "http://127.0.0.1:1/x?a=1"}, "without a query"},
		{[]string{"--client-ca", "ca.pem"}, "--client-ca needs --tls-cert"},
	} {
		err := run(t.Context(), tc.args, io.Discard, io.Discard)
		if assert.Error(t, err, "%v", tc.args) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}
