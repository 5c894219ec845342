package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/edge"
)

// edgeConfig configures the hardening of the public listener (connection
// limits, source allow-list, handshake timeout, HTTP/2 limits, sandbox).
// Zero numbers mean the defaults below, so a Config built in a test without
// flags is valid.
type edgeConfig struct {
	HandshakeTimeout time.Duration // --handshake-timeout
	MaxConns         int           // --max-conns
	MaxConnsPerIP    int           // --max-conns-per-ip
	AllowSource      []string      // --allow-source CIDRs (or single addresses)
	HTTP2Off         bool          // --http2=false
	HTTP2MaxStreams  int           // --http2-max-streams
	HTTP2MaxFrame    int           // --http2-max-read-frame-size
	NoSandbox        bool          // --no-sandbox
}

// Edge defaults, documented in the README's flag table.
const (
	defaultHandshakeTimeout = edge.DefaultHandshakeTimeout
	defaultMaxConns         = edge.DefaultMaxConns
	defaultMaxConnsPerIP    = edge.DefaultMaxConnsPerIP
	defaultHTTP2MaxStreams  = 100
	defaultHTTP2MaxFrame    = 16 << 10 // the smallest HTTP/2 allows; callbacks are small
)

func (e *edgeConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&e.HandshakeTimeout, "handshake-timeout", defaultHandshakeTimeout, "deadline for a new connection's TLS handshake (separate from the HTTP timeouts)")
	fs.IntVar(&e.MaxConns, "max-conns", defaultMaxConns, "largest number of open connections; at the limit the oldest pending handshake is closed, or new connections wait")
	fs.IntVar(&e.MaxConnsPerIP, "max-conns-per-ip", defaultMaxConnsPerIP, "largest number of open connections per peer address (IPv6 per /64)")
	fs.Var(listFlag{&e.AllowSource}, "allow-source", "peer CIDR allowed to connect (repeatable); others are closed before the TLS handshake (default: any)")
	fs.Var(invertedBool{&e.HTTP2Off}, "http2", "serve HTTP/2 to clients that offer it (--http2=false: HTTP/1.1 only)")
	fs.IntVar(&e.HTTP2MaxStreams, "http2-max-streams", defaultHTTP2MaxStreams, "concurrent HTTP/2 streams per connection")
	fs.IntVar(&e.HTTP2MaxFrame, "http2-max-read-frame-size", defaultHTTP2MaxFrame, "largest HTTP/2 frame read, bytes (16384..16777215)")
	fs.BoolVar(&e.NoSandbox, "no-sandbox", false, "do not confine the process with Landlock after start")
}

// errHTTP1Removed is the error of serve's removed --http1 flag.
var errHTTP1Removed = errors.New("--http1: removed, imedge always uses net/http")

// removedFlag returns the error of a removed serve flag named in args (as
// "--name", "-name" or with "=value"), or nil.
func removedFlag(args []string) error {
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); name == "http1" {
			return errHTTP1Removed
		}
	}
	return nil
}

func (e edgeConfig) validate(c Config) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if e.HandshakeTimeout < 0 || e.HandshakeTimeout > time.Minute {
		bad("--handshake-timeout must be 1ns..1m")
	}
	if e.MaxConns < 0 || e.MaxConns > 1<<20 {
		bad("--max-conns must be 1..1048576")
	}
	if e.MaxConnsPerIP < 0 {
		bad("--max-conns-per-ip must be positive")
	} else if e.MaxConns >= 0 && e.maxConnsPerIP() > e.maxConns() {
		bad("--max-conns-per-ip must not exceed --max-conns")
	}
	if _, err := e.sources(); err != nil {
		errs = append(errs, err)
	}
	if e.HTTP2MaxStreams < 0 || e.HTTP2MaxStreams > 10000 {
		bad("--http2-max-streams must be 1..10000")
	}
	if e.HTTP2MaxFrame != 0 && (e.HTTP2MaxFrame < 16<<10 || e.HTTP2MaxFrame > 1<<24-1) {
		bad("--http2-max-read-frame-size must be 16384..16777215")
	}
	return errs
}

func (e edgeConfig) handshakeTimeout() time.Duration {
	if e.HandshakeTimeout == 0 {
		return defaultHandshakeTimeout
	}
	return e.HandshakeTimeout
}

func (e edgeConfig) maxConns() int {
	if e.MaxConns == 0 {
		return defaultMaxConns
	}
	return e.MaxConns
}

func (e edgeConfig) maxConnsPerIP() int {
	if e.MaxConnsPerIP == 0 {
		return defaultMaxConnsPerIP
	}
	return e.MaxConnsPerIP
}

func (e edgeConfig) http2MaxStreams() int {
	if e.HTTP2MaxStreams == 0 {
		return defaultHTTP2MaxStreams
	}
	return e.HTTP2MaxStreams
}

func (e edgeConfig) http2MaxFrame() int {
	if e.HTTP2MaxFrame == 0 {
		return defaultHTTP2MaxFrame
	}
	return e.HTTP2MaxFrame
}

// sources parses --allow-source.
func (e edgeConfig) sources() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range e.AllowSource {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-source %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// invertedBool is a boolean flag stored inverted, for a flag that is on by
// default (--http2) backed by a field whose zero value means on.
type invertedBool struct{ off *bool }

func (b invertedBool) String() string {
	if b.off == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.off)
}

func (b invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*b.off = !v
	return nil
}

func (b invertedBool) IsBoolFlag() bool { return true }
