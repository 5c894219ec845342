package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseEdgeFlags(t *testing.T, args ...string) edgeConfig {
	t.Helper()
	fs, sf := newServeFlagSet(&bytes.Buffer{})
	require.NoError(t, fs.Parse(args))
	return sf.cfg.Edge
}

func TestEdgeConfig_Defaults(t *testing.T) {
	e := parseEdgeFlags(t)
	assert.Equal(t, 5*time.Second, e.HandshakeTimeout)
	assert.Equal(t, 1024, e.MaxConns)
	assert.Equal(t, 64, e.MaxConnsPerIP)
	assert.False(t, e.HTTP2Off, "HTTP/2 on by default")
	assert.Equal(t, 100, e.HTTP2MaxStreams)
	assert.Equal(t, 16384, e.HTTP2MaxFrame)
	assert.False(t, e.NoSandbox, "sandbox on by default")
	assert.Empty(t, e.validate(Config{}))

	var zero edgeConfig // a Config built in code gets the same defaults
	assert.Equal(t, e.handshakeTimeout(), zero.handshakeTimeout())
	assert.Equal(t, e.maxConns(), zero.maxConns())
	assert.Equal(t, e.maxConnsPerIP(), zero.maxConnsPerIP())
	assert.Equal(t, e.http2MaxStreams(), zero.http2MaxStreams())
	assert.Equal(t, e.http2MaxFrame(), zero.http2MaxFrame())
	assert.Empty(t, zero.validate(Config{}))
}

func TestEdgeConfig_Flags(t *testing.T) {
	e := parseEdgeFlags(t, "--handshake-timeout", "2s", "--max-conns", "10", "--max-conns-per-ip", "3",
		"--allow-source", "10.0.0.0/8,192.0.2.7", "--allow-source", "2001:db8::/32", "--http2=false",
		"--http2-max-streams", "8", "--no-sandbox")
	assert.Equal(t, 2*time.Second, e.handshakeTimeout())
	assert.Equal(t, 10, e.maxConns())
	assert.Equal(t, 3, e.maxConnsPerIP())
	assert.True(t, e.HTTP2Off)
	assert.True(t, e.NoSandbox)
	src, err := e.sources()
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32")}, src)
	assert.Empty(t, e.validate(Config{}))

	assert.True(t, parseEdgeFlags(t, "--http2=false", "--http2").HTTP2Off == false, "the last --http2 wins")
}

func TestEdgeConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--handshake-timeout", "-1s"}, "--handshake-timeout"},
		{[]string{"--handshake-timeout", "2m"}, "--handshake-timeout"},
		{[]string{"--max-conns", "-1"}, "--max-conns must be"},
		{[]string{"--max-conns-per-ip", "-3"}, "--max-conns-per-ip must be positive"},
		{[]string{"--max-conns", "10", "--max-conns-per-ip", "11"}, "must not exceed --max-conns"},
		{[]string{"--allow-source", "10.0.0.0/33"}, `--allow-source "10.0.0.0/33"`},
		{[]string{"--allow-source", "example.com"}, `--allow-source "example.com"`},
		{[]string{"--http2-max-streams", "-1"}, "--http2-max-streams"},
		{[]string{"--http2-max-read-frame-size", "1000"}, "--http2-max-read-frame-size"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			errs := parseEdgeFlags(t, tc.args...).validate(Config{})
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), tc.want)
		})
	}
	fs, _ := newServeFlagSet(&bytes.Buffer{})
	assert.Error(t, fs.Parse([]string{"--http2=maybe"}), "--http2 takes a boolean")
}

// The removed --http1 flag fails at start with one line saying what to do,
// in every spelling, before anything else is parsed.
func TestServeConfig_RemovedHTTP1Flag(t *testing.T) {
	for _, args := range [][]string{
		{"--http1", "fast"}, {"--http1=std"}, {"-http1", "fast"}, {"--listen", "127.0.0.1:0", "--http1", "std"},
	} {
		var out bytes.Buffer
		_, _, help, err := parseServeConfig(args, func(string) string { return "" }, &out)
		assert.False(t, help)
		require.ErrorIs(t, err, errHTTP1Removed, "%v", args)
		assert.Equal(t, "--http1: removed, imedge always uses net/http", err.Error())
		assert.Empty(t, out.String(), "no usage text, just the one line")
	}
}
