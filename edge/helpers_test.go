package edge_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/internal/testkit"
)

// syncBuffer collects audit lines from concurrent writers.
type syncBuffer struct{ testkit.SyncBuffer }

// records parses the audit lines written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	return testkit.JSONLines(t, s.String())
}

// withReason returns the records with the given reason.
func (s *syncBuffer) withReason(t *testing.T, r audit.Reason) []map[string]any {
	var out []map[string]any
	for _, m := range s.records(t) {
		if m["reason"] == string(r) {
			out = append(out, m)
		}
	}
	return out
}

// env is a PKI, a TLS server config requiring client certificates, and an
// audit buffer.
type env struct {
	ca        *certstest.CA
	serverCfg *tls.Config
	client    tls.Certificate
	auditBuf  *syncBuffer
	aud       *audit.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ca := certstest.NewCA(t)
	cli := certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://im/test")))
	buf := &syncBuffer{}
	serverCfg := certstest.MutualServerTLS(t, ca, "localhost", "127.0.0.1")
	serverCfg.NextProtos = []string{"h2", "http/1.1"}
	return &env{
		ca:        ca,
		serverCfg: serverCfg,
		client:    cli,
		auditBuf:  buf,
		aud:       audit.New(buf, audit.Options{}),
	}
}

func (e *env) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: certstest.Pool(e.ca), Certificates: []tls.Certificate{e.client},
		ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// listen starts an edge Listener on 127.0.0.1 with o (TLSConfig and Audit
// filled in when empty). The listener is closed at cleanup.
func (e *env) listen(t *testing.T, o edge.Options) *edge.Listener {
	t.Helper()
	if o.TLSConfig == nil {
		o.TLSConfig = e.serverCfg
	}
	if o.Audit == nil {
		o.Audit = e.aud
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := edge.New(inner, o)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// serveHTTP runs an http.Server on l wired the way imedge wires it and
// returns it; it is shut down at cleanup.
func serveHTTP(t *testing.T, l *edge.Listener, h http.Handler, tune func(*http.Server)) *http.Server {
	t.Helper()
	srv := &http.Server{
		Handler:           edge.Observe(h),
		ConnContext:       edge.ConnContext,
		ConnState:         edge.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       10 * time.Second,
	}
	if tune != nil {
		tune(srv)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-errc
	})
	return srv
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// handshakeFrom completes a TLS handshake from src with cfg.
func handshakeFrom(t *testing.T, src, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c := dialFrom(t, src, addr)
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return tc, tc.HandshakeContext(ctx)
}

// closedByPeer reports whether the server closed c within d (a read returns
// EOF or a reset rather than timing out).
func closedByPeer(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if err == nil {
		return true // EOF
	}
	if ok := asNetErr(err, &ne); ok && ne.Timeout() {
		return false
	}
	return true
}

func asNetErr(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ActionStatus":"OK"}`)
	})
}

// httpClient makes an HTTP/1.1 client presenting e's client certificate
// from the loopback address src.
func (e *env) httpClient(src string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, TLSClientConfig: e.clientConfig(), DisableKeepAlives: !keepAlive,
		ForceAttemptHTTP2: false,
	}}
}
