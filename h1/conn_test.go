package h1

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

// echoPath answers with the request's path.
func echoPath(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) }

func TestServe_KeepAliveSequential(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	for i := range 3 {
		rc.send(fmt.Sprintf("POST /n%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d", i, i))
		resp, text := rc.reply(http.MethodPost)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", text)
		assert.False(t, resp.Close)
		r := <-got
		assert.Equal(t, fmt.Sprintf("/n%d", i), r.path)
		assert.Equal(t, strconv.Itoa(i), r.body)
		assert.Equal(t, rc.c.LocalAddr().String(), r.remoteAddr, "same connection")
	}
}

func TestServe_Pipelined(t *testing.T) {
	t.Parallel()
	rc := dial(t, start(t, &Server{Handler: http.HandlerFunc(echoPath)}))
	var all strings.Builder
	for i := range 5 {
		fmt.Fprintf(&all, "POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", i)
	}
	rc.send(all.String()) // one write
	for i := range 5 {
		resp, text := rc.reply(http.MethodPost)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, fmt.Sprintf("/p%d", i), text, "answers in order")
	}
}

// A client asking to close, and any HTTP/1.0 client, gets its answer
// with Connection: close, then the server closes.
func TestServe_ClosesWhenAsked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, req, path string }{
		{"Connection: close", "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n", "/bye"},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "/old"},
		// net/http's server closes here too, though Request.Close is false.
		{"close between spaces", "GET /word HTTP/1.1\r\nHost: x\r\nConnection: a Close\r\n\r\n", "/word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dial(t, start(t, &Server{Handler: http.HandlerFunc(echoPath)}))
			rc.send(tc.req)
			resp, text := rc.reply(http.MethodGet)
			assert.Equal(t, tc.path, text)
			assert.True(t, resp.Close, "Connection: close")
			assert.True(t, rc.closed())
		})
	}
}

// TestResponse_Head checks the answer's status line and header order:
// the handler's fields sorted, then Date and Content-Length.
func TestResponse_Head(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Zed", "z")
		w.Header().Set("Content-Type", "application/json")
		w.Header()["X-Multi"] = []string{"1", "2"}
		w.Header().Set("A-First", "a")
		// Framing fields are the server's: these are not sent.
		w.Header().Set("Content-Length", "999")
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header().Set("Date", "yesterday")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})}
	rc := dial(t, start(t, s))
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	lines := rc.rawHead()
	require.NotEmpty(t, lines)
	assert.Equal(t, "HTTP/1.1 202 Accepted", lines[0])
	require.Len(t, lines, 8, "%q", lines)
	assert.Equal(t, []string{
		"A-First: a", "Content-Type: application/json", "X-Multi: 1", "X-Multi: 2", "X-Zed: z",
	}, lines[1:6])
	date, ok := strings.CutPrefix(lines[6], "Date: ")
	require.True(t, ok, "Date after the handler's fields: %q", lines[6])
	when, err := http.ParseTime(date)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), when, time.Minute)
	assert.Equal(t, "Content-Length: 11", lines[7])
	body := make([]byte, 11)
	_, err = io.ReadFull(rc.br, body)
	require.NoError(t, err)
	assert.Equal(t, `{"ok":true}`, string(body))

	// Nothing more: the connection stays open and the next answer follows.
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, text)
}

// TestResponse_HeadMethod: a HEAD answer carries the Content-Length of the
// body the handler wrote but no body bytes; the pipelined request after it
// is answered in turn.
func TestResponse_HeadMethod(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello, "+r.Method)
	})}
	rc := dial(t, start(t, s))
	rc.send("HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, text := rc.reply(http.MethodHead)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(len("hello, HEAD")), resp.ContentLength)
	assert.Empty(t, text)
	resp, text = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello, GET", text)
}

// TestResponse_HeadStatedLength: a HEAD handler that writes nothing may
// state the length it would send; a malformed one is replaced by 0.
func TestResponse_HeadStatedLength(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strings.TrimPrefix(r.URL.Path, "/"))
	})}
	rc := dial(t, start(t, s))
	rc.send("HEAD /1234 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /-5 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := rc.reply(http.MethodHead)
	assert.Equal(t, int64(1234), resp.ContentLength)
	resp, _ = rc.reply(http.MethodHead)
	assert.Equal(t, int64(0), resp.ContentLength)
}

// TestBody_ReadAfterHandlerReturnedFails: a body kept by a handler beyond
// its return cannot read the next request's bytes.
func TestBody_ReadAfterHandlerReturnedFails(t *testing.T) {
	t.Parallel()
	kept := make(chan io.Reader, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keep" {
			kept <- r.Body
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})}
	rc := dial(t, start(t, s))
	rc.send("POST /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
	_, _ = rc.reply(http.MethodPost)
	body := <-kept
	rc.send("POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext")
	_, text := rc.reply(http.MethodPost)
	assert.Equal(t, "next", text, "the next request is read whole")
	n, err := body.Read(make([]byte, 8))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, http.ErrBodyReadAfterClose)
}

// TestResponse_NoContent: 204 and 304 carry neither Content-Length nor
// body bytes, even when the handler wrote some.
func TestResponse_NoContent(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "ignored")
	})}
	rc := dial(t, start(t, s))
	rc.send("GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /200 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, code := range []int{204, 304} {
		lines := rc.rawHead()
		require.NotEmpty(t, lines)
		assert.Equal(t, fmt.Sprintf("HTTP/1.1 %d %s", code, http.StatusText(code)), lines[0])
		for _, l := range lines {
			assert.False(t, strings.HasPrefix(strings.ToLower(l), "content-length:"), "%d: %q", code, l)
		}
	}
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "no body bytes before the third answer")
	assert.Equal(t, "ignored", text)
}

// TestResponse_NoHeaderInjection: CR and LF in a handler's header value
// cannot end the field; an invalid field name is not sent.
func TestResponse_NoHeaderInjection(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Evil", "a\r\nX-Injected: 1\r\n\r\nbody")
		w.Header()["X-Bad Name\r\nX-Injected2"] = []string{"2"}
		w.Header().Set("X-Good", "g")
	})}
	rc := dial(t, start(t, s))
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Values("X-Injected"))
	assert.Empty(t, resp.Header.Values("X-Injected2"))
	assert.Equal(t, "a  X-Injected: 1    body", resp.Header.Get("X-Evil"))
	assert.Equal(t, "g", resp.Header.Get("X-Good"))
	assert.Empty(t, text)
	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the stream stays in sync")
}

// TestResponse_TooLarge: writing past MaxResponseBytes fails with
// ErrResponseTooLarge and what was written up to the limit is sent.
func TestResponse_TooLarge(t *testing.T) {
	t.Parallel()
	errs := make(chan [3]error, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e [3]error
		_, e[0] = w.Write(make([]byte, MaxResponseBytes-1))
		_, e[1] = w.Write([]byte("xy"))
		_, e[2] = io.WriteString(w, "xy")
		_, _ = io.WriteString(w, "z") // exactly at the limit: fits
		errs <- e
	})}
	rc := dial(t, start(t, s))
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, text := rc.reply(http.MethodGet)
	e := <-errs
	require.NoError(t, e[0])
	assert.ErrorIs(t, e[1], ErrResponseTooLarge)
	assert.ErrorIs(t, e[2], ErrResponseTooLarge)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, text, MaxResponseBytes)
	assert.Equal(t, byte('z'), text[len(text)-1])
}

// TestBody_UnreadSmallRemainder: a body the handler left partly unread is
// discarded and the connection kept.
func TestBody_UnreadSmallRemainder(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 10)
		n, _ := io.ReadFull(r.Body, b)
		_, _ = fmt.Fprintf(w, "%s %s", r.URL.Path, b[:n])
	})}
	rc := dial(t, start(t, s))
	body := strings.Repeat("0123456789", 1000)
	rc.send("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n" + body)
	resp, text := rc.reply(http.MethodPost)
	assert.Equal(t, "/first 0123456789", text)
	assert.False(t, resp.Close)

	chunked := "1000\r\n" + strings.Repeat("c", 0x1000) + "\r\n0\r\n\r\n"
	rc.send("POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
	resp, text = rc.reply(http.MethodPost)
	assert.Equal(t, "/second cccccccccc", text)
	assert.False(t, resp.Close)

	rc.send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
	_, text = rc.reply(http.MethodGet)
	assert.Equal(t, "/third ", text)
}

// TestBody_UnreadLargeRemainder: more than maxDiscard left unread closes
// the connection after the answer.
func TestBody_UnreadLargeRemainder(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	})}
	rc := dial(t, start(t, s))
	n := 2 * maxDiscard
	go func() {
		// The server stops reading part way: this write may fail.
		_, _ = io.WriteString(rc.c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n"+strings.Repeat("b", n))
	}()
	resp, _ := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.True(t, resp.Close, "Connection: close")
	assert.True(t, rc.closed())
}

// TestBody_Expect100: the client gets 100 Continue once the handler reads
// the body, and the exchange continues normally.
func TestBody_Expect100(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	rc.send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n")
	lines := rc.rawHead()
	assert.Equal(t, []string{"HTTP/1.1 100 Continue"}, lines)
	rc.send("hello")
	resp, text := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", text)
	assert.False(t, resp.Close)
	assert.Equal(t, "hello", (<-got).body)

	rc.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/after", (<-got).path)
}

// TestBody_Expect100Unread: a handler that answers without reading the
// body sends no 100 Continue, and the connection closes after its answer
// (the client may never send the body).
func TestBody_Expect100Unread(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	})}
	rc := dial(t, start(t, s))
	rc.send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, text := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the final answer, not 100")
	assert.Equal(t, "no\n", text)
	assert.True(t, resp.Close, "Connection: close")
	assert.True(t, rc.closed())
}

// TestTimeout_SlowHeaders: a header block stalled past ReadHeaderTimeout
// closes the connection without an answer and is reported once as slow.
func TestTimeout_SlowHeaders(t *testing.T) {
	t.Parallel()
	rec := &refusals{}
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute, Refused: rec.record}
	rc := dial(t, start(t, s))
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n")
	assert.True(t, rc.closed(), "closed without an answer")
	got := rec.list()
	require.Len(t, got, 1)
	assert.True(t, got[0].Slow)
	assert.Zero(t, got[0].Status)
	assert.NotEmpty(t, got[0].Detail)
}

// TestTimeout_SilentClient: a connection on which nothing is sent is
// closed after ReadHeaderTimeout, and that is no refusal.
func TestTimeout_SilentClient(t *testing.T) {
	t.Parallel()
	rec := &refusals{}
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute, Refused: rec.record}
	rc := dial(t, start(t, s))
	assert.True(t, rc.closed())
	assert.Empty(t, rec.list())
}

// TestTimeout_Idle: a connection idle after an answer is closed after
// IdleTimeout, and that is no refusal.
func TestTimeout_Idle(t *testing.T) {
	t.Parallel()
	rec := &refusals{}
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: time.Minute, IdleTimeout: 200 * time.Millisecond, Refused: rec.record}
	rc := dial(t, start(t, s))
	rc.send("GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
	_, text := rc.reply(http.MethodGet)
	assert.Equal(t, "/once", text)
	assert.True(t, rc.closed())
	assert.Empty(t, rec.list())
}

// TestTimeout_SlowBody: a body stalled past ReadTimeout fails the
// handler's read with a timeout; the answer closes the connection.
func TestTimeout_SlowBody(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rec := &refusals{}
	s := &Server{Handler: h, ReadHeaderTimeout: time.Minute, ReadTimeout: 300 * time.Millisecond, Refused: rec.record}
	rc := dial(t, start(t, s))
	rc.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
	resp, _ := rc.reply(http.MethodPost)
	assert.True(t, resp.Close, "Connection: close")
	r := <-got
	assert.Equal(t, "half", r.body)
	require.Error(t, r.bodyErr)
	assert.ErrorIs(t, r.bodyErr, os.ErrDeadlineExceeded)
	var ne net.Error
	if assert.ErrorAs(t, r.bodyErr, &ne) {
		assert.True(t, ne.Timeout())
	}
	assert.True(t, rc.closed())
	assert.Empty(t, rec.list())
}

// TestPanic: a handler panic closes its connection without an answer and
// is logged, except http.ErrAbortHandler; the server keeps serving.
func TestPanic(t *testing.T) {
	t.Parallel()
	log := &testkit.SyncBuffer{}
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/panic":
				_, _ = io.WriteString(w, "partial")
				panic("boom in handler")
			case "/abort":
				panic(http.ErrAbortHandler)
			}
			_, _ = io.WriteString(w, "fine")
		}),
		Logger: slog.New(slog.NewTextHandler(log, nil)),
	}
	addr := start(t, s)

	rc := dial(t, addr)
	rc.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.True(t, rc.closed(), "closed without an answer")
	assert.Contains(t, log.String(), "handler panic")
	assert.Contains(t, log.String(), "boom in handler")

	rc = dial(t, addr)
	rc.send("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.True(t, rc.closed(), "closed without an answer")
	assert.Equal(t, 1, strings.Count(log.String(), "handler panic"), "ErrAbortHandler not logged:\n%s", log.String())

	rc = dial(t, addr)
	rc.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "fine", text)
}

// blocker is a handler that signals entered and waits for release.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

// blockedRequest starts a server whose handler blocks until released and
// sends it one request, returning once the handler runs.
func blockedRequest(t *testing.T) (*Server, *blocker, *rawClient) {
	b := newBlocker(t)
	s := &Server{Handler: b}
	rc := dial(t, start(t, s))
	rc.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	b.waitEntered(t)
	return s, b, rc
}

func newBlocker(t *testing.T) *blocker {
	b := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
	})
	return b
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/block" {
		b.entered <- struct{}{}
		<-b.release
	}
	_, _ = io.WriteString(w, "done "+r.URL.Path)
}

func (b *blocker) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(wait):
		t.Fatal("handler not entered")
	}
}

// TestShutdown_Idle: Shutdown closes idle connections (new and between
// requests) at once, returns nil, and Serve returns ErrServerClosed.
func TestShutdown_Idle(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	used := dial(t, ln.Addr().String())
	used.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	used.reply(http.MethodGet)
	fresh := dial(t, ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()

	assert.True(t, used.closed(), "idle after a request")
	assert.True(t, fresh.closed(), "idle before any request")
	require.NoError(t, <-shut)
	select {
	case err := <-served:
		assert.ErrorIs(t, err, http.ErrServerClosed)
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	_, err = net.Dial("tcp", ln.Addr().String())
	assert.Error(t, err, "listener closed")
	assert.ErrorIs(t, s.Serve(ln), http.ErrServerClosed, "Serve after Shutdown")
}

// TestShutdown_InFlight: a request in progress at Shutdown is answered
// with Connection: close, and Shutdown returns nil after it.
func TestShutdown_InFlight(t *testing.T) {
	t.Parallel()
	s, b, rc := blockedRequest(t)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a handler still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(b.release)
	resp, text := rc.reply(http.MethodGet)
	assert.Equal(t, "done /block", text)
	assert.True(t, resp.Close, "Connection: close")
	assert.True(t, rc.closed())
	select {
	case err := <-shut:
		assert.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Shutdown did not return")
	}
}

// TestShutdown_Expired: Shutdown returns its context's error while a
// handler is still blocked; Close then closes that connection.
func TestShutdown_Expired(t *testing.T) {
	t.Parallel()
	s, _, rc := blockedRequest(t)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, s.Close())
	assert.True(t, rc.closed(), "Close closes the busy connection")
}

// TestClose: Close closes idle and busy connections at once and Serve
// returns ErrServerClosed.
func TestClose(t *testing.T) {
	t.Parallel()
	b := newBlocker(t)
	s := &Server{Handler: b}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	busy := dial(t, ln.Addr().String())
	busy.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	b.waitEntered(t)
	idle := dial(t, ln.Addr().String())
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.reply(http.MethodGet)

	require.NoError(t, s.Close())
	assert.True(t, busy.closed())
	assert.True(t, idle.closed())
	select {
	case err := <-served:
		assert.ErrorIs(t, err, http.ErrServerClosed)
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	// Once its handler returns, the busy connection is gone too.
	close(b.release)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	assert.NoError(t, s.Shutdown(ctx), "nothing left to wait for")
}

// TestDeadline_KeptOnlyWhenAtMostASixtyFourthEarly: a deadline already set
// is kept only when it ends no later than wanted and at most d/64 before;
// otherwise the wanted one replaces it, and d <= 0 clears a set one.
func TestDeadline_KeptOnlyWhenAtMostASixtyFourthEarly(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := 64 * time.Second
	want := now.Add(d)
	for _, tc := range []struct {
		name    string
		cur     time.Time
		d       time.Duration
		replace bool
	}{
		{"none set", time.Time{}, d, true},
		{"set half a second early", want.Add(-time.Second / 2), d, false},
		{"set exactly d/64 early", want.Add(-time.Second), d, false},
		{"set more than d/64 early", want.Add(-time.Second - time.Nanosecond), d, true},
		{"set later than wanted", want.Add(time.Nanosecond), d, true},
		{"set as wanted", want, d, false},
		{"clear a set one", want, 0, true},
		{"clear none", time.Time{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, replace := deadline(tc.cur, now, tc.d)
			assert.Equal(t, tc.replace, replace)
			if tc.d > 0 {
				assert.Equal(t, want, got)
			} else {
				assert.True(t, got.IsZero())
			}
		})
	}
}
