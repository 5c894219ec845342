package h1

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wait bounds every blocking step of a test: generous, so that a loaded
// machine does not fail a test, and finite, so that a broken server does.
const wait = 5 * time.Second

// serveOn runs s.Serve(ln) until the test ends, then closes s and checks
// that Serve returned http.ErrServerClosed.
func serveOn(t testing.TB, s *Server, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, http.ErrServerClosed)
		case <-time.After(wait):
			t.Error("Serve did not return after Close")
		}
	})
}

// start serves s on a new loopback listener and returns its address.
func start(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveOn(t, s, ln)
	return ln.Addr().String()
}

// refusals records the calls to Server.Refused.
type refusals struct {
	mu  sync.Mutex
	got []Refusal
}

func (r *refusals) record(_ net.Conn, x Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, x)
}

func (r *refusals) list() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Refusal(nil), r.got...)
}

// rawClient is a TCP client writing exact bytes and reading replies.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

// dial connects to addr; every read and write must finish within wait.
func dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	_, err := io.WriteString(rc.c, s)
	require.NoError(rc.t, err)
}

// reply reads one response to a request of the given method and its whole
// body.
func (rc *rawClient) reply(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	require.NoError(rc.t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(rc.t, err)
	return resp, string(b)
}

// rawHead reads a response's status line and header lines as sent,
// without the blank line.
func (rc *rawClient) rawHead() []string {
	rc.t.Helper()
	var lines []string
	for {
		l, err := rc.br.ReadString('\n')
		require.NoError(rc.t, err)
		require.True(rc.t, strings.HasSuffix(l, "\r\n"), "CRLF line ending: %q", l)
		l = strings.TrimSuffix(l, "\r\n")
		if l == "" {
			return lines
		}
		lines = append(lines, l)
	}
}

// closed reports whether the server closed the connection: the next read
// ends (EOF, or a reset when the server closed with unread input) instead
// of returning data or timing out.
func (rc *rawClient) closed() bool {
	rc.t.Helper()
	b := make([]byte, 1)
	n, err := rc.br.Read(b)
	if n > 0 {
		rc.t.Logf("unexpected byte after the reply: %q", b[:n])
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// certs is a test PKI: a CA and a server and a client certificate it
// signed, all ECDSA P-256.
type certs struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newCerts(t testing.TB) *certs {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h1 test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		parsed, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &certs{
		pool:   pool,
		server: leaf(2, "h1 test server", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "h1 test client", x509.ExtKeyUsageClientAuth),
	}
}

// serverConfig requires a client certificate from the CA and offers the
// ALPN protocols given.
func (c *certs) serverConfig(protos ...string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.pool,
		NextProtos:   protos,
		MinVersion:   tls.VersionTLS12,
	}
}

// clientConfig presents the client certificate and offers the ALPN
// protocols given.
func (c *certs) clientConfig(protos ...string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.client},
		RootCAs:      c.pool,
		NextProtos:   protos,
		MinVersion:   tls.VersionTLS12,
	}
}
