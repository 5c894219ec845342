package h1

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsServers serves a TLS listener offering h2 and http/1.1 with an h1
// Server whose Other hands h2 connections to a net/http server through a
// Handoff; both use handler h. It returns the listener's address.
func tlsServers(t *testing.T, pki *certs, h http.Handler) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := tls.NewListener(inner, pki.serverConfig("h2", "http/1.1"))

	handoff := NewHandoff(ln.Addr())
	std := &http.Server{Handler: h, ReadHeaderTimeout: wait}
	stdDone := make(chan error, 1)
	go func() { stdDone <- std.Serve(handoff) }()
	t.Cleanup(func() {
		std.Close()
		handoff.Close()
		select {
		case err := <-stdDone:
			assert.ErrorIs(t, err, http.ErrServerClosed)
		case <-time.After(wait):
			t.Error("net/http Serve did not return")
		}
	})
	serveOn(t, &Server{Handler: h, ReadHeaderTimeout: wait, Other: handoff.Put}, ln)
	return ln.Addr().String()
}

// httpsClient is an http.Client presenting the test client certificate;
// h2 makes it offer HTTP/2 by ALPN, otherwise it offers only http/1.1.
func httpsClient(t *testing.T, pki *certs, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: pki.clientConfig(), ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

// TestTLS_ALPN: a client that negotiates h2 is served by net/http through
// Other and the Handoff; one that negotiates http/1.1 is served by h1 over
// mutual TLS, with r.TLS holding the client's certificate.
func TestTLS_ALPN(t *testing.T) {
	t.Parallel()
	pki := newCerts(t)
	h, got := recorder()
	addr := tlsServers(t, pki, h)

	for _, tc := range []struct {
		name  string
		h2    bool
		major int
	}{
		{"h2 goes to Other", true, 2},
		{"http/1.1 stays", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := httpsClient(t, pki, tc.h2)
			for range 2 { // the second request reuses the connection
				resp, err := c.Post("https://"+addr+"/cb?x=1", "application/json", strings.NewReader(`{"a":1}`))
				require.NoError(t, err)
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, tc.major, resp.ProtoMajor)
				assert.Equal(t, "ok", string(b))

				r := <-got
				assert.Equal(t, tc.major, r.protoMajor)
				assert.Equal(t, `{"a":1}`, r.body)
				assert.Equal(t, "x=1", r.rawQuery)
				assert.True(t, r.tls, "r.TLS set")
				assert.Equal(t, "h1 test client", r.tlsPeerCN, "the client's certificate")
			}
		})
	}
}

// TestTLS_NoClientCertificate: a handshake the TLS config refuses ends the
// connection; the server goes on serving.
func TestTLS_NoClientCertificate(t *testing.T) {
	t.Parallel()
	pki := newCerts(t)
	h, _ := recorder()
	addr := tlsServers(t, pki, h)

	cfg := pki.clientConfig("http/1.1")
	cfg.Certificates = nil
	c, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		// TLS 1.3: the client learns of the refusal on its first read.
		require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		c.Close()
	}
	require.Error(t, err)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "refused, not left hanging: %v", err)

	resp, err := httpsClient(t, pki, false).Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	require.NoError(t, client.SetDeadline(time.Now().Add(wait)))
	return client, server
}

func TestHandoff(t *testing.T) {
	t.Parallel()
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}
	h := NewHandoff(addr)
	assert.Equal(t, addr, h.Addr())

	// Put waits for Accept and passes the connection through.
	client, server := tcpPair(t)
	put := make(chan struct{})
	go func() { h.Put(server); close(put) }()
	c, err := h.Accept()
	require.NoError(t, err)
	assert.Same(t, server, c)
	<-put

	// A Put waiting when the Handoff closes closes its connection.
	client2, server2 := tcpPair(t)
	put = make(chan struct{})
	go func() { h.Put(server2); close(put) }()
	require.NoError(t, h.Close())
	select {
	case <-put:
	case <-time.After(wait):
		t.Fatal("Put still waiting after Close")
	}
	_, err = client2.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "closed by Put")

	// After Close: Accept fails, Put closes at once, Close again is fine.
	_, err = h.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	client3, server3 := tcpPair(t)
	h.Put(server3)
	_, err = client3.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "closed by Put")
	assert.NoError(t, h.Close())

	// The first connection was not touched.
	_, err = io.WriteString(c, "still open")
	require.NoError(t, err)
	b := make([]byte, len("still open"))
	_, err = io.ReadFull(client, b)
	require.NoError(t, err)
	assert.Equal(t, "still open", string(b))
}

// TestTLS_SilentHandshake: a connection to a TLS listener that never
// starts its handshake is closed after the header timeout, unreported.
func TestTLS_SilentHandshake(t *testing.T) {
	t.Parallel()
	pki := newCerts(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rec := &refusals{}
	h, _ := recorder()
	s := &Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute, Refused: rec.record}
	serveOn(t, s, tls.NewListener(inner, pki.serverConfig("http/1.1")))
	rc := dial(t, inner.Addr().String())
	assert.True(t, rc.closed())
	assert.Empty(t, rec.list())
}

// plainView is a connection that reads and writes a TLS connection's
// plaintext and reports its state, as edge.Listener hands HTTP/1 ones over.
type plainView struct{ *tls.Conn }

// handshaken completes each connection's handshake and hands over a
// plainView of it.
type handshaken struct{ net.Listener }

func (l handshaken) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			tc.Close()
			continue
		}
		return plainView{tc}, nil
	}
}

// TestTLS_ConnectionStateFromAView: a connection that is not a *tls.Conn
// but has a ConnectionState method gets it as r.TLS, as with net/http.
func TestTLS_ConnectionStateFromAView(t *testing.T) {
	t.Parallel()
	pki := newCerts(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h, got := recorder()
	serveOn(t, &Server{Handler: h, ReadHeaderTimeout: wait},
		handshaken{tls.NewListener(inner, pki.serverConfig("http/1.1"))})

	resp, err := httpsClient(t, pki, false).Post("https://"+inner.Addr().String()+"/", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r := <-got
	assert.True(t, r.tls, "r.TLS set")
	assert.Equal(t, "h1 test client", r.tlsPeerCN, "the client's certificate")
}
