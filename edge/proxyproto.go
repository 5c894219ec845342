package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/pires/go-proxyproto"

	"github.com/imedge/imedge/audit"
)

// ErrProxyRefused is returned (wrapped) by the PROXY protocol stage for a
// connection it refuses.
var ErrProxyRefused = errors.New("edge: PROXY protocol header refused")

// ProxyOptions configures [NewProxyStage].
type ProxyOptions struct {
	// Trusted lists the balancer networks whose connections must start
	// with a PROXY protocol v2 header. Required.
	Trusted []netip.Prefix
	// Audit receives one record per refused connection (reason
	// proxy_refused); nil discards.
	Audit *audit.Logger
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
}

// ProxyStats counts the stage's outcomes.
type ProxyStats struct {
	Proxied uint64 // trusted connections whose client address came from the header
	Local   uint64 // trusted connections with a LOCAL header (balancer health checks)
	Direct  uint64 // untrusted connections without a header, passed through as they are
	Refused uint64 // connections refused and audited
	Probes  uint64 // trusted connections closed before sending a byte (TCP health checks), not audited
}

// ProxyStage reads PROXY protocol v2 headers (github.com/pires/go-proxyproto)
// so that everything after it (the source allow-list, the per-address
// connection cap, the audit records and, through RemoteAddr, the
// receiver) sees the client behind the balancer. The policy:
//
//   - a peer inside Trusted must send a v2 header first. A PROXY header
//     gives the client address; a LOCAL header (a balancer's own health
//     check) keeps the peer's. A missing, v1 or malformed header is refused
//     and audited: accepting it would make every client look like the
//     balancer, sharing its per-address limits. A peer that closes, resets
//     or stays silent before sending a byte (a plain TCP health check) is
//     closed without audit.
//   - a peer outside Trusted that sends a PROXY header (v1 or v2) is
//     refused and audited: it is trying to choose its own address. Without a
//     header it passes through unchanged, as a direct client.
//
// A ProxyStage is created with [NewProxyStage]; it is safe for concurrent
// use and holds no goroutines.
type ProxyStage struct {
	o ProxyOptions
	n struct{ proxied, local, direct, refused, probes atomic.Uint64 }
}

// NewProxyStage returns the stage for o. It fails, wrapping [ErrBadOption],
// when Trusted is empty or holds an invalid prefix.
func NewProxyStage(o ProxyOptions) (*ProxyStage, error) {
	if len(o.Trusted) == 0 {
		return nil, fmt.Errorf("checking trusted balancers: %w: none given", ErrBadOption)
	}
	trusted := make([]netip.Prefix, 0, len(o.Trusted))
	for _, p := range o.Trusted {
		if !p.IsValid() {
			return nil, fmt.Errorf("checking trusted balancer %q: %w", p.String(), ErrBadOption)
		}
		trusted = append(trusted, p.Masked())
	}
	o.Trusted = trusted
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &ProxyStage{o: o}, nil
}

// Stage returns the stage function for [Options.Stages]; put it first.
func (s *ProxyStage) Stage() Stage { return s.run }

// Stats returns a snapshot of the stage's counters.
func (s *ProxyStage) Stats() ProxyStats {
	return ProxyStats{Proxied: s.n.proxied.Load(), Local: s.n.local.Load(), Direct: s.n.direct.Load(),
		Refused: s.n.refused.Load(), Probes: s.n.probes.Load()}
}

func (s *ProxyStage) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.o.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// run reads (or checks the absence of) the header within the handshake
// deadline, which the listener has set on c.
func (s *ProxyStage) run(_ context.Context, c net.Conn) (net.Conn, error) {
	br := bufio.NewReaderSize(c, 256)
	if !s.trusted(peerAddr(c.RemoteAddr())) {
		// A TLS ClientHello never starts with either signature and is
		// longer than both, so the peek returns at once for a real client.
		head, _ := br.Peek(len(proxyproto.SIGV2))
		if bytes.HasPrefix(head, proxyproto.SIGV1) || bytes.Equal(head, proxyproto.SIGV2) {
			return nil, s.refuse(c, "PROXY header from a peer not in --proxy-protocol")
		}
		s.n.direct.Add(1)
		return &bufferedConn{Conn: c, r: br}, nil
	}
	if _, err := br.Peek(1); err != nil {
		// Closed, reset or silent before the first byte: a balancer's TCP
		// health check, not an attack worth an audit record.
		s.n.probes.Add(1)
		return nil, fmt.Errorf("reading PROXY header: %w: %w (health check)", ErrProxyRefused, err)
	}
	h, err := proxyproto.Read(br)
	if err != nil {
		s.o.Logger.Debug("PROXY header unreadable", "remote_addr", addrString(c), "err", err)
		return nil, s.refuse(c, "trusted balancer sent no valid PROXY v2 header")
	}
	if h.Version != 2 {
		return nil, s.refuse(c, "trusted balancer sent PROXY v1; v2 required")
	}
	if h.Command.IsLocal() {
		s.n.local.Add(1)
		return &bufferedConn{Conn: c, r: br}, nil
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || src == nil {
		return nil, s.refuse(c, "PROXY v2 header without a TCP source address")
	}
	s.n.proxied.Add(1)
	return &bufferedConn{Conn: c, r: br, remote: src}, nil
}

func (s *ProxyStage) refuse(c net.Conn, detail string) error {
	s.n.refused.Add(1)
	s.o.Audit.Log(audit.Record{Reason: audit.ProxyRefused, Detail: detail, RemoteAddr: addrString(c)})
	s.o.Logger.Debug("connection refused", slog.String("reason", string(audit.ProxyRefused)),
		slog.String("remote_addr", addrString(c)), slog.String("detail", detail))
	return fmt.Errorf("%w: %s", ErrProxyRefused, detail)
}

// bufferedConn reads through the buffer that held the PROXY header (and
// perhaps the start of the TLS handshake) and, for a proxied connection,
// reports the client's address as RemoteAddr. Close closes the
// underlying connection.
type bufferedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) RemoteAddr() net.Addr {
	if b.remote != nil {
		return b.remote
	}
	return b.Conn.RemoteAddr()
}
