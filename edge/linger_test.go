package edge_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/edge"
)

// smallBuffers is a TCP listener whose connections have a small kernel
// receive buffer, so that a client's large body cannot vanish into it and
// whatever the server does not read stays on the wire.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10)
	}
	return c, err
}

// listenSmall is env.listen over a smallBuffers listener.
func (e *env) listenSmall(t *testing.T, o edge.Options) *edge.Listener {
	t.Helper()
	o.TLSConfig, o.Audit = e.serverCfg, e.aud
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := edge.New(smallBuffers{inner}, o)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// refuseUnread answers 413 with Connection: close without reading the
// body, as the receiver does for a Content-Length over its cap.
func refuseUnread() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"body_too_large"}`)
	})
}

// writeThenRead is a client that writes a whole request with a body of
// size bytes before it reads anything (with a small send buffer, so the
// body cannot hide in it either). It returns the write's error, the
// response and the error of reading it.
func (e *env) writeThenRead(t *testing.T, addr string, size int) (error, *http.Response, error) {
	t.Helper()
	raw := dialFrom(t, "127.0.0.1", addr)
	require.NoError(t, raw.(*net.TCPConn).SetWriteBuffer(32<<10))
	tc := tls.Client(raw, e.clientConfig())
	require.NoError(t, tc.Handshake())
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	head := "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	_, werr := io.WriteString(tc, head+strings.Repeat(" ", size))
	resp, rerr := http.ReadResponse(bufio.NewReader(tc), nil)
	if rerr == nil {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		rerr = err
	}
	tc.Close() // done: the server's linger ends at this close
	return werr, resp, rerr
}

// A refusal answered without reading a large body reaches a client that
// reads only after writing its whole body: the server keeps reading and
// dropping the body after answering (lingering close) instead of closing
// with unread input, which resets the connection.
func TestLinger_AnswerReachesAClientThatWritesFirst(t *testing.T) {
	e := newEnv(t)
	l := e.listenSmall(t, edge.Options{})
	serveHTTP(t, l, refuseUnread(), nil)

	for i := range 3 {
		werr, resp, rerr := e.writeThenRead(t, l.Addr().String(), 2<<20)
		require.NoError(t, werr, "try %d: the whole body is written, not reset", i)
		require.NoError(t, rerr, "try %d: the answer is read", i)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		b, _ := io.ReadAll(resp.Body)
		assert.JSONEq(t, `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"body_too_large"}`, string(b), "the body arrives whole")
	}
	require.Eventually(t, func() bool { return l.Stats().Lingered == 3 }, 5*time.Second, 10*time.Millisecond, "three lingering closes: %+v", l.Stats())
	assert.Zero(t, l.Stats().LingerCut, "each ended when the client was done")
}

// The linger is bounded: past Options.LingerBytes the server closes, even
// if the client is still sending.
func TestLinger_StopsAtItsByteBound(t *testing.T) {
	e := newEnv(t)
	l := e.listenSmall(t, edge.Options{LingerBytes: 256 << 10})
	serveHTTP(t, l, refuseUnread(), nil)

	werr, _, _ := e.writeThenRead(t, l.Addr().String(), 8<<20)
	require.Error(t, werr, "8 MiB are not all read when the linger stops at 256 KiB")
	require.Eventually(t, func() bool { return l.Stats().LingerCut == 1 }, 5*time.Second, 10*time.Millisecond, "the linger was cut: %+v", l.Stats())
}

// The linger never outlasts the HTTP server's own read deadline, nor its
// own time bound, for a client that neither sends nor closes.
func TestLinger_BoundedByTime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      edge.Options
		server func(*http.Server)
	}{
		{"by the server's read timeout", edge.Options{LingerTime: time.Hour},
			func(s *http.Server) { s.ReadTimeout = 300 * time.Millisecond }},
		{"by LingerTime", edge.Options{LingerTime: 300 * time.Millisecond}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			l := e.listen(t, tc.o)
			serveHTTP(t, l, refuseUnread(), tc.server)
			tlsc, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
			require.NoError(t, err)
			// The head promises a body that never comes; the client reads
			// the answer and then keeps the connection open.
			_, err = io.WriteString(tlsc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
			require.NoError(t, err)
			_ = tlsc.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(tlsc), nil)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			// The server half-closes at once (its answer is complete) and
			// closes for good, freeing the slot, when the bound is reached.
			assert.True(t, closedByPeer(tlsc.NetConn(), 20*time.Second), "the server ends its side")
			require.Eventually(t, func() bool { return l.Stats().Open == 0 }, 20*time.Second, 10*time.Millisecond, "the connection is closed: %+v", l.Stats())
			assert.Equal(t, uint64(1), l.Stats().LingerCut, "cut by a bound, not by the client")
		})
	}
}
