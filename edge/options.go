package edge

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/imedge/imedge/audit"
)

// Defaults applied to zero Options fields.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxConns         = 1024
	DefaultMaxConnsPerIP    = 64
	DefaultIPv6Prefix       = 64
	DefaultLingerTime       = 5 * time.Second
	DefaultLingerBytes      = 4 << 20
)

// A Stage examines, replaces or refuses a connection before the source
// check and the TLS handshake. It runs on the connection's own goroutine; ctx
// ends at the handshake deadline, which is also set on the connection. A
// Stage returns the connection to continue with (the same one, or a wrapper
// whose Close closes it, for instance one whose RemoteAddr is the client
// behind a PROXY protocol header) or an error, after which the listener
// closes the connection it passed in. A Stage that refuses should audit its
// own refusal.
type Stage func(ctx context.Context, c net.Conn) (net.Conn, error)

// SourceSet is a set of peer addresses that may change while a Listener
// runs: IM's callback egress list, kept current by package egress, is one.
// Contains is called for every new connection, on its own goroutine and
// before its TLS handshake, so it must be safe for concurrent use and must
// neither block nor take a lock a writer holds for long.
type SourceSet interface {
	Contains(a netip.Addr) bool
}

// Options configures a Listener. TLSConfig is required; zero numbers take
// the defaults above. New copies the Options.
type Options struct {
	// TLSConfig is the server configuration for every handshake. Use one
	// config per Listener: its automatic session-ticket keys make resumption
	// work across connections.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the whole pre-HTTP phase of a connection:
	// stages, checks and the TLS handshake. Zero means 5s.
	HandshakeTimeout time.Duration
	// MaxConns bounds open connections (in their handshake or established).
	// Zero means 1024.
	MaxConns int
	// MaxConnsPerIP bounds open connections per peer address (IPv6 per
	// IPv6Prefix). Zero means 64.
	MaxConnsPerIP int
	// IPv6Prefix is the prefix length IPv6 peers are grouped by for
	// MaxConnsPerIP. Zero means 64.
	IPv6Prefix int
	// AllowSources, when not empty, lists the only peer networks allowed;
	// other peers are closed before the TLS handshake.
	AllowSources []netip.Prefix
	// AllowSet, when not nil, is a source allow-list that changes while the
	// listener runs; a peer is allowed when AllowSources or AllowSet
	// contains it. With AllowSet set, an empty AllowSources adds nothing (it
	// no longer means any peer): until AllowSet holds an address, only
	// AllowSources' peers are admitted, and with none, nobody (fail closed).
	AllowSet SourceSet
	// Stages run first, in order, before the source check: the place for a
	// PROXY protocol reader, so that the checks see the real client.
	Stages []Stage
	// LingerTime bounds how long an HTTP/1 connection closed after an
	// answer keeps reading and dropping what the client still sends, so
	// that the answer is not lost to a reset (see the package
	// documentation); the read deadline the HTTP server last set bounds it
	// too. Zero means 5s.
	LingerTime time.Duration
	// LingerBytes bounds how much such a connection reads and drops. Zero
	// means 4 MiB.
	LingerBytes int64
	// Audit receives one record per refused connection; nil discards.
	Audit *audit.Logger
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
}

func (o *Options) normalise() error {
	if o.TLSConfig == nil {
		return ErrNoTLSConfig
	}
	if o.HandshakeTimeout < 0 || o.MaxConns < 0 || o.MaxConnsPerIP < 0 ||
		o.LingerTime < 0 || o.LingerBytes < 0 {
		return fmt.Errorf("checking limits: %w: negative value", ErrBadOption)
	}
	if o.IPv6Prefix < 0 || o.IPv6Prefix > 128 {
		return fmt.Errorf("checking IPv6 prefix %d: %w: want 0..128", o.IPv6Prefix, ErrBadOption)
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if o.IPv6Prefix == 0 {
		o.IPv6Prefix = DefaultIPv6Prefix
	}
	if o.LingerTime == 0 {
		o.LingerTime = DefaultLingerTime
	}
	if o.LingerBytes == 0 {
		o.LingerBytes = DefaultLingerBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
