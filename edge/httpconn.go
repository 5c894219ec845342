package edge

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/audit"
)

// httpConn is what Accept returns for a connection that did not negotiate
// HTTP/2: the plaintext side of its *tls.Conn, for an HTTP/1 server. It is
// deliberately not a *tls.Conn: net/http then skips its own handshake and
// ALPN dispatch (both done by the Listener) and serves HTTP/1, and sets
// Request.TLS from ConnectionState, which the embedded *tls.Conn provides.
//
// Seeing the plaintext lets it audit what the server answered to a request
// it refused on its own (the status line it wrote), and linger after an
// answer: its Close first half-closes, then reads and drops what the
// client still sends, within the bounds below, so that closing with
// unread input does not reset the connection and lose the answer.
//
// Read, Write and the deadline setters are called by the server's
// connection goroutine (net/http's background read included, one at a
// time); Close may also come from another goroutine (Server.Close, or
// Shutdown for an idle connection).
type httpConn struct {
	*tls.Conn
	t *trackedConn

	// The request phase, from the first byte of a request to the
	// connection going idle again (set by ConnState).
	active  atomic.Bool  // the server read (part of) a request
	handled atomic.Bool  // ... and a handler ran
	readErr atomic.Int32 // the last read error in the phase (readErr* constants)
	head    atomic.Bool  // a byte other than CR or LF was read in the phase
	status  atomic.Int32 // status of the first final response written in the phase; 0 none

	readDL  atomic.Int64 // the read deadline last set, in Unix nanoseconds; 0 none
	closing atomic.Bool  // Close was called
}

const (
	readErrNone int32 = iota
	readErrTimeout
	readErrOther
)

func newHTTPConn(tc *tls.Conn, t *trackedConn) *httpConn { return &httpConn{Conn: tc, t: t} }

// Read reads plaintext and notes whether a request's bytes came and how a
// read failed. CR and LF alone are not a request: a server ignores them
// after a body (RFC 9112 section 2.2).
func (c *httpConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.head.Load() {
		for _, x := range b[:n] {
			if x != '\r' && x != '\n' {
				c.head.Store(true)
				break
			}
		}
	}
	if err != nil {
		kind := readErrOther
		if errors.Is(err, os.ErrDeadlineExceeded) {
			kind = readErrTimeout
		}
		c.readErr.Store(kind)
	}
	return n, err
}

// Write writes plaintext, noting the status of the phase's first final
// response. HTTP/1 servers write a response's status line at the start of
// a write.
func (c *httpConn) Write(b []byte) (int, error) {
	if c.status.Load() == 0 {
		if s := statusOf(b); s >= 200 {
			c.status.CompareAndSwap(0, int32(s))
		}
	}
	return c.Conn.Write(b)
}

// statusOf returns the status code of an HTTP/1 status line at the start
// of b, or 0.
func statusOf(b []byte) int {
	if len(b) < 12 || string(b[:7]) != "HTTP/1." || b[8] != ' ' {
		return 0
	}
	s := 0
	for _, d := range b[9:12] {
		if d < '0' || d > '9' {
			return 0
		}
		s = 10*s + int(d-'0')
	}
	return s
}

// SetDeadline sets both deadlines, noting the read deadline.
func (c *httpConn) SetDeadline(t time.Time) error {
	c.noteReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline and notes it.
func (c *httpConn) SetReadDeadline(t time.Time) error {
	c.noteReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *httpConn) noteReadDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.readDL.Store(ns)
}

// CloseWrite sends TLS's close_notify and ends the TCP write side (a
// FIN), so the client sees the end of the answer at once.
func (c *httpConn) CloseWrite() error {
	err := c.Conn.CloseWrite()
	c.t.closeWrite()
	return err
}

// Close closes the connection, after lingering when it is closed right
// after an answer (see linger). A Close during a linger ends it at once.
func (c *httpConn) Close() error {
	if !c.closing.Swap(true) {
		c.linger()
	}
	return c.Conn.Close()
}

// reset starts a new request phase.
func (c *httpConn) reset() {
	c.active.Store(false)
	c.handled.Store(false)
	c.readErr.Store(readErrNone)
	c.head.Store(false)
	c.status.Store(0)
}

// linger keeps reading and dropping what the client sends after the
// server answered a request and decided to close: the client may still be
// sending a body the server did not read, and closing a socket with
// unread input sends a reset, which can make the client lose the answer
// (or fail its write before it reads it). It lingers only when the close
// ends a request phase with an answer written and no read failed (the
// client is still there, and no deadline of the server passed); it stops
// at the client's end of stream, at Options.LingerBytes, at
// Options.LingerTime or at the read deadline the server last set,
// whichever comes first, and when another Close closes the connection.
// It runs on the goroutine calling Close and starts none.
func (c *httpConn) linger() {
	l := c.t.l
	if !c.active.Load() || c.status.Load() == 0 || c.readErr.Load() != readErrNone || l.closed() {
		return
	}
	l.n.lingered.Add(1)
	now := time.Now()
	end := now.Add(l.o.LingerTime)
	if dl := c.readDL.Load(); dl != 0 && dl < end.UnixNano() {
		end = time.Unix(0, dl)
	}
	if !end.After(now) || c.CloseWrite() != nil {
		l.n.lingerCut.Add(1)
		return
	}
	// The raw connection, below TLS: what is dropped is never decrypted.
	raw := c.t.Conn
	if raw.SetReadDeadline(end) != nil {
		l.n.lingerCut.Add(1)
		return
	}
	n, err := io.CopyN(io.Discard, raw, l.o.LingerBytes)
	if err == nil || n >= l.o.LingerBytes || errors.Is(err, os.ErrDeadlineExceeded) {
		l.n.lingerCut.Add(1)
	}
}

// closed audits the request phase a connection closed in, if the server
// refused it on its own (see ConnState).
func (c *httpConn) closed() {
	t := c.t
	if c.handled.Load() || t.l.closed() {
		return
	}
	if s := int(c.status.Load()); s != 0 && c.active.Load() {
		t.l.n.badReq.Add(1)
		t.audit(audit.BadRequest, s, refusalDetail(s))
		return
	}
	// A head that stopped coming: net/http marks a connection active only
	// once it reads bytes for a request itself, so on a keep-alive
	// connection whose next head arrived at once (read while waiting for
	// it) and then stalled, only the bytes read show it.
	if c.readErr.Load() == readErrTimeout && (c.active.Load() || c.head.Load()) {
		t.l.n.slowReq.Add(1)
		t.audit(audit.SlowRequest, 0, "request headers not complete within --read-header-timeout")
	}
	// Otherwise the client went away, or an idle connection was closed:
	// nothing to audit.
}

// refusalDetail names what an HTTP/1 server's own refusal with status
// means.
func refusalDetail(status int) string {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return "request header block over --max-header-bytes"
	case http.StatusNotImplemented:
		return "transfer coding not supported"
	case http.StatusExpectationFailed:
		return "expectation not supported"
	case http.StatusHTTPVersionNotSupported:
		return "HTTP version not supported"
	}
	return "malformed HTTP request"
}
