package forward

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// verifySignature checks a Standard Webhooks signature from first
// principles, independently of Sign.
func verifySignature(t *testing.T, secret []byte, h http.Header, body []byte) {
	t.Helper()
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	require.NotEmpty(t, id)
	require.NotEmpty(t, ts)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	sig := h.Get("webhook-signature")
	require.True(t, strings.HasPrefix(sig, "v1,"), sig)
	got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
	require.NoError(t, err)
	assert.True(t, hmac.Equal(want, got), "signature verifies")
}

func TestClient_Deliver_BodyHeadersAndSignature(t *testing.T) {
	rawSecret := []byte("0123456789abcdef0123456789abcdef")
	recv := &internal{}
	srv := startInternal(t, recv)
	now := time.Unix(1_700_000_000, 0)
	c := newTestClient(t, ClientOptions{
		URL:           srv.URL + "/hooks/im?token=secret-query",
		SigningSecret: []byte("whsec_" + base64.StdEncoding.EncodeToString(rawSecret)),
		Now:           func() time.Time { return now },
	})

	ev := testEvent("hdr", 7)
	require.NoError(t, c.Deliver(t.Context(), ev, 3))

	got := recv.deliveries()
	require.Len(t, got, 1)
	d := got[0]
	assert.Equal(t, ev.Body, d.Body, "body byte for byte")
	h := d.Header
	assert.Equal(t, "application/json", h.Get("Content-Type"))
	assert.Equal(t, ev.ID, h.Get("X-Imedge-Event-Id"))
	assert.Equal(t, "1400000000", h.Get("X-Imedge-Sdkappid"))
	assert.Equal(t, "Sns.CallbackFriendDelete", h.Get("X-Imedge-Command"))
	assert.Equal(t, "203.0.113.7", h.Get("X-Imedge-Client-Ip"))
	assert.Equal(t, "iOS", h.Get("X-Imedge-Opt-Platform"))
	assert.Equal(t, "spiffe://tencent/im", h.Get("X-Imedge-Client-Identity"))
	assert.Equal(t, ev.CertSHA256, h.Get("X-Imedge-Client-Cert-Sha256"))
	assert.Equal(t, ev.RequestID, h.Get("X-Imedge-Request-Id"))
	assert.Equal(t, "2025-03-10T00:09:10.123456789Z", h.Get("X-Imedge-Received-At"))
	assert.Equal(t, "3", h.Get("X-Imedge-Attempt"))
	assert.Equal(t, ev.ID, h.Get("webhook-id"))
	assert.Equal(t, "1700000000", h.Get("webhook-timestamp"))
	verifySignature(t, rawSecret, h, d.Body)
	assert.Equal(t, Sign(rawSecret, ev.ID, now.Unix(), ev.Body), h.Get("webhook-signature"))
}

func TestClient_Deliver_RawSecretAndOmittedHeaders(t *testing.T) {
	secret := []byte("raw secret bytes, not whsec")
	recv := &internal{}
	srv := startInternal(t, recv)
	c := newTestClient(t, ClientOptions{URL: srv.URL, SigningSecret: secret})

	ev := testEvent("raw", 1)
	ev.OptPlatform, ev.Identity, ev.CertSHA256 = "", "", ""
	require.NoError(t, c.Deliver(t.Context(), ev, 1))
	d := recv.deliveries()[0]
	for _, k := range []string{HeaderOptPlatform, HeaderClientIdentity, HeaderClientCertSHA256} {
		_, present := d.Header[http.CanonicalHeaderKey(k)]
		assert.False(t, present, "%s omitted when empty", k)
	}
	verifySignature(t, secret, d.Header, d.Body)
	ts, err := strconv.ParseInt(d.Header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Unix(), ts, 60)
}

func TestClient_Deliver_UnsignedWithoutSecret(t *testing.T) {
	recv := &internal{}
	srv := startInternal(t, recv)
	c := newTestClient(t, ClientOptions{URL: srv.URL})
	require.NoError(t, c.Deliver(t.Context(), testEvent("unsigned", 1), 1))
	h := recv.deliveries()[0].Header
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		assert.Empty(t, h.Get(k))
	}
}

func TestClient_Deliver_ClassifiesAnswers(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		status     int
		retryAfter string
		wantErr    bool
		wantRA     time.Duration
	}{
		{name: "200", status: 200},
		{name: "204", status: 204},
		// The client never calls an answer permanent: the Dispatcher's
		// PermanentStatus decides.
		{name: "400", status: 400, wantErr: true},
		{name: "401", status: 401, wantErr: true},
		{name: "404", status: 404, wantErr: true},
		{name: "413", status: 413, wantErr: true},
		{name: "408 retried", status: 408, wantErr: true},
		{name: "429 retry-after seconds", status: 429, retryAfter: "7", wantErr: true, wantRA: 7 * time.Second},
		{name: "503 retry-after date", status: 503, retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat), wantErr: true, wantRA: 90 * time.Second},
		{name: "503 retry-after garbage", status: 503, retryAfter: "soon", wantErr: true},
		{name: "500 retried", status: 500, wantErr: true},
		{name: "500 ignores retry-after", status: 500, retryAfter: "9", wantErr: true},
		{name: "302 not followed, retried", status: 302, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hits int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits++
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("internal detail that must not leak"))
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, ClientOptions{URL: srv.URL, Now: func() time.Time { return now }})
			err := c.Deliver(t.Context(), testEvent("cls", 1), 1)
			assert.Equal(t, 1, hits)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			var de *DeliveryError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tc.status, de.StatusCode)
			assert.False(t, de.Permanent)
			assert.Equal(t, tc.wantRA, de.RetryAfter)
			assert.Contains(t, err.Error(), strconv.Itoa(tc.status))
			assert.NotContains(t, err.Error(), "internal detail")
		})
	}
}

func TestClient_Deliver_ConnectionRefusedHidesQuery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c := newTestClient(t, ClientOptions{URL: "http://" + addr + "/hook?key=hunter2"})
	err = c.Deliver(t.Context(), testEvent("refused", 1), 1)
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	assert.Zero(t, de.StatusCode)
	assert.False(t, de.Permanent)
	assert.Contains(t, err.Error(), "http://"+addr+"/hook")
	assert.NotContains(t, err.Error(), "hunter2")
	var op *net.OpError
	assert.ErrorAs(t, err, &op)
}

func TestClient_Deliver_TimeoutBoundsAnAttempt(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := newTestClient(t, ClientOptions{URL: srv.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := c.Deliver(t.Context(), testEvent("slow", 1), 1)
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	assert.False(t, de.Permanent)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// pki is a CA with a server certificate for the internal URL and a client
// certificate imedge presents to it, written to files.
type pki struct {
	ca                *certstest.CA
	srv               *certs.Issued
	caFile            string
	certFile, keyFile string
}

func newPKI(t *testing.T) pki {
	ca := certstest.NewCA(t)
	srv := ca.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	cli := ca.Issue(t, certstest.Client("spiffe://imedge/forwarder"))
	paths := ca.WriteFiles(t, cli)
	return pki{ca: ca, srv: srv, caFile: paths.CA, certFile: paths.Cert, keyFile: paths.Key}
}

func startMutualTLSInternal(t *testing.T, p pki, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{certstest.TLSCertificate(t, p.srv)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    certstest.Pool(p.ca),
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestClient_Deliver_MutualTLSOverHTTP2(t *testing.T) {
	p := newPKI(t)
	recv := &internal{}
	srv := startMutualTLSInternal(t, p, recv)

	c := newTestClient(t, ClientOptions{URL: srv.URL, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile, MaxConns: 8})
	for i := range 3 {
		require.NoError(t, c.Deliver(t.Context(), testEvent("mtls", i), 1))
	}
	got := recv.deliveries()
	require.Len(t, got, 3)
	for _, d := range got {
		assert.Equal(t, 2, d.Proto, "HTTP/2 negotiated over TLS")
	}

	t.Run("no client certificate", func(t *testing.T) {
		c := newTestClient(t, ClientOptions{URL: srv.URL, CAFile: p.caFile})
		err := c.Deliver(t.Context(), testEvent("mtls", 9), 1)
		var de *DeliveryError
		require.ErrorAs(t, err, &de)
		assert.False(t, de.Permanent, "a TLS failure is a configuration problem: keep the event")
	})
	t.Run("untrusted server", func(t *testing.T) {
		other := certstest.NewCA(t)
		otherFile := filepath.Join(t.TempDir(), "other.pem")
		other.WriteCA(t, otherFile)
		c := newTestClient(t, ClientOptions{URL: srv.URL, CAFile: otherFile, CertFile: p.certFile, KeyFile: p.keyFile})
		err := c.Deliver(t.Context(), testEvent("mtls", 10), 1)
		var uerr *tls.CertificateVerificationError
		require.True(t, errors.As(err, &uerr), "got %v", err)
	})
}

func TestNewClient_RejectsBadOptions(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name    string
		o       ClientOptions
		want    error
		mention string
	}{
		{name: "empty URL", o: ClientOptions{}, want: ErrInvalidOptions},
		{name: "ftp scheme", o: ClientOptions{URL: "ftp://example.com/x"}, want: ErrInvalidOptions, mention: "scheme"},
		{name: "no host", o: ClientOptions{URL: "http:///path"}, want: ErrInvalidOptions, mention: "host"},
		{name: "unparsable", o: ClientOptions{URL: "http://user:pa ss@[::1"}, want: ErrInvalidOptions},
		{name: "cert without key", o: ClientOptions{URL: "https://127.0.0.1", CertFile: p.certFile}, want: ErrInvalidOptions},
		{name: "missing CA file", o: ClientOptions{URL: "https://127.0.0.1", CAFile: "/nonexistent/ca.pem"}, mention: "/nonexistent/ca.pem"},
		{name: "key does not match", o: ClientOptions{URL: "https://127.0.0.1", CertFile: p.certFile, KeyFile: writeOtherKey(t)}, want: certs.ErrKeyMismatch},
		{name: "bad whsec", o: ClientOptions{URL: "http://127.0.0.1", SigningSecret: []byte("whsec_!!!not-base64-hunter2")}, want: ErrInvalidOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(tc.o)
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			if tc.mention != "" {
				assert.Contains(t, err.Error(), tc.mention)
			}
			assert.NotContains(t, err.Error(), "hunter2", "secrets stay out of errors")
			assert.NotContains(t, err.Error(), "pa ss")
		})
	}
}

func writeOtherKey(t *testing.T) string {
	other := certstest.NewCA(t).Issue(t, certstest.Client("other"))
	paths := certstest.NewCA(t).WriteFiles(t, other)
	return paths.Key
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":    0,
		"0":   0,
		"-5":  0,
		"1":   time.Second,
		" 30": 30 * time.Second,
		now.Add(2 * time.Minute).Format(http.TimeFormat): 2 * time.Minute,
		now.Add(-time.Minute).Format(http.TimeFormat):    0,
		"tomorrow": 0,
	}
	for in, want := range cases {
		assert.Equal(t, want, parseRetryAfter(in, now), "%q", in)
	}
}
