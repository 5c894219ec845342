package edge_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/edge"
)

// balancer is the loopback address the tests trust as the balancer.
const balancer = "127.0.0.2"

func proxyHeader(client string, port int) *proxyproto.Header {
	return &proxyproto.Header{
		Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(client), Port: port},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443},
	}
}

// remoteAddrHandler answers with the request's RemoteAddr.
func remoteAddrHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.RemoteAddr) })
}

// proxiedGet dials from src, writes prefix (a PROXY header, or nothing),
// then runs one HTTPS request over the connection and returns the body.
func proxiedGet(t *testing.T, e *env, addr, src string, prefix []byte) (string, error) {
	t.Helper()
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			if len(prefix) > 0 {
				if _, err := c.Write(prefix); err != nil {
					c.Close()
					return nil, err
				}
			}
			tc := tls.Client(c, e.clientConfig())
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get("https://localhost/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func headerBytes(t *testing.T, h *proxyproto.Header) []byte {
	b, err := h.Format()
	require.NoError(t, err)
	return b
}

func newProxyListener(t *testing.T, e *env, o edge.Options) (*edge.Listener, *edge.ProxyStage) {
	t.Helper()
	st, err := edge.NewProxyStage(edge.ProxyOptions{Trusted: []netip.Prefix{netip.MustParsePrefix(balancer + "/32")}, Audit: e.aud})
	require.NoError(t, err)
	o.Stages = []edge.Stage{st.Stage()}
	l := e.listen(t, o)
	serveHTTP(t, l, remoteAddrHandler(), nil)
	return l, st
}

func TestProxyStage_TrustedBalancerGivesTheClientAddress(t *testing.T) {
	e := newEnv(t)
	// The allow-list names the client's network, not the balancer's: it
	// passes only if the checks after the stage see the real client.
	l, st := newProxyListener(t, e, edge.Options{AllowSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	got, err := proxiedGet(t, e, l.Addr().String(), balancer, headerBytes(t, proxyHeader("203.0.113.9", 40000)))
	require.NoError(t, err)
	assert.Equal(t, "203.0.113.9:40000", got, "the handler sees the client behind the balancer")
	assert.Equal(t, uint64(1), st.Stats().Proxied)

	_, err = proxiedGet(t, e, l.Addr().String(), balancer, headerBytes(t, proxyHeader("198.51.100.1", 40001)))
	require.Error(t, err, "a proxied client outside --allow-source is refused")
	recs := e.auditBuf.withReason(t, audit.SourceDenied)
	require.Len(t, recs, 1)
	assert.Equal(t, "198.51.100.1:40001", recs[0]["remote_addr"], "the audit record names the real client")
}

func TestProxyStage_PerAddressCapCountsRealClients(t *testing.T) {
	e := newEnv(t)
	l, _ := newProxyListener(t, e, edge.Options{MaxConnsPerIP: 1})
	open := func(client string, port int) net.Conn {
		c := dialFrom(t, balancer, l.Addr().String())
		_, err := c.Write(headerBytes(t, proxyHeader(client, port)))
		require.NoError(t, err)
		tc := tls.Client(c, e.clientConfig())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tc.HandshakeContext(ctx)
		return tc
	}
	a := open("203.0.113.1", 1)
	defer a.Close()
	b := open("203.0.113.2", 2)
	defer b.Close()
	assert.False(t, closedByPeer(b, 200*time.Millisecond), "another client behind the same balancer has its own cap")
	c := open("203.0.113.1", 3)
	defer c.Close()
	assert.True(t, closedByPeer(c, 2*time.Second), "the same client over its cap is refused")
	recs := e.auditBuf.withReason(t, audit.ConnLimit)
	require.Len(t, recs, 1)
	assert.Equal(t, "203.0.113.1:3", recs[0]["remote_addr"])
}

func TestProxyStage_Refusals(t *testing.T) {
	e := newEnv(t)
	l, st := newProxyListener(t, e, edge.Options{})
	addr := l.Addr().String()

	// An untrusted peer must not choose its own address.
	_, err := proxiedGet(t, e, addr, "127.0.0.3", headerBytes(t, proxyHeader("203.0.113.9", 1)))
	require.Error(t, err, "PROXY v2 from an untrusted peer is refused")
	v1 := &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr: &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 1}, DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 2}}
	_, err = proxiedGet(t, e, addr, "127.0.0.3", headerBytes(t, v1))
	require.Error(t, err, "PROXY v1 from an untrusted peer is refused")

	// The trusted balancer must send a v2 header.
	_, err = proxiedGet(t, e, addr, balancer, nil)
	require.Error(t, err, "a trusted peer without a header is refused")
	_, err = proxiedGet(t, e, addr, balancer, headerBytes(t, v1))
	require.Error(t, err, "a trusted peer with a v1 header is refused")

	recs := e.auditBuf.withReason(t, audit.ProxyRefused)
	require.Len(t, recs, 4)
	for i, want := range []string{"127.0.0.3", "127.0.0.3", balancer, balancer} {
		host, _, err := net.SplitHostPort(recs[i]["remote_addr"].(string))
		require.NoError(t, err)
		assert.Equal(t, want, host, "record %d names the peer", i)
	}
	assert.Equal(t, uint64(4), st.Stats().Refused)
}

func TestProxyStage_PassThroughLocalAndProbes(t *testing.T) {
	e := newEnv(t)
	l, st := newProxyListener(t, e, edge.Options{})
	addr := l.Addr().String()

	got, err := proxiedGet(t, e, addr, "127.0.0.3", nil)
	require.NoError(t, err, "an untrusted peer without a header is a direct client")
	host, _, _ := net.SplitHostPort(got)
	assert.Equal(t, "127.0.0.3", host)

	local := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	got, err = proxiedGet(t, e, addr, balancer, headerBytes(t, local))
	require.NoError(t, err, "a LOCAL header (balancer health check) is served")
	host, _, _ = net.SplitHostPort(got)
	assert.Equal(t, balancer, host, "LOCAL keeps the balancer's own address")

	c := dialFrom(t, balancer, addr)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return st.Stats().Probes == 1 }, 5*time.Second, 10*time.Millisecond, "a connect-and-close probe is counted")
	assert.Empty(t, e.auditBuf.withReason(t, audit.ProxyRefused), "probes and accepted connections are not audited")
	s := st.Stats()
	assert.Equal(t, uint64(1), s.Direct)
	assert.Equal(t, uint64(1), s.Local)
}

func TestNewProxyStage_RejectsEmpty(t *testing.T) {
	_, err := edge.NewProxyStage(edge.ProxyOptions{})
	assert.ErrorIs(t, err, edge.ErrBadOption)
}
