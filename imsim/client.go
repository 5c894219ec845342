package imsim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Target says where callbacks go and how the simulator authenticates.
type Target struct {
	// Addr is the receiver's host:port. Required.
	Addr string
	// Path is the request path; empty means "/".
	Path string
	// ServerName is sent as SNI and verified against the server
	// certificate; empty means the host part of Addr.
	ServerName string
	// TLS holds the trust anchors (RootCAs) and the client certificate
	// (Certificates) the simulator presents; it is cloned, never modified.
	// Nil means the system roots and no client certificate. Session ticket
	// settings are chosen per [Mode].
	TLS *tls.Config
	// Timeout bounds one request, connecting and handshaking included.
	// Zero means 10 s.
	Timeout time.Duration
}

func (t Target) check() error {
	if _, _, err := net.SplitHostPort(t.Addr); err != nil {
		return fmt.Errorf("checking target address %q: %w: want host:port", t.Addr, ErrInvalidOptions)
	}
	if t.Path != "" && t.Path[0] != '/' {
		return fmt.Errorf("checking target path %q: %w: must start with /", t.Path, ErrInvalidOptions)
	}
	return nil
}

func (t Target) path() string {
	if t.Path == "" {
		return "/"
	}
	return t.Path
}

func (t Target) timeout() time.Duration {
	if t.Timeout <= 0 {
		return 10 * time.Second
	}
	return t.Timeout
}

// tlsConfig returns the client configuration for one mode: full handshakes
// with tickets off (KeepAlive, NewConn) or a shared session cache (Resume).
func (t Target) tlsConfig(m Mode, cacheSize int) *tls.Config {
	var c *tls.Config
	if t.TLS != nil {
		c = t.TLS.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.ServerName == "" {
		c.ServerName = t.ServerName
	}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(t.Addr)
	}
	c.NextProtos = []string{"http/1.1"}
	if m == Resume {
		c.SessionTicketsDisabled = false
		c.ClientSessionCache = tls.NewLRUClientSessionCache(max(cacheSize, 1))
	} else {
		c.SessionTicketsDisabled = true
		c.ClientSessionCache = nil
	}
	return c
}

// Reply is the receiver's answer to one callback.
type Reply struct {
	Status       int    // HTTP status code
	RequestID    string // X-Request-Id header; empty when absent
	Body         []byte // reply body, at most 64 KiB
	ActionStatus string // from the JSON reply; empty when the body is not IM's reply JSON
	ErrorCode    int    // from the JSON reply
	ErrorInfo    string // from the JSON reply
	TLSVersion   uint16 // negotiated TLS version
	Resumed      bool   // the TLS session was resumed
}

// OK reports whether IM would count the callback as delivered and handled:
// status 200 with ActionStatus OK and ErrorCode 0.
func (r Reply) OK() bool {
	return r.Status == http.StatusOK && r.ActionStatus == "OK" && r.ErrorCode == 0
}

// maxReplyBody bounds how much of a reply body is kept.
const maxReplyBody = 64 << 10

// okReply is the exact reply imedge (and the benchmark sink) send; a reply
// equal to it needs no JSON decoding.
var okReply = []byte(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)

// opError is a failed request with the kind it is counted under.
type opError struct {
	kind string
	err  error
}

func (e *opError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// classify names the kind of a transport error: timeout, tls (handshake
// failures and alerts from the peer) or io.
func classify(err error, handshaking bool) string {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if handshaking {
		return "tls"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" { // a TLS alert, e.g. a refused client certificate under TLS 1.3
		return "tls"
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return "tls"
	}
	return "io"
}

// conn is one client connection speaking HTTP/1.1 over TLS.
type conn struct {
	tc      *tls.Conn
	br      *bufio.Reader
	resumed bool
}

// dialer opens connections to a target with one TLS configuration. It is
// safe for concurrent use.
type dialer struct {
	addr    string
	cfg     *tls.Config
	timeout time.Duration
	nd      net.Dialer
}

func newDialer(t Target, m Mode, cacheSize int) *dialer {
	return &dialer{addr: t.Addr, cfg: t.tlsConfig(m, cacheSize), timeout: t.timeout(),
		nd: net.Dialer{Timeout: t.timeout(), KeepAlive: -1}}
}

// dial connects and completes the TLS handshake. track, when not nil, is
// told the raw connection as soon as it exists, so that a stop can close it.
func (d *dialer) dial(ctx context.Context, deadline time.Time, track func(net.Conn)) (*conn, error) {
	raw, err := d.nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		kind := "dial"
		if classify(err, false) == "timeout" {
			kind = "timeout"
		}
		return nil, &opError{kind, err}
	}
	if track != nil {
		track(raw)
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	tc := tls.Client(raw, d.cfg)
	_ = tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &opError{classify(err, true), err}
	}
	return &conn{tc: tc, br: bufio.NewReaderSize(tc, 4096), resumed: tc.ConnectionState().DidResume}, nil
}

func (c *conn) Close() error { return c.tc.Close() }

// appendRequest appends an HTTP/1.1 POST of cb to b; extraQuery (such as a
// cached signature) is appended to cb's query.
func appendRequest(b []byte, host, path string, cb *Callback, extraQuery, body []byte, closeConn bool) []byte {
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, '?')
	b = cb.appendQuery(b, cb.RequestTime)
	b = append(b, extraQuery...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUser-Agent: imsim\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if closeConn {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// roundTrip writes req (a complete request) and reads the reply. keep
// reports whether the connection may carry another request.
func (c *conn) roundTrip(req []byte, deadline time.Time, full bool) (r Reply, keep bool, err error) {
	_ = c.tc.SetDeadline(deadline)
	if _, err := c.tc.Write(req); err != nil {
		return r, false, &opError{classify(err, false), err}
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return r, false, &opError{classify(err, false), err}
		}
		var oe *net.OpError
		if errors.As(err, &oe) || errors.Is(err, os.ErrDeadlineExceeded) {
			return r, false, &opError{classify(err, false), err}
		}
		return r, false, &opError{"bad_reply", fmt.Errorf("%w: %w", ErrBadReply, err)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // drain the rest for reuse
	}
	resp.Body.Close()
	if err != nil {
		return r, false, &opError{classify(err, false), err}
	}
	r.Status = resp.StatusCode
	r.RequestID = resp.Header.Get("X-Request-Id")
	r.Body = body
	r.Resumed = c.resumed
	r.TLSVersion = c.tc.ConnectionState().Version
	if bytes.Equal(body, okReply) {
		r.ActionStatus = "OK"
	} else if full || r.Status != http.StatusOK {
		var j struct {
			ActionStatus string
			ErrorCode    int
			ErrorInfo    string
		}
		if json.Unmarshal(body, &j) == nil {
			r.ActionStatus, r.ErrorCode, r.ErrorInfo = j.ActionStatus, j.ErrorCode, j.ErrorInfo
		}
	}
	return r, !resp.Close, nil
}

// Send posts one callback on a new connection and returns the reply. An
// error means no HTTP reply was received (connection refused, TLS refused,
// timeout, malformed reply); a reply that is not OK is not an error, check
// [Reply.OK].
func Send(ctx context.Context, t Target, cb Callback) (Reply, error) {
	if err := t.check(); err != nil {
		return Reply{}, err
	}
	d := newDialer(t, NewConn, 0)
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var mu sync.Mutex
	var raw net.Conn
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	c, err := d.dial(ctx, deadline, func(nc net.Conn) { mu.Lock(); raw = nc; mu.Unlock() })
	if err != nil {
		return Reply{}, fmt.Errorf("connecting to %s: %w", t.Addr, err)
	}
	defer c.Close()
	req := appendRequest(nil, t.Addr, t.path(), &cb, nil, cb.Body, true)
	r, _, err := c.roundTrip(req, deadline, true)
	if err != nil {
		if ctx.Err() != nil {
			return r, fmt.Errorf("sending callback: %w", ctx.Err())
		}
		return r, fmt.Errorf("sending callback: %w", err)
	}
	return r, nil
}
