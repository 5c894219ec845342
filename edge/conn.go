package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
)

// trackedConn is the connection under each *tls.Conn a Listener returns.
// Its Close frees the connection's slot and per-address count, once. It
// also watches what net/http does with an HTTP/1 connection (see ConnState)
// so that refusals made by net/http itself are audited.
type trackedConn struct {
	net.Conn
	l    *Listener
	p    *pendingConn
	key  netip.Addr
	once sync.Once

	// Set before the connection is handed to Accept; read-only afterwards.
	h2      bool
	version uint16
	leaf    *x509.Certificate

	// HTTP/1 request phase, driven by ConnState, Observe and Read.
	active   atomic.Bool  // net/http read (part of) a request
	handled  atomic.Bool  // ... and passed it to the handler
	readErr  atomic.Int32 // last read error since the phase began (readErr* constants)
	rawBytes atomic.Int64 // bytes read from the network since the phase began
}

const (
	readErrNone int32 = iota
	readErrTimeout
	readErrOther
)

// Read counts bytes, notes a pending connection's first bytes, and
// remembers whether a read failed by timeout.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if !c.p.talked {
			// Only the handshake goroutine gets here: the ClientHello is
			// always read before the connection is handed to Accept.
			c.p.talked = true
			c.l.markTalking(c.p)
		}
		c.rawBytes.Add(int64(n))
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

// Close closes the connection and frees its slot.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.Conn != c.p.raw {
			_ = c.p.raw.Close()
		}
		c.l.release(c.p, c.key, true)
	})
	return err
}

// connKey is the context key under which ConnContext stores a trackedConn.
type connKey struct{}

// tracked returns the trackedConn under c, or nil when c did not come from
// a Listener.
func tracked(c net.Conn) *trackedConn {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	t, _ := tc.NetConn().(*trackedConn)
	return t
}

// ConnContext is an http.Server.ConnContext that lets Observe find the
// connection of a request. Connections not from a Listener are left alone.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if t := tracked(c); t != nil {
		return context.WithValue(ctx, connKey{}, t)
	}
	return ctx
}

// Observe wraps the http.Server's handler so that ConnState can tell a
// request net/http refused from one the handler answered. Use it together
// with ConnContext and ConnState.
func Observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, ok := r.Context().Value(connKey{}).(*trackedConn); ok {
			t.handled.Store(true)
		}
		next.ServeHTTP(w, r)
	})
}

// ConnState is an http.Server.ConnState hook that audits the HTTP/1
// requests net/http refuses before any handler runs, which it answers (or
// drops) on its own: a request whose header block is over MaxHeaderBytes
// (431, reason bad_request), a malformed one (400, bad_request), and one
// whose headers were still incomplete at ReadHeaderTimeout (connection
// closed without an answer, slow_request). A connection that goes idle or
// is closed by the client between requests is not audited. HTTP/2
// connections are left to net/http's own limits.
func ConnState(c net.Conn, s http.ConnState) {
	t := tracked(c)
	if t == nil || t.h2 {
		return
	}
	switch s {
	case http.StateNew, http.StateIdle:
		t.active.Store(false)
		t.handled.Store(false)
		t.readErr.Store(readErrNone)
		t.rawBytes.Store(0)
	case http.StateActive:
		t.active.Store(true)
	case http.StateClosed:
		if !t.active.Load() || t.handled.Load() || t.l.closed() {
			return
		}
		switch t.readErr.Load() {
		case readErrTimeout:
			t.l.n.slowReq.Add(1)
			t.audit(audit.SlowRequest, 0, "request headers not complete within --read-header-timeout")
		case readErrNone:
			t.l.n.badReq.Add(1)
			if t.rawBytes.Load() > int64(t.l.o.MaxHeaderBytes) {
				t.audit(audit.BadRequest, http.StatusRequestHeaderFieldsTooLarge, "request header block over --max-header-bytes")
			} else {
				t.audit(audit.BadRequest, http.StatusBadRequest, "malformed HTTP request")
			}
		}
		// readErrOther: the client went away mid-request; nothing to audit.
	}
}

func (c *trackedConn) audit(reason audit.Reason, status int, detail string) {
	rec := audit.Record{Reason: reason, Status: status, Detail: detail, RemoteAddr: addrString(c),
		TLSVersion: tls.VersionName(c.version)}
	if c.leaf != nil {
		rec.CertSubject = c.leaf.Subject.String()
		rec.CertSerial = certs.SerialHex(c.leaf)
		rec.CertSHA256 = certs.CertFingerprint(c.leaf)
	}
	c.l.o.Audit.Log(rec)
}

// Refused audits and counts a request that an HTTP/1 server other than
// net/http (package h1) refused before any handler ran, as ConnState does
// for net/http's own refusals: slow means the headers were not complete in
// time (slow_request, no answer); otherwise it is a bad_request answered
// with status. Connections not from a Listener are ignored.
func Refused(c net.Conn, slow bool, status int, detail string) {
	t := tracked(c)
	if t == nil || t.l.closed() {
		return
	}
	if slow {
		t.l.n.slowReq.Add(1)
		t.audit(audit.SlowRequest, 0, detail)
		return
	}
	t.l.n.badReq.Add(1)
	t.audit(audit.BadRequest, status, detail)
}
