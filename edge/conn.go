package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
)

// trackedConn is the connection under each *tls.Conn a Listener hands to
// Accept. Its Close frees the connection's slot and per-address count,
// once.
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
}

// Read notes a pending connection's first bytes.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.p.talked {
		// Only the handshake goroutine gets here: the ClientHello is
		// always read before the connection is handed to Accept.
		c.p.talked = true
		c.l.markTalking(c.p)
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

// closeWrite ends the TCP connection's write side (a FIN), when it can.
func (c *trackedConn) closeWrite() {
	if cw, ok := c.p.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// connKey is the context key under which ConnContext stores a connection's
// *httpConn.
type connKey struct{}

// ConnContext is an http.Server.ConnContext that lets Observe find the
// connection of a request. Connections not from a Listener, and HTTP/2
// ones, are left alone.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*httpConn); ok {
		return context.WithValue(ctx, connKey{}, hc)
	}
	return ctx
}

// Observe wraps the HTTP server's handler so that ConnState can tell a
// request the server refused on its own from one the handler answered.
// Use it together with ConnContext and ConnState.
func Observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hc, ok := r.Context().Value(connKey{}).(*httpConn); ok {
			hc.handled.Store(true)
		}
		next.ServeHTTP(w, r)
	})
}

// ConnState is an http.Server.ConnState hook that audits the HTTP/1
// requests the server refuses before any handler runs, which it answers
// (or drops) on its own: each answered refusal is a bad_request record
// with the status the server wrote (431 for a header block over its
// limit, 400 for a malformed request, 501 for an unknown transfer coding,
// 417 for an unknown expectation, 505 for another HTTP version), and a
// request whose head was still incomplete when the server's read deadline
// passed, including the next request's head on a keep-alive connection,
// is a slow_request. A connection that goes idle, or is closed by the
// client between requests or while idle, is not audited. HTTP/2
// connections are left to net/http's own limits.
//
// It also tells the connection where its requests begin and end, for the
// lingering close (see the package documentation).
func ConnState(c net.Conn, s http.ConnState) {
	hc, ok := c.(*httpConn)
	if !ok {
		return
	}
	switch s {
	case http.StateNew, http.StateIdle:
		hc.reset()
	case http.StateActive:
		hc.active.Store(true)
	case http.StateClosed:
		hc.closed()
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
