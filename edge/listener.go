package edge

import (
	"bytes"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/audit"
)

// Listener is a net.Listener whose Accept returns only connections that
// completed their TLS handshake within the handshake timeout and passed the
// connection checks (see the package documentation for the chain): a
// *tls.Conn for a connection that negotiated HTTP/2, and for any other a
// net.Conn reading and writing the plaintext, with the ConnectionState
// method from which net/http sets Request.TLS (see the package
// documentation).
//
// Create it with New; it starts its accept loop at once. Safe for
// concurrent use. Close stops the loop, closes every connection that has
// not reached Accept yet and waits for the listener's goroutines; it does
// not close connections already returned by Accept (http.Server owns them).
type Listener struct {
	inner net.Listener
	o     Options
	allow atomic.Pointer[[]netip.Prefix] // the static allow-list: Options.AllowSources, then SetAllowSources

	ready    chan net.Conn
	done     chan struct{} // closed by Close
	loopDone chan struct{} // closed when the accept loop ends
	once     sync.Once
	wg       sync.WaitGroup

	mu       sync.Mutex
	open     int                // connections holding a slot
	evicting int                // evicted connections not yet released
	perKey   map[netip.Addr]int // open connections per peer key
	silent   list.List          // *pendingConn before Accept that sent nothing yet, oldest first
	talking  list.List          // *pendingConn before Accept that sent bytes (handshaking), oldest first
	freed    chan struct{}      // capacity 1: a slot was released

	n counters
}

type counters struct {
	accepted, handshakes, sourceDenied, perIPRefused, evicted atomic.Uint64
	timeouts, handshakeFailed, stageRefused, slowReq, badReq  atomic.Uint64
	acceptErrors, lingered, lingerCut                         atomic.Uint64
}

// Stats is a snapshot of a Listener's counters. Counts are since New.
type Stats struct {
	Open            int    // connections holding a slot now
	Pending         int    // of which still before Accept (stages, checks, handshake)
	Talking         int    // of which have sent bytes (their handshake began); eviction spares them first
	Accepted        uint64 // TCP connections accepted
	Handshakes      uint64 // handshakes completed and handed to Accept
	SourceDenied    uint64 // closed by the source allow-list
	PerIPRefused    uint64 // closed by the per-address cap
	Evicted         uint64 // pending handshakes closed to make room at MaxConns
	Timeouts        uint64 // handshakes not complete within the timeout
	HandshakeFailed uint64 // other handshake failures (refused certificates, garbage)
	StageRefused    uint64 // refused by an Options.Stages entry
	SlowRequests    uint64 // HTTP/1 requests whose headers timed out (see ConnState)
	BadRequests     uint64 // HTTP/1 requests the HTTP server refused on its own (see ConnState)
	AcceptErrors    uint64 // temporary errors from the inner Accept (retried)
	Lingered        uint64 // HTTP/1 connections closed after an answer that lingered first
	LingerCut       uint64 // ... of which a bound ended the linger before the client's end of stream
}

// pendingConn is a connection holding a slot that has not reached Accept.
// Its fields other than raw and talked are guarded by Listener.mu.
type pendingConn struct {
	raw     net.Conn
	elem    *list.Element // in Listener.silent or .talking; nil once out
	in      *list.List    // the list elem is in
	evicted bool
	talked  bool // set once by the handshake goroutine (see markTalking)
}

// New starts serving inner. The Listener takes ownership of inner.
func New(inner net.Listener, o Options) (*Listener, error) {
	if err := o.normalise(); err != nil {
		return nil, err
	}
	allow := slices.Clone(o.AllowSources)
	o.AllowSources = nil // read through l.allow
	o.Stages = slices.Clone(o.Stages)
	l := &Listener{
		inner:    inner,
		o:        o,
		ready:    make(chan net.Conn),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
		perKey:   make(map[netip.Addr]int),
		freed:    make(chan struct{}, 1),
	}
	l.allow.Store(&allow)
	l.wg.Go(l.acceptLoop)
	return l, nil
}

// Accept waits for the next connection that completed its TLS handshake.
// After Close it returns net.ErrClosed; it returns no other error.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.loopDone:
		return nil, net.ErrClosed
	}
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, closes the connections not yet returned by Accept
// and waits for the listener's goroutines, which end promptly. Safe to call
// more than once; later calls return nil.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		for _, pending := range []*list.List{&l.silent, &l.talking} {
			for e := pending.Front(); e != nil; e = e.Next() {
				_ = e.Value.(*pendingConn).raw.Close()
			}
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// Stats returns the current counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open, talking, pending := l.open, l.talking.Len(), l.silent.Len()+l.talking.Len()
	l.mu.Unlock()
	return Stats{
		Open: open, Pending: pending, Talking: talking,
		Accepted: l.n.accepted.Load(), Handshakes: l.n.handshakes.Load(),
		SourceDenied: l.n.sourceDenied.Load(), PerIPRefused: l.n.perIPRefused.Load(),
		Evicted: l.n.evicted.Load(), Timeouts: l.n.timeouts.Load(),
		HandshakeFailed: l.n.handshakeFailed.Load(), StageRefused: l.n.stageRefused.Load(),
		SlowRequests: l.n.slowReq.Load(), BadRequests: l.n.badReq.Load(),
		AcceptErrors: l.n.acceptErrors.Load(), Lingered: l.n.lingered.Load(), LingerCut: l.n.lingerCut.Load(),
	}
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// acceptLoop accepts TCP connections and starts one goroutine per admitted
// connection. It never ends on a temporary error (out of descriptors, a
// connection reset before accept): it backs off and retries.
func (l *Listener) acceptLoop() {
	defer close(l.loopDone)
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			l.n.acceptErrors.Add(1)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.o.Logger.Warn("accepting connection; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		l.n.accepted.Add(1)
		p, ok := l.admit(c)
		if !ok {
			_ = c.Close()
			return
		}
		l.wg.Go(func() { l.serveConn(p) })
	}
}

// admit takes a slot for c. When all slots are taken it closes a pending
// connection to make room: the oldest that has not sent a byte, else the
// oldest still in its handshake; it waits when none is pending (every slot
// holds an established connection). Preferring silent connections keeps a
// flood of idle connections from evicting a client whose handshake is
// under way. It reports false once the listener is closed.
func (l *Listener) admit(c net.Conn) (*pendingConn, bool) {
	l.mu.Lock()
	for {
		if l.closed() {
			l.mu.Unlock()
			return nil, false
		}
		if l.open < l.o.MaxConns {
			break
		}
		// Evict only as many as are needed: connections already evicted
		// free their slots as soon as their goroutine sees the close.
		if l.open-l.evicting >= l.o.MaxConns {
			e := l.silent.Front()
			if e == nil {
				e = l.talking.Front()
			}
			if e != nil {
				v := e.Value.(*pendingConn)
				v.in.Remove(e)
				v.elem, v.in, v.evicted = nil, nil, true
				l.evicting++
				l.n.evicted.Add(1)
				_ = v.raw.Close()
			}
		}
		l.mu.Unlock()
		select {
		case <-l.freed:
		case <-l.done:
			return nil, false
		}
		l.mu.Lock()
	}
	l.open++
	p := &pendingConn{raw: c, in: &l.silent}
	p.elem = l.silent.PushBack(p)
	l.mu.Unlock()
	return p, true
}

// leavePending takes p out of the pending list and reports whether it had
// been evicted.
func (l *Listener) leavePending(p *pendingConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.elem != nil {
		p.in.Remove(p.elem)
		p.elem, p.in = nil, nil
	}
	return p.evicted
}

// markTalking moves a pending connection that sent its first bytes from
// the silent list to the talking one.
func (l *Listener) markTalking(p *pendingConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.elem != nil && p.in == &l.silent {
		l.silent.Remove(p.elem)
		p.in = &l.talking
		p.elem = l.talking.PushBack(p)
	}
}

// release frees p's slot and, when hasKey, its per-address count.
func (l *Listener) release(p *pendingConn, key netip.Addr, hasKey bool) {
	l.mu.Lock()
	l.open--
	if p.evicted {
		l.evicting--
	}
	if p.elem != nil {
		p.in.Remove(p.elem)
		p.elem, p.in = nil, nil
	}
	if hasKey {
		if n := l.perKey[key] - 1; n > 0 {
			l.perKey[key] = n
		} else {
			delete(l.perKey, key)
		}
	}
	l.mu.Unlock()
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// takeKey counts one more connection for key unless it is at the cap.
func (l *Listener) takeKey(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perKey[key] >= l.o.MaxConnsPerIP {
		return false
	}
	l.perKey[key]++
	return true
}

// serveConn runs the chain for one admitted connection and hands the TLS
// connection to Accept.
func (l *Listener) serveConn(p *pendingConn) {
	deadline := time.Now().Add(l.o.HandshakeTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_ = p.raw.SetDeadline(deadline)

	c := p.raw
	for _, stage := range l.o.Stages {
		next, err := stage(ctx, c)
		if err != nil {
			l.n.stageRefused.Add(1)
			l.o.Logger.Debug("connection refused by a stage", "remote_addr", addrString(c), "err", err)
			l.drop(p, c, netip.Addr{}, false)
			return
		}
		c = next
	}

	peer := peerAddr(c.RemoteAddr())
	if !l.sourceAllowed(peer) {
		l.n.sourceDenied.Add(1)
		l.refuse(c, audit.SourceDenied, l.sourceDeniedDetail())
		l.drop(p, c, netip.Addr{}, false)
		return
	}
	key := l.keyOf(peer)
	if !l.takeKey(key) {
		l.n.perIPRefused.Add(1)
		l.refuse(c, audit.ConnLimit, "too many connections from this address")
		l.drop(p, c, netip.Addr{}, false)
		return
	}

	t := &trackedConn{Conn: c, l: l, p: p, key: key}
	tc := tls.Server(t, l.o.TLSConfig)
	err := tc.HandshakeContext(ctx)
	evicted := l.leavePending(p)
	if err != nil {
		l.handshakeFailed(t, err, evicted)
		_ = tc.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	t.h2 = cs.NegotiatedProtocol == "h2"
	t.version = cs.Version
	if len(cs.PeerCertificates) > 0 {
		t.leaf = cs.PeerCertificates[0]
	}
	l.n.handshakes.Add(1)
	var out net.Conn = tc
	if !t.h2 {
		out = newHTTPConn(tc, t)
	}
	select {
	case l.ready <- out:
	case <-l.done:
		_ = tc.Close()
	}
}

// drop closes c (and so p.raw) and frees p's slot.
func (l *Listener) drop(p *pendingConn, c net.Conn, key netip.Addr, hasKey bool) {
	_ = c.Close()
	if c != p.raw {
		_ = p.raw.Close()
	}
	l.release(p, key, hasKey)
}

// handshakeFailed classifies a failed handshake. Refused certificates and
// versions were audited by the TLS configuration's own verifier; evictions
// and timeouts are audited here.
func (l *Listener) handshakeFailed(t *trackedConn, err error, evicted bool) {
	var rh tls.RecordHeaderError
	switch {
	case evicted:
		l.refuse(t, audit.ConnLimit, "connection limit reached: oldest pending handshake closed")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		l.n.timeouts.Add(1)
		l.refuse(t, audit.TLSTimeout, "TLS handshake not complete within --handshake-timeout")
	case errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]):
		// Plain HTTP on the TLS port: answer as net/http would have.
		l.n.handshakeFailed.Add(1)
		_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	default:
		l.n.handshakeFailed.Add(1)
		l.o.Logger.Debug("tls handshake failed", "remote_addr", addrString(t), "err", err)
	}
}

func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"} {
		if bytes.HasPrefix(hdr, []byte(m)) {
			return true
		}
	}
	return false
}

// refuse writes the audit record of a connection refused by the listener.
func (l *Listener) refuse(c net.Conn, reason audit.Reason, detail string) {
	l.o.Audit.Log(audit.Record{Reason: reason, Detail: detail, RemoteAddr: addrString(c)})
	l.o.Logger.Debug("connection refused", slog.String("reason", string(reason)), slog.String("remote_addr", addrString(c)))
}

// sourceAllowed checks a against AllowSources and AllowSet. Without an
// AllowSet, an empty AllowSources allows any peer; with one, it allows none
// by itself.
func (l *Listener) sourceAllowed(a netip.Addr) bool {
	static := *l.allow.Load()
	if len(static) == 0 && l.o.AllowSet == nil {
		return true
	}
	if !a.IsValid() {
		return false
	}
	for _, p := range static {
		if p.Contains(a) {
			return true
		}
	}
	return l.o.AllowSet != nil && l.o.AllowSet.Contains(a)
}

// SetAllowSources replaces the static source allow-list (Options.AllowSources)
// for connections accepted from now on; SIGHUP applies a changed
// --allow-source this way. The same rules apply: without an AllowSet an
// empty list admits any peer. Safe for concurrent use.
func (l *Listener) SetAllowSources(ps []netip.Prefix) {
	next := slices.Clone(ps)
	l.allow.Store(&next)
}

// sourceDeniedDetail is the audit detail of a source_denied refusal.
func (l *Listener) sourceDeniedDetail() string {
	if l.o.AllowSet != nil {
		return "peer address on neither --allow-source nor the dynamic allow-list (IM's egress list)"
	}
	return "peer address not on --allow-source"
}

// keyOf is the per-address key: the IPv4 address, or the IPv6 prefix.
func (l *Listener) keyOf(a netip.Addr) netip.Addr {
	if a.Is6() {
		if p, err := a.Prefix(l.o.IPv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return a
}

// peerAddr is the IP of a TCP address, IPv4-mapped IPv6 unmapped; the zero
// Addr for anything else.
func peerAddr(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func addrString(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}
