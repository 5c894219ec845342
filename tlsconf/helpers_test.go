package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
)

// lockedBuffer is an io.Writer safe for the server's handshake goroutines.
type lockedBuffer struct{ testkit.SyncBuffer }

// lines parses the JSON lines written so far.
func (l *lockedBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	return testkit.JSONLines(t, l.String())
}

// fakeClock is the tests' one fake clock.
type fakeClock = testkit.Clock

func newFakeClock(t time.Time) *fakeClock { return testkit.NewClock(t) }

// env is a Source serving a real httptest TLS server on loopback.
type env struct {
	t        testing.TB
	dir      string
	serverCA *certstest.CA
	server   *certs.Issued // the leaf written at start
	opts     Options
	src      *Source
	srv      *httptest.Server
	audit    *lockedBuffer
	log      *lockedBuffer
}

// newEnv writes a server certificate (localhost, 127.0.0.1) and the given
// client-CA bundle into a temp dir, lets mutate adjust the Options, and
// starts the Source and the server.
func newEnv(t testing.TB, clientCAs []*certstest.CA, mutate func(dir string, o *Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), serverCA: certstest.NewCA(t), audit: &lockedBuffer{}, log: &lockedBuffer{}}
	e.server = e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	e.opts = Options{
		CertFile: filepath.Join(e.dir, "server.pem"),
		KeyFile:  filepath.Join(e.dir, "server.key"),
		Audit:    audit.New(e.audit, audit.Options{}),
		Logger:   slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	require.NoError(t, certs.WriteIssued(e.server, e.opts.CertFile, e.opts.KeyFile))
	if len(clientCAs) > 0 {
		e.opts.ClientCAFile = filepath.Join(e.dir, "client-cas.pem")
		certstest.WriteBundle(t, e.opts.ClientCAFile, clientCAs...)
	}
	if mutate != nil {
		mutate(e.dir, &e.opts)
	}
	src, err := New(t.Context(), e.opts)
	require.NoError(t, err)
	t.Cleanup(src.Close)
	e.src = src

	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	e.srv.TLS = src.ServerConfig()
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// clientConfig trusts the server CA and presents cert (nil: none).
func (e *env) clientConfig(cert *certs.Issued) *tls.Config {
	cfg := &tls.Config{RootCAs: certstest.Pool(e.serverCA)}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{certstest.TLSCertificate(e.t, cert)}
	}
	return cfg
}

// client returns an HTTP client using cfg; keepAlive false makes every
// request a new TLS connection.
func (e *env) client(cfg *tls.Config, keepAlive bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: !keepAlive}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get performs one request and returns the served leaf and DidResume, or
// the error.
func (e *env) get(c *http.Client) (*x509.Certificate, bool, error) {
	resp, err := c.Get(e.srv.URL)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, err
	}
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.Equal(e.t, "ok", string(body))
	require.NotNil(e.t, resp.TLS)
	require.NotEmpty(e.t, resp.TLS.PeerCertificates)
	return resp.TLS.PeerCertificates[0], resp.TLS.DidResume, nil
}

// records returns the audit records written so far.
func (e *env) records() []map[string]any { return e.audit.lines(e.t) }

// writeIssued replaces the server certificate and key on disk (each file
// by atomic rename).
func (e *env) writeServer(i *certs.Issued) {
	e.t.Helper()
	require.NoError(e.t, certs.WriteIssued(i, e.opts.CertFile, e.opts.KeyFile))
}

// writeCRLPEM writes der as a PEM "X509 CRL" file.
func writeCRLPEM(t testing.TB, path string, der []byte) {
	t.Helper()
	require.NoError(t, certs.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644))
}

// writeCRLDER writes der as is.
func writeCRLDER(t testing.TB, path string, der []byte) {
	t.Helper()
	require.NoError(t, certs.WriteFileAtomic(path, der, 0o644))
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
}
