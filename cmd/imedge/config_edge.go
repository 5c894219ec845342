package main

import (
	"net/netip"
	"time"

	"github.com/imedge/imedge/edge"
)

// edgeConfig configures the hardening of the public listener (connection
// limits, source allow-list, handshake timeout, HTTP/2 limits, sandbox;
// package edge).
type edgeConfig struct {
	HandshakeTimeout time.Duration  // --handshake-timeout
	MaxConns         int            // --max-conns
	MaxConnsPerIP    int            // --max-conns-per-ip
	AllowSource      []netip.Prefix // --allow-source
	HTTP2Off         bool           // --http2=false
	HTTP2MaxStreams  int            // --http2-max-streams
	HTTP2MaxFrame    int            // --http2-max-read-frame-size
	NoSandbox        bool           // --no-sandbox
}

func (e *edgeConfig) register(fs *flagSet) {
	fs.group(groupLimits, func() {
		fs.DurationVar(&e.HandshakeTimeout, "handshake-timeout", edge.DefaultHandshakeTimeout, "deadline for a new connection's TLS handshake (separate from the HTTP timeouts)")
		fs.IntVar(&e.MaxConns, "max-conns", edge.DefaultMaxConns, "largest number of open connections; at the limit the oldest pending handshake is closed, or new connections wait")
		fs.IntVar(&e.MaxConnsPerIP, "max-conns-per-ip", edge.DefaultMaxConnsPerIP, "largest number of open connections per peer address (IPv6 per /64)")
		fs.IntVar(&e.HTTP2MaxStreams, "http2-max-streams", 100, "concurrent HTTP/2 streams per connection")
		// 16 KiB is the smallest frame HTTP/2 allows; callbacks are small.
		fs.IntVar(&e.HTTP2MaxFrame, "http2-max-read-frame-size", 16<<10, "largest HTTP/2 frame read, bytes (16384..16777215)")
	})
	fs.group(groupTLS, func() {
		fs.Var(prefixFlag{&e.AllowSource}, "allow-source", "peer CIDR allowed to connect (repeatable); others are closed before the TLS handshake (default: any)")
	})
	fs.group(groupTuning, func() {
		fs.Var(invertedBool{&e.HTTP2Off}, "http2", "serve HTTP/2 to clients that offer it (--http2=false: HTTP/1.1 only)")
		fs.BoolVar(&e.NoSandbox, "no-sandbox", false, "do not confine the process with Landlock after start")
	})
}

func (e edgeConfig) validate(Config) []error {
	var p problems
	if e.HandshakeTimeout <= 0 || e.HandshakeTimeout > time.Minute {
		p.add("--handshake-timeout must be 1ns..1m")
	}
	if e.MaxConns < 1 || e.MaxConns > 1<<20 {
		p.add("--max-conns must be 1..1048576")
	}
	if e.MaxConnsPerIP < 1 {
		p.add("--max-conns-per-ip must be positive")
	} else if e.MaxConns >= 1 && e.MaxConnsPerIP > e.MaxConns {
		p.add("--max-conns-per-ip must not exceed --max-conns")
	}
	if e.HTTP2MaxStreams < 1 || e.HTTP2MaxStreams > 10000 {
		p.add("--http2-max-streams must be 1..10000")
	}
	if e.HTTP2MaxFrame < 16<<10 || e.HTTP2MaxFrame > 1<<24-1 {
		p.add("--http2-max-read-frame-size must be 16384..16777215")
	}
	return p
}
