package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/receiver"
)

// tokenOnlyArgs are serve flags for token authentication without client
// certificates, as Tencent gives new apps.
func tokenOnlyArgs(t *testing.T, p *pki, sinkURL, dir, token string) []string {
	t.Helper()
	tokenFile := filepath.Join(dir, "im.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	return []string{"serve", "--listen", "127.0.0.1:0", "--cert", p.certFile, "--key", p.keyFile,
		"--client-auth", "none", "--token-file", tokenFile, "--sdkappid", appID, "--forward-url", sinkURL,
		"--state-dir", filepath.Join(dir, "state"), "--audit-log", filepath.Join(dir, "audit.log"),
		"--retry-base", "20ms", "--retry-max", "200ms", "--audit-sample-interval", "0",
		"--admin-listen", "127.0.0.1:0"}
}

// Token only: a caller without a client certificate is accepted when its
// Sign is right and refused, audited, when it is missing, wrong or stale;
// the start log warns that the token alone authenticates, and warns again
// when no source restriction admits only IM.
func TestE2E_TokenOnly(t *testing.T) {
	t.Parallel()
	const token = "token-only-e2e-token"
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, tokenOnlyArgs(t, p, s.srv.URL, dir, token)...)

	noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(p.ca)}}}
	post := func(query string) (int, string) { return postFriendDelete(t, noCert, im.addr, "token-only", query) }
	signed := func(at time.Time) string { return signQuery(token, at) }

	code, body := post(signed(time.Now()))
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, okReply, body)
	id := receiver.EventID(appID, "Sns.CallbackFriendDelete", []byte(friendDeleteBody("token-only", "friend")))
	require.Eventually(t, func() bool { b, _ := s.get(id); return len(b) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the signed callback is delivered")
	_, hdr := s.get(id)
	assert.Empty(t, hdr.Get("X-Imedge-Client-Identity"), "no certificate, no identity")

	for _, c := range []struct {
		query, reason string
	}{
		{"", "missing_sign"},
		{"&Sign=" + strings.Repeat("0", 64) + "&RequestTime=" + strconv.FormatInt(time.Now().Unix(), 10), "bad_sign"},
		{signed(time.Now().Add(-10 * time.Minute)), "stale_sign"},
	} {
		code, body := post(c.query)
		assert.Equal(t, http.StatusUnauthorized, code, c.reason)
		assert.JSONEq(t, `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"`+c.reason+`"}`, body)
	}
	require.Eventually(t, func() bool { return len(auditRecords(t, filepath.Join(dir, "audit.log"))) >= 3 },
		10*time.Second, 20*time.Millisecond, "each refusal is audited")
	var reasons []string
	for _, r := range auditRecords(t, filepath.Join(dir, "audit.log")) {
		reasons = append(reasons, r["reason"].(string))
		assert.Equal(t, "10.0.0.9", r["client_ip"])
		assert.NotContains(t, r, "cert_sha256", "no certificate was presented")
	}
	assert.ElementsMatch(t, []string{"missing_sign", "bad_sign", "stale_sign"}, reasons)

	logs := im.stderr.String()
	assert.Contains(t, logs, "client certificates are NOT required")
	assert.Contains(t, logs, "any address may connect", "no --allow-source nor --im-egress: warned")
	assert.NotContains(t, logs, token, "the token is never logged")
	im.stop(t)

	// With a source restriction, the second warning goes.
	dir2 := t.TempDir()
	im2 := start(t, append(tokenOnlyArgs(t, p, s.srv.URL, dir2, token), "--allow-source", "127.0.0.1/32")...)
	code, _ = postFriendDelete(t, noCert, im2.addr, "token-only-2", signed(time.Now()))
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, im2.stderr.String(), "client certificates are NOT required")
	assert.NotContains(t, im2.stderr.String(), "any address may connect")
	im2.stop(t)
}

// postFriendDelete posts a friend-delete callback from account from, with
// ClientIP 10.0.0.9 and the query suffix (Sign, RequestTime), to addr.
func postFriendDelete(t *testing.T, c *http.Client, addr, from, query string) (int, string) {
	t.Helper()
	resp, err := c.Post(callbackURL(addr, "10.0.0.9")+query, "application/json",
		strings.NewReader(friendDeleteBody(from, "friend")))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
