package edge_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/edge"
)

func TestNew_RejectsBadOptions(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer inner.Close()
	_, err = edge.New(inner, edge.Options{})
	require.ErrorIs(t, err, edge.ErrNoTLSConfig)
	_, err = edge.New(inner, edge.Options{TLSConfig: &tls.Config{}, MaxConns: -1})
	require.ErrorIs(t, err, edge.ErrBadOption)
	_, err = edge.New(inner, edge.Options{TLSConfig: &tls.Config{}, IPv6Prefix: 129})
	require.ErrorIs(t, err, edge.ErrBadOption)
}

func TestListener_HandsOverCompletedHandshakes(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{})
	serveHTTP(t, l, okHandler(), nil)

	resp, err := e.httpClient("127.0.0.1", true).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotNil(t, resp.TLS)
	st := l.Stats()
	assert.Equal(t, uint64(1), st.Handshakes)
	assert.Empty(t, e.auditBuf.records(t), "nothing refused, nothing audited")
}

// The handshake deadline is the listener's own: with net/http's timeouts
// far longer, a client that never sends a ClientHello is closed at the
// handshake timeout and audited.
func TestListener_HandshakeTimeoutIsItsOwn(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{HandshakeTimeout: 300 * time.Millisecond})
	serveHTTP(t, l, okHandler(), func(s *http.Server) {
		s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute, time.Minute
	})

	c := dialFrom(t, "127.0.0.2", l.Addr().String())
	assert.True(t, closedByPeer(c, 10*time.Second), "a silent client is closed well before net/http's one-minute timeouts")
	require.Eventually(t, func() bool { return len(e.auditBuf.withReason(t, audit.TLSTimeout)) == 1 }, 5*time.Second, 10*time.Millisecond, "one tls_timeout record; got %v", e.auditBuf.records(t))
	rec := e.auditBuf.withReason(t, audit.TLSTimeout)[0]
	assert.Contains(t, rec["remote_addr"], "127.0.0.2:")
	assert.Equal(t, uint64(1), l.Stats().Timeouts)
}

// A slow ClientHello (one byte at a time) is bounded by the same deadline.
func TestListener_SlowClientHelloIsCutAtTheDeadline(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{HandshakeTimeout: 500 * time.Millisecond})
	serveHTTP(t, l, okHandler(), nil)
	c := dialFrom(t, "127.0.0.2", l.Addr().String())
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
		for _, b := range hello {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the slow client's pace, not a wait for imedge
		}
		_, _ = io.Copy(io.Discard, c)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a dribbling ClientHello was not cut at the handshake deadline")
	}
	require.Eventually(t, func() bool { return len(e.auditBuf.withReason(t, audit.TLSTimeout)) == 1 }, 5*time.Second, 10*time.Millisecond, "tls_timeout audited")
}

// Silent connections in their handshake never block the accept loop: a
// good client behind 50 of them is served at once.
func TestListener_PendingHandshakesDoNotBlockAccept(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{HandshakeTimeout: time.Minute})
	serveHTTP(t, l, okHandler(), nil)
	for range 50 {
		dialFrom(t, "127.0.0.2", l.Addr().String())
	}
	require.Eventually(t, func() bool { return l.Stats().Pending == 50 }, 5*time.Second, 10*time.Millisecond, "50 pending handshakes")
	resp, err := e.httpClient("127.0.0.1", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// At MaxConns, the oldest pending handshake is closed to make room: idle
// connections cannot lock a legitimate client out.
func TestListener_MaxConnsEvictsOldestPending(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{MaxConns: 5, HandshakeTimeout: time.Minute})
	serveHTTP(t, l, okHandler(), nil)
	var idle []net.Conn
	for range 5 {
		idle = append(idle, dialFrom(t, "127.0.0.2", l.Addr().String()))
	}
	require.Eventually(t, func() bool { return l.Stats().Pending == 5 }, 5*time.Second, 10*time.Millisecond, "5 pending")

	resp, err := e.httpClient("127.0.0.1", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err, "the legitimate client gets a slot")
	resp.Body.Close()
	assert.True(t, closedByPeer(idle[0], 5*time.Second), "the oldest idle connection was closed")
	assert.False(t, closedByPeer(idle[4], 200*time.Millisecond), "the newest idle connection is still open")
	st := l.Stats()
	assert.Equal(t, uint64(1), st.Evicted)
	assert.LessOrEqual(t, st.Open, 5)
	recs := e.auditBuf.withReason(t, audit.ConnLimit)
	require.Len(t, recs, 1)
	assert.Contains(t, recs[0]["detail"], "oldest pending handshake")
}

// Eviction prefers a connection that has sent nothing over an older one
// that is in its handshake.
func TestListener_MaxConnsEvictsSilentBeforeTalking(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{MaxConns: 3, HandshakeTimeout: time.Minute})
	serveHTTP(t, l, okHandler(), nil)
	talking := dialFrom(t, "127.0.0.2", l.Addr().String())
	_, err := talking.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.Stats().Talking == 1 }, 5*time.Second, time.Millisecond, "the listener saw it talk")
	silentOld := dialFrom(t, "127.0.0.2", l.Addr().String())
	silentNew := dialFrom(t, "127.0.0.2", l.Addr().String())
	require.Eventually(t, func() bool { return l.Stats().Pending == 3 }, 5*time.Second, 10*time.Millisecond, "3 pending")

	_, err = handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.NoError(t, err)
	assert.True(t, closedByPeer(silentOld, 5*time.Second), "the oldest silent connection was closed")
	assert.False(t, closedByPeer(talking, 200*time.Millisecond), "the older, talking one was kept")
	assert.False(t, closedByPeer(silentNew, 200*time.Millisecond), "the newer silent one was kept")
}

// When every slot holds an established connection, a new connection waits
// (it is not refused, and Accept returns no error) until a slot frees.
func TestListener_MaxConnsWaitsForEstablishedToClose(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{MaxConns: 2})
	var accepted atomic.Int32
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			accepted.Add(1)
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	a, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.NoError(t, err)
	b, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.NoError(t, err)
	defer b.Close() // held open (and reachable, so no finalizer closes it) until the end
	// The client returns from its handshake before the server has read its
	// Finished; only once both are accepted are the two slots established
	// (a slot mid-handshake may be given to a newcomer, by design).
	require.Eventually(t, func() bool { return accepted.Load() == 2 }, 5*time.Second, 10*time.Millisecond, "both connections established")

	third := make(chan error, 1)
	go func() {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			third <- err
			return
		}
		defer c.Close()
		tc := tls.Client(c, e.clientConfig())
		third <- tc.HandshakeContext(context.Background())
	}()
	select {
	case err := <-third:
		t.Fatalf("the third handshake completed while both slots were held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, a.Close())
	select {
	case err := <-third:
		require.NoError(t, err, "the waiting connection is served once a slot frees")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was never served")
	}
	select {
	case err := <-errc:
		t.Fatalf("Accept returned an error: %v", err)
	default:
	}
	require.Eventually(t, func() bool { return accepted.Load() == 3 }, 5*time.Second, 10*time.Millisecond, "three connections accepted")
}

func TestListener_PerAddressCap(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{MaxConnsPerIP: 2, HandshakeTimeout: time.Minute})
	serveHTTP(t, l, okHandler(), nil)
	for range 2 {
		dialFrom(t, "127.0.0.2", l.Addr().String())
	}
	require.Eventually(t, func() bool { return l.Stats().Pending == 2 }, 5*time.Second, 10*time.Millisecond, "2 pending")
	third := dialFrom(t, "127.0.0.2", l.Addr().String())
	assert.True(t, closedByPeer(third, 5*time.Second), "the third connection from one address is closed")

	_, err := handshakeFrom(t, "127.0.0.3", l.Addr().String(), e.clientConfig())
	require.NoError(t, err, "another address is not affected")
	recs := e.auditBuf.withReason(t, audit.ConnLimit)
	require.Len(t, recs, 1)
	assert.Contains(t, recs[0]["remote_addr"], "127.0.0.2:")
	assert.Equal(t, uint64(1), l.Stats().PerIPRefused)
}

func TestListener_SourceAllowList(t *testing.T) {
	e := newEnv(t)
	var hellos atomic.Int32
	cfg := e.serverCfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { hellos.Add(1); return nil, nil }
	l := e.listen(t, edge.Options{TLSConfig: cfg, AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	serveHTTP(t, l, okHandler(), nil)

	_, err := handshakeFrom(t, "127.0.0.9", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "a source outside the allow-list is refused")
	assert.Zero(t, hellos.Load(), "closed before the TLS handshake")
	recs := e.auditBuf.withReason(t, audit.SourceDenied)
	require.Len(t, recs, 1)
	assert.Contains(t, recs[0]["remote_addr"], "127.0.0.9:")

	resp, err := e.httpClient("127.0.0.1", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err, "an allowed source is served")
	resp.Body.Close()
	assert.Equal(t, int32(1), hellos.Load())
}

// Stages run before the source check, so a PROXY-protocol stage can give
// the checks the real client address.
func TestListener_StagesRunBeforeTheSourceCheck(t *testing.T) {
	e := newEnv(t)
	real := netip.MustParseAddrPort("203.0.113.7:4242")
	rewrite := func(_ context.Context, c net.Conn) (net.Conn, error) {
		return addrConn{Conn: c, remote: net.TCPAddrFromAddrPort(real)}, nil
	}
	refuseAll := func(context.Context, net.Conn) (net.Conn, error) { return nil, errors.New("no") }

	l := e.listen(t, edge.Options{Stages: []edge.Stage{rewrite},
		AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	serveHTTP(t, l, okHandler(), nil)
	_, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "the rewritten address is outside the allow-list")
	recs := e.auditBuf.withReason(t, audit.SourceDenied)
	require.Len(t, recs, 1)
	assert.Equal(t, real.String(), recs[0]["remote_addr"])

	l2 := e.listen(t, edge.Options{Stages: []edge.Stage{refuseAll}})
	_, err = handshakeFrom(t, "127.0.0.1", l2.Addr().String(), e.clientConfig())
	require.Error(t, err)
	require.Eventually(t, func() bool { return l2.Stats().StageRefused == 1 && l2.Stats().Open == 0 }, 5*time.Second, 10*time.Millisecond, "the refused connection freed its slot: %+v", l2.Stats())
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (a addrConn) RemoteAddr() net.Addr { return a.remote }

func TestListener_SessionResumption(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := newEnv(t)
			l := e.listen(t, edge.Options{})
			serveHTTP(t, l, okHandler(), nil)
			cfg := e.clientConfig()
			cfg.MaxVersion = v
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			var resumed []bool
			for range 2 {
				tc, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), cfg)
				require.NoError(t, err)
				// TLS 1.3 tickets arrive after the handshake: read the reply.
				_, err = io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				require.NoError(t, err)
				resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				resumed = append(resumed, tc.ConnectionState().DidResume)
				tc.Close()
			}
			assert.Equal(t, []bool{false, true}, resumed)
		})
	}
}

func TestListener_PlainHTTPOnTheTLSPortGets400(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{})
	serveHTTP(t, l, okHandler(), nil)
	c := dialFrom(t, "127.0.0.1", l.Addr().String())
	_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	assert.True(t, strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request"), "got %q", b)
}

// Close ends promptly with connections still in their handshake, and
// Accept then returns net.ErrClosed.
func TestListener_CloseIsBounded(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{HandshakeTimeout: time.Hour})
	var conns []net.Conn
	for range 20 {
		conns = append(conns, dialFrom(t, "127.0.0.2", l.Addr().String()))
	}
	require.Eventually(t, func() bool { return l.Stats().Pending == 20 }, 5*time.Second, 10*time.Millisecond, "20 pending")
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for hour-long handshakes")
	}
	_, err := l.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	for _, c := range conns {
		assert.True(t, closedByPeer(c, 5*time.Second))
	}
	assert.Zero(t, l.Stats().Open)
	require.NoError(t, l.Close(), "a second Close is a no-op")
}

// A temporary Accept error (here: out of file descriptors) is retried; the
// loop goes on and Accept never reports it.
func TestListener_TemporaryAcceptErrorsAreRetried(t *testing.T) {
	e := newEnv(t)
	real, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &flakyListener{Listener: real}
	fl.failures.Store(3)
	l, err := edge.New(fl, edge.Options{TLSConfig: e.serverCfg, Audit: e.aud})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	serveHTTP(t, l, okHandler(), nil)
	resp, err := e.httpClient("127.0.0.1", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, uint64(3), l.Stats().AcceptErrors)
}

type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

func TestWithoutHTTP2(t *testing.T) {
	e := newEnv(t)
	outer := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return e.serverCfg, nil }}
	l := e.listen(t, edge.Options{TLSConfig: edge.WithoutHTTP2(outer)})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cfg := e.clientConfig()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	tc, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), cfg)
	require.NoError(t, err)
	assert.Equal(t, "http/1.1", tc.ConnectionState().NegotiatedProtocol)
	assert.Equal(t, []string{"h2", "http/1.1"}, e.serverCfg.NextProtos, "the shared config is not modified")

	cfg.NextProtos = []string{"h2"}
	_, err = handshakeFrom(t, "127.0.0.1", l.Addr().String(), cfg)
	require.Error(t, err, "an h2-only client finds no common protocol")
}

// Refusals net/http makes on its own are audited through ConnState, each
// with the status it answered: an oversized header block, a malformed
// request line, a slowloris, an unknown transfer coding, an unknown
// expectation, and a keep-alive connection whose next head stalls. Served
// requests and idle closes give none.
func TestConnState_AuditsWhatNetHTTPRefuses(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{})
	serveHTTP(t, l, okHandler(), func(s *http.Server) {
		s.MaxHeaderBytes = 4096
		s.ReadHeaderTimeout = 400 * time.Millisecond
		s.IdleTimeout = 300 * time.Millisecond
	})
	addr := l.Addr().String()
	send := func(src, req string) string {
		tc, err := handshakeFrom(t, src, addr, e.clientConfig())
		require.NoError(t, err)
		defer tc.Close()
		_, _ = io.WriteString(tc, req)
		_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(tc)
		return string(b)
	}

	// Normal requests, then an idle keep-alive connection timing out.
	resp := send("127.0.0.2", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"+
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Equal(t, 2, strings.Count(resp, "HTTP/1.1 200 OK"), "two answers: %q", resp)

	// Oversized header block: 431, audited.
	resp = send("127.0.0.3", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 20000)+"\r\n\r\n")
	assert.Contains(t, resp, "431")

	// Malformed request line: 400, audited.
	resp = send("127.0.0.4", "BROKEN\r\n\r\n")
	assert.Contains(t, resp, "400 Bad Request")

	// Slowloris: headers never finished.
	tc, err := handshakeFrom(t, "127.0.0.5", addr, e.clientConfig())
	require.NoError(t, err)
	_, _ = io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\n")
	assert.True(t, closedByPeer(tc, 5*time.Second), "closed at the read-header timeout")

	// A transfer coding the server does not implement: 501, audited as 501.
	resp = send("127.0.0.6", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
	assert.Contains(t, resp, "HTTP/1.1 501")

	// An expectation other than 100-continue: 417, audited as 417.
	resp = send("127.0.0.7", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 101-custom\r\nContent-Length: 2\r\n\r\n{}")
	assert.Contains(t, resp, "HTTP/1.1 417")

	// A stray CRLF after a POST's body, then nothing: an idle close, not
	// a stalled head. (Closed before the next case's record is written.)
	tc, err = handshakeFrom(t, "127.0.0.9", addr, e.clientConfig())
	require.NoError(t, err)
	_, err = io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	require.NoError(t, err)
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err)
	first.Body.Close()
	_, err = io.WriteString(tc, "\r\n")
	require.NoError(t, err)
	assert.True(t, closedByPeer(tc, 5*time.Second), "closed at the idle timeout")

	// On a keep-alive connection, after one request, the head of the next
	// arrives in one write and never completes.
	tc, err = handshakeFrom(t, "127.0.0.8", addr, e.clientConfig())
	require.NoError(t, err)
	_, err = io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	require.NoError(t, err)
	br := bufio.NewReader(tc)
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, first.Body)
	first.Body.Close()
	assert.Equal(t, http.StatusOK, first.StatusCode)
	_, err = io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	assert.True(t, closedByPeer(tc, 5*time.Second), "closed at the read-header timeout")

	require.Eventually(t, func() bool { return len(e.auditBuf.records(t)) == 6 }, 5*time.Second, 10*time.Millisecond, "six records; got %v", e.auditBuf.records(t))
	byAddr := map[string]map[string]any{}
	for _, r := range e.auditBuf.records(t) {
		byAddr[strings.Split(r["remote_addr"].(string), ":")[0]] = r
	}
	require.Contains(t, byAddr, "127.0.0.3")
	assert.Equal(t, "bad_request", byAddr["127.0.0.3"]["reason"])
	assert.Equal(t, float64(431), byAddr["127.0.0.3"]["status"])
	assert.NotEmpty(t, byAddr["127.0.0.3"]["cert_sha256"], "the verified client is named")
	require.Contains(t, byAddr, "127.0.0.4")
	assert.Equal(t, "bad_request", byAddr["127.0.0.4"]["reason"])
	assert.Equal(t, float64(400), byAddr["127.0.0.4"]["status"])
	require.Contains(t, byAddr, "127.0.0.5")
	assert.Equal(t, "slow_request", byAddr["127.0.0.5"]["reason"])
	for src, status := range map[string]float64{"127.0.0.6": 501, "127.0.0.7": 417} {
		require.Contains(t, byAddr, src)
		assert.Equal(t, "bad_request", byAddr[src]["reason"], src)
		assert.Equal(t, status, byAddr[src]["status"], "the record says what was answered (%s)", src)
	}
	require.Contains(t, byAddr, "127.0.0.8")
	assert.Equal(t, "slow_request", byAddr["127.0.0.8"]["reason"], "a stalled keep-alive head is audited")
	assert.NotContains(t, byAddr, "127.0.0.2", "served requests and idle closes are not audited")
	assert.NotContains(t, byAddr, "127.0.0.9", "a stray CRLF before an idle close is no stalled head")
	st := l.Stats()
	assert.Equal(t, uint64(4), st.BadRequests)
	assert.Equal(t, uint64(2), st.SlowRequests)
}

// Many goroutines hammer the listener with good and refused connections;
// afterwards every slot and per-address count is free again.
func TestListener_ChurnFreesEverySlot(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{MaxConns: 16, MaxConnsPerIP: 4, HandshakeTimeout: 2 * time.Second,
		AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")}})
	serveHTTP(t, l, okHandler(), nil)
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			src := fmt.Sprintf("127.0.0.%d", 1+i%10)
			for range 15 {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", l.Addr().String())
				if err != nil {
					continue
				}
				if i%2 == 0 {
					tc := tls.Client(c, e.clientConfig())
					_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
					_ = tc.Handshake()
				}
				c.Close()
			}
		}()
	}
	for range 8 {
		<-done
	}
	require.Eventually(t, func() bool { st := l.Stats(); return st.Open == 0 && st.Pending == 0 }, 10*time.Second, 10*time.Millisecond, "all slots free after churn: %+v", l.Stats())
	_, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.NoError(t, err)
}
