package receiver

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// mtlsServer starts the handler behind a real TLS listener on loopback.
func mtlsServer(t *testing.T, h http.Handler, ca *certstest.CA, auth tls.ClientAuthType) *httptest.Server {
	t.Helper()
	srvCert := ca.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{certstest.TLSCertificate(t, srvCert)},
		ClientAuth:   auth,
		ClientCAs:    certstest.Pool(ca),
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// mtlsClient trusts ca and presents cert when it is not nil.
func mtlsClient(t *testing.T, ca *certstest.CA, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certstest.Pool(ca)}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func post(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/?"+goodQuery, strings.NewReader(goodBody))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestHandler_MutualTLS_IdentityReachesEvent(t *testing.T) {
	ca := certstest.NewCA(t)
	for _, tc := range []struct {
		name     string
		opts     []certstest.Option
		identity func(*certs.Issued) string
	}{
		{"URI SAN ECDSA", []certstest.Option{certstest.Client("spiffe://tencent.im/callback")}, func(*certs.Issued) string { return "spiffe://tencent.im/callback" }},
		{"DNS SAN RSA", []certstest.Option{certstest.Client("im.tencent.test"), certstest.RSA()}, func(*certs.Issued) string { return "im.tencent.test" }},
		{"CN only", []certstest.Option{certstest.Usage(certs.UsageClient), certstest.CommonName("TencentQQ")}, func(*certs.Issued) string { return "TencentQQ" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Now = nil })
			srv := mtlsServer(t, f.h, ca, tls.RequireAndVerifyClientCert)
			cli := ca.Issue(t, tc.opts...)
			cert := certstest.TLSCertificate(t, cli)
			c := mtlsClient(t, ca, &cert)

			resp, body := post(t, c, srv.URL)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, okJSON, body)
			assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))

			got := f.sink.got()
			require.Len(t, got, 1)
			assert.Equal(t, tc.identity(cli), got[0].Identity)
			assert.Equal(t, certs.CertFingerprint(cli.Cert), got[0].CertSHA256)
			assert.Equal(t, []byte(goodBody), got[0].Body)
			assert.Equal(t, resp.Header.Get("X-Request-Id"), got[0].RequestID)
			assert.Empty(t, f.audit.records(t))

			// A second callback on the same (kept-alive) connection.
			resp2, _ := post(t, c, srv.URL)
			assert.Equal(t, http.StatusOK, resp2.StatusCode)
			assert.NotEqual(t, resp.Header.Get("X-Request-Id"), resp2.Header.Get("X-Request-Id"))
		})
	}
}

func TestHandler_MutualTLS_NoClientCertificate(t *testing.T) {
	ca := certstest.NewCA(t)
	f := newFixture(t, func(o *Options) { o.Now = nil })
	srv := mtlsServer(t, f.h, ca, tls.RequestClientCert)
	c := mtlsClient(t, ca, nil)

	resp, body := post(t, c, srv.URL)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, failJSON(audit.NoIdentity), body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Empty(t, f.sink.got())
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.NoIdentity), recs[0]["reason"])
	assert.Contains(t, recs[0]["remote_addr"], "127.0.0.1:")
	assert.Nil(t, recs[0]["cert_sha256"])
}

func TestHandler_MutualTLS_AuditCarriesCertificate(t *testing.T) {
	ca := certstest.NewCA(t)
	f := newFixture(t, func(o *Options) { o.Now = nil; o.AppID = "42" })
	srv := mtlsServer(t, f.h, ca, tls.RequireAndVerifyClientCert)
	cli := ca.Issue(t, certstest.Client("spiffe://tencent.im/callback"))
	cert := certstest.TLSCertificate(t, cli)

	resp, body := post(t, mtlsClient(t, ca, &cert), srv.URL) // goodQuery's SdkAppid is not 42
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, failJSON(audit.BadAppID), body)
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, certs.CertFingerprint(cli.Cert), recs[0]["cert_sha256"])
	assert.Equal(t, certs.SerialHex(cli.Cert), recs[0]["cert_serial"])
	assert.Equal(t, cli.Cert.Subject.String(), recs[0]["cert_subject"])
	assert.Equal(t, testAppID, recs[0]["sdkappid"])
	assert.Equal(t, CommandFriendDelete, recs[0]["command"])
	assert.Equal(t, "127.0.0.1", recs[0]["client_ip"])
}
