package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Refusal describes a request the Server answered or dropped itself,
// before any handler ran.
type Refusal struct {
	Status int    // the status answered; 0 when the connection was closed without an answer
	Slow   bool   // the header block was not complete within ReadHeaderTimeout
	Detail string // what was wrong, for the operator
}

// Server serves HTTP/1.1 on connections from a listener, one request at a
// time per connection (see the package documentation).
//
// Set its fields before Serve and do not change them afterwards. Handler
// is required; zero timeouts mean none, MaxHeaderBytes zero means
// http.DefaultMaxHeaderBytes. As with net/http, the header and read
// timeouts of a connection's first request run from the connection's
// start, those of a later request from its first byte. Serve may be called for several listeners;
// Shutdown or Close ends them all. Safe for concurrent use.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration // to the end of a request's headers (see below)
	ReadTimeout       time.Duration // to the end of a request's body (see below)
	WriteTimeout      time.Duration // from the end of the headers to the end of the response
	IdleTimeout       time.Duration // between requests on one connection; zero means ReadTimeout
	MaxHeaderBytes    int           // request line and header block

	// BaseContext is the parent of every request's context; nil means
	// context.Background().
	BaseContext context.Context
	// ConnContext, if not nil, derives the context of a connection's
	// requests, as http.Server's field of that name does.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// Other, if not nil, takes over each *tls.Conn that negotiated a
	// protocol other than HTTP/1.1 by ALPN (h2); without it they are closed.
	Other func(c net.Conn)
	// Refused, if not nil, is told of every request the server refuses
	// on its own, on the connection's goroutine.
	Refused func(c net.Conn, r Refusal)
	// Logger receives handler panics; nil means slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
	date      atomic.Pointer[dateLine]
}

// MaxResponseBytes is the largest response body a handler may write; a
// Write beyond it fails with ErrResponseTooLarge.
const MaxResponseBytes = 1 << 20

// ErrResponseTooLarge is returned by the ResponseWriter's Write beyond
// MaxResponseBytes.
var ErrResponseTooLarge = errors.New("h1: response body over MaxResponseBytes")

// Serve accepts connections from ln and serves each on its own goroutine
// until ln fails or the server is shut down; then it closes ln and returns
// http.ErrServerClosed after Shutdown or Close, or ln's error.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return http.ErrServerClosed
	}
	defer s.untrack(ln)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			return fmt.Errorf("accepting: %w", err)
		}
		go s.serve(c)
	}
}

// Shutdown stops the listeners, closes idle connections, and waits until
// every request in progress has been answered and its connection closed,
// or ctx ends (then it returns ctx's error and leaves those connections to
// Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeListeners()
	wait := time.Millisecond
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Close stops the listeners and closes every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.shut = true
		c.rwc.Close()
	}
	return nil
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes the connections waiting for a request and returns how
// many connections remain.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if !c.active && !c.shut {
			c.shut = true
			c.rwc.Close()
		}
	}
	return len(s.conns)
}

// setActive marks c busy with a request (true) or waiting for one; it
// returns false if c was closed by Shutdown or Close meanwhile.
func (s *Server) setActive(c *conn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.shut {
		return false
	}
	c.active = active
	return true
}

// handshakeTimeout bounds a TLS handshake the server completes itself: the
// smallest of the positive timeouts, as net/http's.
// add tracks c; it returns false once the server is closing.
func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) handshakeTimeout() time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// conn is one served connection.
type conn struct {
	s      *Server
	rwc    net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	lines  lineReader
	tls    *tls.ConnectionState
	remote string
	ctx    context.Context
	proto  *http.Request // a zero Request with ctx, copied into each request
	// The deadlines readBy and writeBy last set (zero: none or unknown).
	readDL, writeDL time.Time
	lastPost        bool // the last request was a POST (see await)

	// Guarded by s.mu.
	active bool // reading or serving a request
	shut   bool // closed by Shutdown or Close
}

func (s *Server) serve(rwc net.Conn) {
	c := &conn{s: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	if !s.add(c) {
		rwc.Close()
		return
	}
	handedOff := false
	defer func() {
		s.remove(c)
		if !handedOff {
			rwc.Close()
		}
	}()
	if tc, ok := rwc.(*tls.Conn); ok {
		// A listener from tls.NewListener returns connections before their
		// handshake (edge.Listener completes it first): complete it here, as
		// net/http does, so that ALPN and the peer's certificates are known.
		// Until then the connection counts as idle for Shutdown.
		if !tc.ConnectionState().HandshakeComplete {
			_ = rwc.SetDeadline(after(time.Now(), s.handshakeTimeout()))
			if err := tc.Handshake(); err != nil {
				return
			}
			_ = rwc.SetDeadline(time.Time{})
		}
		st := tc.ConnectionState()
		if p := st.NegotiatedProtocol; p != "" && p != "http/1.1" {
			if s.Other != nil && s.setActive(c, true) {
				handedOff = true
				s.remove(c)
				s.Other(rwc)
			}
			return
		}
		c.tls = &st
	} else if cs, ok := rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		// A view of a TLS connection whose handshake is done (as
		// edge.Listener hands HTTP/1 connections over): as net/http does,
		// Request.TLS comes from its ConnectionState.
		st := cs.ConnectionState()
		c.tls = &st
	}

	c.ctx = s.BaseContext
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	if s.ConnContext != nil {
		c.ctx = s.ConnContext(c.ctx, rwc)
	}
	c.proto = new(http.Request).WithContext(c.ctx)
	c.br = bufio.NewReaderSize(rwc, 4<<10)
	c.bw = bufio.NewWriterSize(rwc, 4<<10)
	c.lines.br = c.br
	for first := true; ; first = false {
		t0, ok := c.await(first)
		if !ok || !c.serveRequest(t0) || s.closing.Load() {
			return
		}
	}
}

// await waits for the first byte of the next request and returns the
// time its read timeouts count from: on a new connection the header and
// read timeouts run from when the server starts waiting (as net/http's),
// so the first head must be complete within ReadHeaderTimeout of the
// connection's start; between requests the idle timeout applies until the
// first byte, and the request's timeouts run from its arrival. After a
// POST, CR and LF bytes among the next four are dropped (RFC 9112
// section 2.2's tolerance for a stray CRLF after a body, as net/http's).
func (c *conn) await(first bool) (time.Time, bool) {
	if !c.s.setActive(c, false) {
		return time.Time{}, false
	}
	now := time.Now()
	if first {
		c.readBy(now, c.s.headerTimeout())
	}
	skip := 0 // CR and LF bytes still to drop
	if c.lastPost {
		skip, c.lastPost = 4, false
	}
	for waited := false; ; waited = true {
		if skip > 0 {
			n, all := c.skipCRLF(skip)
			skip -= n
			if !all {
				skip = 0 // a request's first byte
			}
		}
		if c.br.Buffered() > 0 {
			break
		}
		if !first && !waited {
			d := c.s.IdleTimeout
			if d <= 0 {
				d = c.s.ReadTimeout // as net/http does
			}
			c.readBy(now, d)
			// The client sends its next request only after reading this
			// answer, so a read right now would nearly always find nothing
			// (a read that fails with EAGAIN, then parking and waking on
			// the poller). Letting the other runnable connections go first
			// gives the request time to arrive: under the bench's
			// keep-alive load reads fell from 2.1 to 1.3 per callback and
			// CPU from 27.6 to 24.8 us per callback (medians of six
			// interleaved runs, every pair lower). With nothing else to
			// run it returns at once.
			runtime.Gosched()
		}
		if _, err := c.br.Peek(1); err != nil {
			return time.Time{}, false
		}
		if !first {
			now = time.Now()
		}
	}
	return now, c.s.setActive(c, true)
}

// skipCRLF drops the CR and LF bytes that start the buffered input, at
// most limit, and reports how many it dropped and whether every buffered
// byte it looked at was one (so that more may follow).
func (c *conn) skipCRLF(limit int) (int, bool) {
	b, _ := c.br.Peek(min(limit, c.br.Buffered()))
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	_, _ = c.br.Discard(n)
	return n, n == len(b)
}

// headerTimeout bounds a request's head: ReadHeaderTimeout, or ReadTimeout
// when that is shorter or the other is zero.
func (s *Server) headerTimeout() time.Duration {
	hd := s.ReadHeaderTimeout
	if rt := s.ReadTimeout; rt > 0 && (hd <= 0 || rt < hd) {
		hd = rt
	}
	return hd
}

// readBy and writeBy set the read or write deadline d after now; d <= 0
// clears it. A deadline they set that ends at most d/64 before the wanted
// one is kept: a keep-alive connection otherwise reset both timers on
// every request (1.6 % of the CPU per callback). A timeout may so end up
// to 1/64 early, never late.
func (c *conn) readBy(now time.Time, d time.Duration) {
	if t, ok := deadline(c.readDL, now, d); ok {
		_ = c.rwc.SetReadDeadline(t)
		c.readDL = t
	}
}

func (c *conn) writeBy(now time.Time, d time.Duration) {
	if t, ok := deadline(c.writeDL, now, d); ok {
		_ = c.rwc.SetWriteDeadline(t)
		c.writeDL = t
	}
}

// deadline returns the deadline d after now (zero for d <= 0) and whether
// it must replace cur, the one set.
func deadline(cur, now time.Time, d time.Duration) (time.Time, bool) {
	want := after(now, d)
	if want.IsZero() {
		return want, !cur.IsZero()
	}
	keep := !cur.IsZero() && !cur.After(want) && want.Sub(cur) <= d/64
	return want, !keep
}

func after(now time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(d)
}

// exchange is what one request and its answer need, in one allocation.
type exchange struct {
	head head
	vals [8]string // the header map's values, when they fit
	url  url.URL
	body body
	req  http.Request
	w    response
}

// serveRequest reads, serves and answers one request whose timeouts count
// from t0 (see await) and reports whether the connection may carry
// another.
func (c *conn) serveRequest(t0 time.Time) bool {
	s := c.s
	hd := s.headerTimeout()
	// Deadlines matter only for reads from the network: a header block
	// or body already in the buffer (the usual case, one TLS record per
	// callback) needs none, which saves a timer update each.
	headerDeadline := !c.headBuffered()
	if headerDeadline {
		c.readBy(t0, hd)
	}
	c.lines.budget = s.maxHeaderBytes()
	// A new exchange per request: a ResponseWriter or body a handler
	// wrongly keeps can never touch the next request.
	x := new(exchange)
	h := &x.head
	if err := readHead(&c.lines, h, x.vals[:]); err != nil {
		c.refuse(err, t0)
		return false
	}
	if err := parseTarget(h.target, &x.url); err != nil {
		c.refuse(refuse(http.StatusBadRequest, "malformed request target"), t0)
		return false
	}
	c.lastPost = h.method == http.MethodPost
	// The write timeout runs from the end of the head, as net/http's: a
	// head read from the network ended now, a buffered one at t0.
	headEnd := t0
	if headerDeadline {
		headEnd = time.Now()
	}
	if !c.bodyBuffered(h) && (!headerDeadline || s.ReadTimeout != hd) {
		c.readBy(t0, s.ReadTimeout)
	}
	c.writeBy(headEnd, s.WriteTimeout)

	b := newBody(c, h, &x.body)
	r := &x.req
	*r = *c.proto // the connection's context, which a Request cannot be given otherwise without a copy
	r.Method, r.URL, r.Proto, r.ProtoMajor, r.ProtoMinor = h.method, &x.url, "HTTP/1.1", 1, h.minor
	r.Header, r.Body, r.ContentLength, r.Close = h.header, b, h.length, h.close
	r.Host, r.RemoteAddr, r.RequestURI, r.TLS = h.header.Get("Host"), c.remote, h.target, c.tls
	delete(h.header, "Host") // as net/http does: the Host field has it
	if h.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	if h.chunked {
		r.TransferEncoding = []string{"chunked"}
	}
	w := &x.w
	w.h, w.head = make(http.Header, 4), h.method == http.MethodHead
	if !c.call(w, r) {
		return false
	}
	// The connection is kept unless the client or the handler asked to
	// close it, the server is shutting down, or the body cannot be
	// finished (a read failed, or 100 Continue was never sent). An unread
	// rest is dropped only after the answer is written: the answer never
	// waits for a body the client may be holding back.
	keep := !h.closeConn && !s.closing.Load() && !asksClose(w.h)
	bb, hasBody := b.(*body)
	drain, unread := false, false
	if hasBody {
		switch bb.end(keep) {
		case bodyDone:
		case bodyUnread:
			drain = true
		default:
			keep, unread = false, true
		}
	}
	if cap(c.lines.scratch) > 4<<10 {
		c.lines.scratch = nil // a rare long header line is not kept for the connection's life
	}
	if !c.writeResponse(w, headEnd, keep) {
		return false
	}
	if drain {
		if s.ReadTimeout <= 0 {
			// Dropping an unread rest must not wait forever.
			c.readBy(time.Now(), lingerTime)
		}
		// The answer said the connection stays; if the rest cannot be
		// dropped it closes all the same, which a client must expect.
		keep = bb.drop()
		unread = !keep
	}
	if !keep {
		// Linger only when the client may still be sending: a body left
		// unread, or more bytes after this request.
		c.closeWrite(t0, unread || c.br.Buffered() > 0)
	}
	return keep
}

// asksClose reports whether a handler's header asks to close the
// connection after its answer (Connection: close).
func asksClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		if hasWord(v, "close") {
			return true
		}
	}
	return false
}

// headBuffered reports whether a whole header block is in the read
// buffer, so that reading it needs no read from the network.
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// bodyBuffered reports whether h's whole Content-Length body is in the
// read buffer.
func (c *conn) bodyBuffered(h *head) bool {
	return !h.chunked && int64(c.br.Buffered()) >= h.length
}

// call runs the handler; a panic closes the connection without an answer,
// as net/http does, and is logged unless it is http.ErrAbortHandler.
func (c *conn) call(w *response, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler { //nolint:errorlint // a panic value, not a returned error
				c.s.logger().Error("handler panic", "remote_addr", c.remote, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, r)
	return true
}

// refuse answers a request refused before its handler (nothing for a
// timeout or a client that went away) and reports it; t0 is when the
// request's timeouts started.
func (c *conn) refuse(err error, t0 time.Time) {
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		c.writeBy(time.Now(), c.s.WriteTimeout)
		fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
			bad.status, http.StatusText(bad.status), len(bad.detail)+1, bad.detail+"\n")
		flushed := c.bw.Flush() == nil
		c.report(Refusal{Status: bad.status, Detail: bad.detail})
		if flushed {
			c.closeWrite(t0, true)
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.report(Refusal{Slow: true, Detail: "request headers not complete within --read-header-timeout"})
	}
	// Any other error: the client went away mid-request; nothing to report.
}

func (c *conn) report(r Refusal) {
	if c.s.Refused != nil && !c.s.closing.Load() {
		c.s.Refused(c.rwc, r)
	}
}

// The bounds of a lingering close (see closeWrite); the same as edge's for
// the connections it hands over.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 4 << 20
)

// closeWrite ends the write side (close_notify and a FIN with TLS, or a
// FIN) once an answer is written and the connection is to close. With
// linger, it then reads and drops what the client still sends until its
// end of stream, for at most lingerBytes and lingerTime, and never past
// ReadTimeout from t0, before the connection is closed: closing a socket
// with unread input sends a reset, which can make the client lose the
// answer just written, or fail a client still writing its body before it
// reads the answer.
func (c *conn) closeWrite(t0 time.Time, linger bool) {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	if !linger {
		return
	}
	now := time.Now()
	end := now.Add(lingerTime)
	if rt := c.s.ReadTimeout; rt > 0 && t0.Add(rt).Before(end) {
		end = t0.Add(rt)
	}
	if !end.After(now) {
		return
	}
	_ = c.rwc.SetReadDeadline(end)
	c.readDL = end
	_, _ = io.Copy(io.Discard, io.LimitReader(c.rwc, lingerBytes))
}

// sendContinue answers an Expect: 100-continue before the body is read.
func (c *conn) sendContinue() error {
	if _, err := c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
		return err
	}
	return c.bw.Flush()
}
