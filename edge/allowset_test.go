package edge_test

import (
	"crypto/tls"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/edge"
)

// swapSet is a SourceSet whose addresses a test replaces while the
// listener runs, published with one atomic store as package egress does.
type swapSet struct {
	cur atomic.Pointer[[]netip.Prefix]
}

func (s *swapSet) set(ps ...string) {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, netip.MustParsePrefix(p))
	}
	s.cur.Store(&out)
}

func (s *swapSet) Contains(a netip.Addr) bool {
	ps := s.cur.Load()
	if ps == nil {
		return false
	}
	for _, p := range *ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// With a dynamic set and no static list, nobody is admitted until the set
// holds an address (fail closed); a change of the set applies to the next
// connection without a restart; refusals happen before the handshake and
// are audited source_denied.
func TestListener_AllowSetAloneFailsClosedAndFollowsChanges(t *testing.T) {
	e := newEnv(t)
	var hellos atomic.Int32
	cfg := e.serverCfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { hellos.Add(1); return nil, nil }
	set := &swapSet{}
	l := e.listen(t, edge.Options{TLSConfig: cfg, AllowSet: set})
	serveHTTP(t, l, okHandler(), nil)

	_, err := handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "an empty set with no static list admits nobody")
	assert.Zero(t, hellos.Load(), "closed before the TLS handshake")
	recs := e.auditBuf.withReason(t, audit.SourceDenied)
	require.Len(t, recs, 1)
	assert.Contains(t, recs[0]["remote_addr"], "127.0.0.1:")
	assert.Contains(t, recs[0]["detail"], "egress list")

	set.set("127.0.0.1/32")
	resp, err := e.httpClient("127.0.0.1", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err, "admitted once the set holds the address")
	resp.Body.Close()

	set.set("127.0.0.2/32")
	_, err = handshakeFrom(t, "127.0.0.1", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "refused again once the set dropped it")
	assert.Len(t, e.auditBuf.withReason(t, audit.SourceDenied), 2)
	assert.Equal(t, uint64(2), l.Stats().SourceDenied)
	assert.Equal(t, int32(1), hellos.Load(), "only the admitted connection reached the handshake")
}

// The static list and the dynamic set are combined: a peer on either is
// admitted, a peer on neither is refused.
func TestListener_AllowSetAddsToAllowSources(t *testing.T) {
	e := newEnv(t)
	set := &swapSet{}
	set.set("127.0.0.2/32")
	l := e.listen(t, edge.Options{AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}, AllowSet: set})
	serveHTTP(t, l, okHandler(), nil)

	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		resp, err := e.httpClient(src, false).Get("https://" + l.Addr().String() + "/")
		if assert.NoError(t, err, "%s is admitted", src) {
			resp.Body.Close()
		}
	}
	_, err := handshakeFrom(t, "127.0.0.4", l.Addr().String(), e.clientConfig())
	require.Error(t, err)
	recs := e.auditBuf.withReason(t, audit.SourceDenied)
	require.Len(t, recs, 1)
	assert.Contains(t, recs[0]["remote_addr"], "127.0.0.4:")
}

// SetAllowSources replaces the static list for the next connections.
func TestListener_SetAllowSources(t *testing.T) {
	e := newEnv(t)
	l := e.listen(t, edge.Options{AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	serveHTTP(t, l, okHandler(), nil)
	_, err := handshakeFrom(t, "127.0.0.3", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "127.0.0.3 is not on the list")

	l.SetAllowSources([]netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")})
	resp, err := e.httpClient("127.0.0.3", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err, "admitted after the change")
	resp.Body.Close()
	_, err = handshakeFrom(t, "127.0.0.2", l.Addr().String(), e.clientConfig())
	require.Error(t, err, "127.0.0.2 left the list")

	l.SetAllowSources(nil)
	resp, err = e.httpClient("127.0.0.2", false).Get("https://" + l.Addr().String() + "/")
	require.NoError(t, err, "an empty list without an AllowSet admits any peer")
	resp.Body.Close()
}
