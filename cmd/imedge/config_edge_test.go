package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseEdgeFlags(t *testing.T, args ...string) edgeConfig {
	t.Helper()
	fs, c := newServeFlags()
	require.NoError(t, fs.parse(args))
	return c.Edge
}

func TestEdgeConfig_Defaults(t *testing.T) {
	t.Parallel()
	e := parseEdgeFlags(t)
	assert.Equal(t, 5*time.Second, e.HandshakeTimeout)
	assert.Equal(t, 1024, e.MaxConns)
	assert.Equal(t, 64, e.MaxConnsPerIP)
	assert.False(t, e.HTTP2Off, "HTTP/2 on by default")
	assert.Equal(t, 100, e.HTTP2MaxStreams)
	assert.Equal(t, 16384, e.HTTP2MaxFrame)
	assert.False(t, e.NoSandbox, "sandbox on by default")
	assert.Empty(t, e.validate(Config{}))
}

func TestEdgeConfig_Flags(t *testing.T) {
	t.Parallel()
	e := parseEdgeFlags(t, "--handshake-timeout", "2s", "--max-conns", "10", "--max-conns-per-ip", "3",
		"--allow-source", "10.0.0.0/8,192.0.2.7", "--allow-source", "2001:db8::/32", "--http2=false",
		"--http2-max-streams", "8", "--no-sandbox")
	assert.Equal(t, 2*time.Second, e.HandshakeTimeout)
	assert.Equal(t, 10, e.MaxConns)
	assert.Equal(t, 3, e.MaxConnsPerIP)
	assert.True(t, e.HTTP2Off)
	assert.True(t, e.NoSandbox)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32")}, e.AllowSource)
	assert.Empty(t, e.validate(Config{}))

	assert.True(t, parseEdgeFlags(t, "--http2=false", "--http2").HTTP2Off == false, "the last --http2 wins")
}

func TestEdgeConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--handshake-timeout", "-1s"}, "--handshake-timeout"},
		{[]string{"--handshake-timeout", "2m"}, "--handshake-timeout"},
		{[]string{"--max-conns", "-1"}, "--max-conns must be"},
		{[]string{"--max-conns-per-ip", "-3"}, "--max-conns-per-ip must be positive"},
		{[]string{"--max-conns", "10", "--max-conns-per-ip", "11"}, "must not exceed --max-conns"},
		{[]string{"--http2-max-streams", "-1"}, "--http2-max-streams"},
		{[]string{"--http2-max-read-frame-size", "1000"}, "--http2-max-read-frame-size"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			errs := parseEdgeFlags(t, tc.args...).validate(Config{})
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), tc.want)
		})
	}
	fs, _ := newServeFlags()
	assert.Error(t, fs.parse([]string{"--http2=maybe"}), "--http2 takes a boolean")
	for _, bad := range []string{"10.0.0.0/33", "example.com"} {
		fs, _ := newServeFlags()
		assert.ErrorContains(t, fs.parse([]string{"--allow-source", bad}), `--allow-source: "`+bad+`": want a CIDR`)
	}
}
