package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refuse413 answers 413 with Connection: close without reading the body,
// as imedge's receiver does for a Content-Length over its cap.
func refuse413(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = io.WriteString(w, `{"ErrorInfo":"body_too_large"}`)
}

// TestAnswer_RefusalBeforeTheBodyIsSent: a handler that answers without
// reading the body is answered at once, whether or not the body is on its
// way; with the handler's Connection: close the answer says so and the
// connection closes, and without it the server takes the body afterwards
// and keeps the connection.
func TestAnswer_RefusalBeforeTheBodyIsSent(t *testing.T) {
	t.Parallel()
	// The read timeout is far beyond the client's wait: an answer that
	// waits for the body (or the timeout) fails the test.
	t.Run("Connection: close", func(t *testing.T) {
		t.Parallel()
		rc := dial(t, start(t, &Server{Handler: http.HandlerFunc(refuse413), ReadTimeout: 4 * wait}))
		rc.send("POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
		resp, text := rc.reply(http.MethodPost)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.JSONEq(t, `{"ErrorInfo":"body_too_large"}`, text)
		assert.True(t, resp.Close, "Connection: close")
		assert.True(t, rc.closed())
	})
	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		s := &Server{ReadTimeout: 4 * wait, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				http.Error(w, "no", http.StatusForbidden)
				return
			}
			echoPath(w, r)
		})}
		rc := dial(t, start(t, s))
		rc.send("POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		resp, _ := rc.reply(http.MethodPost)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		rc.send(strings.Repeat("b", 1000) + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
		_, text := rc.reply(http.MethodGet)
		assert.Equal(t, "/next", text, "the connection carried on past the body")
	})
}

// TestAnswer_HandlerCloseHonoured: a handler's Connection: close closes
// the connection after its answer even when the unread rest of the body
// is small enough to drop, and the answer says so.
func TestAnswer_HandlerCloseHonoured(t *testing.T) {
	t.Parallel()
	rc := dial(t, start(t, &Server{Handler: http.HandlerFunc(refuse413)}))
	rc.send("POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000) +
		"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.True(t, resp.Close, "Connection: close")
	assert.True(t, rc.closed(), "the next request is not served")
}

// smallBuffers is a TCP listener whose connections have a small kernel
// receive buffer, so that what the server does not read stays on the wire.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10)
	}
	return c, err
}

// TestAnswer_ReachesAClientThatWritesFirst: after a refusal answered
// without reading a large body, the server takes and drops the rest
// (lingering close) so that a client that writes its whole body before it
// reads is not reset under its write and gets the answer.
func TestAnswer_ReachesAClientThatWritesFirst(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveOn(t, &Server{Handler: http.HandlerFunc(refuse413), ReadTimeout: 4 * wait}, smallBuffers{inner})

	const size = 2 << 20
	for i := range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		require.NoError(t, err)
		require.NoError(t, c.(*net.TCPConn).SetWriteBuffer(32<<10))
		require.NoError(t, c.SetDeadline(time.Now().Add(4*wait)))
		_, err = io.WriteString(c, "POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"+strings.Repeat("b", size))
		require.NoError(t, err, "try %d: the whole body is written", i)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.JSONEq(t, `{"ErrorInfo":"body_too_large"}`, string(b))
		c.Close()
	}
}

// TestBody_TrailerChecked: a chunked body's trailer section is checked as
// strictly as a header block (and held to net/http's 4 KiB): a malformed
// one fails the handler's read, and the connection closes after the
// answer; a well-formed one is consumed and the connection carries on.
func TestBody_TrailerChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, trailer string
		ok            bool
	}{
		{"well-formed", "X-T: 1\r\nX-U: two words\r\n", true},
		{"NUL in a value", "X-T: a\x00b\r\n", false},
		{"bare CR in a value", "X-T: a\rb\r\n", false},
		{"line without a colon", "X-T 1\r\n", false},
		{"request line", "GET /smuggled HTTP/1.1\r\n", false},
		{"obs-fold", "X-T: 1\r\n 2\r\n", false},
		{"non-token name", "X(T): 1\r\n", false},
		{"over 4 KiB", "X-T: " + strings.Repeat("a", 5000) + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, got := recorder()
			rc := dial(t, start(t, &Server{Handler: h}))
			rc.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + tc.trailer + "\r\n" +
				"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, _ := rc.reply(http.MethodPost)
			r := next(t, got)
			assert.Equal(t, "hello", r.body)
			if tc.ok {
				require.NoError(t, r.bodyErr)
				assert.False(t, resp.Close)
				rc.reply(http.MethodGet)
				assert.Equal(t, "/next", next(t, got).path)
				return
			}
			assert.Error(t, r.bodyErr, "the handler's read fails")
			assert.True(t, resp.Close, "Connection: close")
			assert.True(t, rc.closed(), "the rest is not read as a request")
		})
	}
}

// TestTimeout_FirstHeadWithinReadHeaderTimeout: the first request's head
// must be complete ReadHeaderTimeout after the connection was accepted,
// not after its first byte arrived.
func TestTimeout_FirstHeadWithinReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	rec := &refusals{}
	const d = time.Second
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: d, IdleTimeout: time.Minute, Refused: rec.record}
	rc := dial(t, start(t, s))
	time.Sleep(d / 2) // the first byte comes late...
	rc.send("GET /late HTTP/1.1\r\n")
	time.Sleep(d * 3 / 4) // ...and the head is complete only after d
	_, _ = io.WriteString(rc.c, "Host: x\r\n\r\n")
	assert.True(t, rc.closed(), "closed without an answer")
	got := rec.list()
	require.Len(t, got, 1)
	assert.True(t, got[0].Slow)
}

// TestTimeout_WriteTimeoutFromTheEndOfTheHead: the write timeout counts
// from the end of the request's head, as net/http's does, so a slow but
// timely head still gets its answer.
func TestTimeout_WriteTimeoutFromTheEndOfTheHead(t *testing.T) {
	t.Parallel()
	const d = 500 * time.Millisecond
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: 8 * d, WriteTimeout: d}
	rc := dial(t, start(t, s))
	rc.send("GET /slow HTTP/1.1\r\n")
	time.Sleep(2 * d) // the head takes longer than the write timeout
	rc.send("Host: x\r\n\r\n")
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/slow", text)
}

// TestServe_StrayCRLFAfterABody: an empty line after a POST's body is
// ignored, as RFC 9112 section 2.2 asks and net/http does, and the next
// request on the connection is served.
func TestServe_StrayCRLFAfterABody(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	rc.send("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\n" +
		"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "{}", next(t, got).body)
	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/second", next(t, got).path)

	// The CRLF on its own, after the answer, while the server waits.
	rc.send("POST /third HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	resp, _ = rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/third", next(t, got).path)
	rc.send("\r\n")
	rc.send("GET /fourth HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/fourth", next(t, got).path)
}

// next returns what the recorder's handler saw of the next request, or
// fails the test when no handler ran within wait.
func next(t *testing.T, got <-chan seen) seen {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(wait):
		t.Fatal("no request reached the handler")
		return seen{}
	}
}
