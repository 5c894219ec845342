package h1

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memConn is a connection whose client sent exactly in and then ended
// its side: reads return in, then io.EOF; writes are collected. Deadlines
// are accepted and ignored (nothing ever blocks). Safe for concurrent use
// (net/http reads from a background goroutine).
type memConn struct {
	mu     sync.Mutex
	in     []byte
	out    bytes.Buffer
	closed chan struct{}
	once   sync.Once
}

func newMemConn(in []byte) *memConn { return &memConn{in: in, closed: make(chan struct{})} }

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *memConn) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

var memAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}

func (c *memConn) LocalAddr() net.Addr                { return memAddr }
func (c *memConn) RemoteAddr() net.Addr               { return memAddr }
func (c *memConn) SetDeadline(_ time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(_ time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(_ time.Time) error { return nil }

// oneConn is a listener that hands out one connection, then waits for
// Close.
type oneConn struct {
	mu    sync.Mutex
	c     net.Conn
	done  chan struct{}
	close sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { l.close.Do(func() { close(l.done) }); return nil }
func (l *oneConn) Addr() net.Addr { return memAddr }

// seenReq is what the fuzz handler saw of a request, normalised where
// net/http normalises after parsing (see FuzzReadHead for each).
type seenReq struct {
	method, uri, host string
	minor             int
	length            int64
	chunked           bool
	header            http.Header
	body              string
	bodyErr           bool
	close             bool // compared for HTTP/1.1 only
}

// The fuzz handler's modes, chosen by the input's first byte: read the
// whole body; read none of it; read none and ask to close.
const (
	modeRead = iota
	modeIgnore
	modeClose
	modes
)

// fuzzHandler records each request in the given mode and answers 200.
func fuzzHandler(mode int, mu *sync.Mutex, got *[]seenReq) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seenReq{method: r.Method, uri: r.RequestURI, host: r.Host, minor: r.ProtoMinor, length: r.ContentLength,
			chunked: len(r.TransferEncoding) > 0, header: r.Header.Clone(), close: r.Close}
		if mode == modeRead {
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			s.body, s.bodyErr = string(b), err != nil
		}
		mu.Lock()
		*got = append(*got, s)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		if mode == modeClose {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// stream is what one server did with a byte stream: the requests its
// handler saw and the raw bytes it wrote.
type stream struct {
	reqs []seenReq
	out  []byte
}

// serveStream serves in over one connection with serve (a Server's or an
// http.Server's Serve) and returns what happened once the server closed
// the connection.
func serveStream(t *testing.T, in []byte, serve func(net.Listener) error, stop func()) *memConn {
	t.Helper()
	c := newMemConn(in)
	ln := &oneConn{c: c, done: make(chan struct{})}
	served := make(chan struct{})
	go func() { _ = serve(ln); close(served) }()
	select {
	case <-c.closed:
	case <-time.After(20 * time.Second):
		t.Fatalf("the server never closed the connection for %q", in)
	}
	stop()
	ln.Close()
	<-served
	return c
}

func serveH1(t *testing.T, mode int, in []byte) stream {
	var mu sync.Mutex
	var x stream
	s := &Server{Handler: fuzzHandler(mode, &mu, &x.reqs), MaxHeaderBytes: 64 << 10}
	c := serveStream(t, in, s.Serve, func() { s.Close() })
	mu.Lock()
	defer mu.Unlock()
	x.out = c.output()
	return x
}

func serveStd(t *testing.T, mode int, in []byte) stream {
	var mu sync.Mutex
	var x stream
	s := &http.Server{Handler: fuzzHandler(mode, &mu, &x.reqs), MaxHeaderBytes: 64 << 10,
		ErrorLog: log.New(io.Discard, "", 0)}
	c := serveStream(t, in, s.Serve, func() { s.Close() })
	mu.Lock()
	defer mu.Unlock()
	x.out = c.output()
	return x
}

// statuses parses out as the answers to reqs, in order (1xx skipped),
// and returns their status codes; parsing stops at the first answer that
// does not parse.
func statuses(out []byte, reqs []seenReq) []int {
	br := bufio.NewReader(bytes.NewReader(out))
	var got []int
	for {
		method := http.MethodGet
		if i := len(got); i < len(reqs) {
			method = reqs[i].method
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return got
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 200 {
			got = append(got, resp.StatusCode)
		}
		if err != nil {
			return got
		}
	}
}

// normalise applies net/http's after-parse changes to h1's view (h) and
// drops from net/http's (std) what h1 does not set, as FuzzReadHead
// allows.
func normalise(h, std *seenReq) {
	delete(h.header, "Transfer-Encoding")
	if cl := h.header["Content-Length"]; len(cl) > 1 {
		h.header["Content-Length"] = cl[:1]
	}
	if p := h.header["Pragma"]; len(p) > 0 && p[0] == "no-cache" && len(h.header["Cache-Control"]) == 0 {
		delete(std.header, "Cache-Control")
	}
	if h.chunked {
		// net/http moves a chunked request's Trailer field into
		// Request.Trailer; h1 keeps it.
		delete(h.header, "Trailer")
	}
	if h.minor == 0 {
		h.close, std.close = false, false
	}
}

// FuzzServeConn feeds the same bytes, a whole client side of a connection
// (pipelined requests, bodies with Content-Length or chunked, trailers,
// stray bytes between requests), to h1's server and to net/http's, with a
// handler that reads the whole body, none of it, or none and closes (the
// input's first byte chooses). Whatever h1 hands its handler, net/http
// must hand its own alike, request for request, and both answer those
// requests alike; h1 may refuse earlier (it is stricter), never later, and
// must never pass a request on that net/http refused; a body whose read
// fails in h1 (its trailer rules are stricter) but not in net/http ends
// h1's connection. That is the
// property that rules out request smuggling between the two parsers: no
// byte stream makes h1 see a request boundary or a body that net/http
// does not.
//
// What is not compared: the trailer fields (net/http hands them over in
// Request.Trailer, h1 drops them after checking), the text of refusals,
// and the header normalisations FuzzReadHead lists.
func FuzzServeConn(f *testing.F) {
	post := "POST /cb?SdkAppid=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	chunked := "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\n"
	for _, s := range []string{
		post + post + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
		post + "\r\n" + post,
		chunked + "\r\n" + post,
		chunked + "X-T: 1\r\nX-U: 2\r\n\r\n" + post,
		chunked + "X-T: a\x00b\r\n\r\n" + post,
		chunked + "GET /smuggled HTTP/1.1\r\n\r\n" + post,
		chunked + "X-T: 1\n\n" + post,
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n" + post,
		"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + post,
		"POST /l HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
		"POST /z HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n" + post,
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}" + post,
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + post,
		post + "\r\n\r\n\r\n" + post,
		"\r\n" + post,
	} {
		for mode := range modes {
			f.Add(append([]byte{byte(mode)}, s...))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 || len(data) > 16<<10 {
			return // far below the header limits and the 256 KiB either server drops
		}
		mode, in := int(data[0])%modes, data[1:]
		h := serveH1(t, mode, in)
		std := serveStd(t, mode, in)

		require.LessOrEqual(t, len(h.reqs), len(std.reqs),
			"h1 handed its handler more requests than net/http did\nh1:  %+v\nstd: %+v\ninput %q", h.reqs, std.reqs, in)
		for i := range h.reqs {
			a, b := h.reqs[i], std.reqs[i]
			normalise(&a, &b)
			if a.bodyErr && !b.bodyErr && i == len(h.reqs)-1 {
				// h1 refused the rest of a body net/http read (stricter
				// trailer rules): what it did hand over came first, and the
				// connection ends there.
				require.True(t, strings.HasPrefix(b.body, a.body), "request %d's body: h1 %q, net/http %q", i, a.body, b.body)
				a.body, a.bodyErr = b.body, false
			}
			require.Equal(t, a, b, "request %d as h1 (expected) and net/http (actual) handed it over\ninput %q", i, in)
		}
		hs, ss := statuses(h.out, h.reqs), statuses(std.out, std.reqs)
		require.GreaterOrEqual(t, len(hs), len(h.reqs), "h1 answered every request it served: %q", h.out)
		require.GreaterOrEqual(t, len(ss), len(h.reqs), "net/http answered the requests h1 served: %q", std.out)
		assert.Equal(t, append([]int{}, ss[:len(h.reqs)]...), append([]int{}, hs[:len(h.reqs)]...), "answers to the requests both served\nh1:  %q\nstd: %q", h.out, std.out)
		if len(hs) > len(h.reqs) {
			// h1 refused the next request itself: a refusal status.
			assert.GreaterOrEqual(t, hs[len(h.reqs)], 400, "h1's own answer after its last request: %q", strings.TrimSpace(string(h.out)))
		}
	})
}
