package h1

import (
	"net"
	"sync"
)

// Handoff is a net.Listener whose Accept returns the connections given to
// Put, so that another server (net/http for HTTP/2) can serve connections
// a Server passed on through Server.Other.
//
// Create it with NewHandoff. Safe for concurrent use. After Close, Accept
// returns net.ErrClosed and Put closes the connection it is given.
type Handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewHandoff returns an open Handoff that reports addr as its address.
func NewHandoff(addr net.Addr) *Handoff {
	return &Handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Put passes c to the next Accept, waiting for it; it closes c if the
// Handoff is or becomes closed first.
func (h *Handoff) Put(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

// Accept returns the next connection given to Put.
func (h *Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; it never fails.
func (h *Handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr returns the address given to NewHandoff.
func (h *Handoff) Addr() net.Addr { return h.addr }
