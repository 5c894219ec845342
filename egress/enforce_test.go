package egress_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/egress"
	"github.com/imedge/imedge/internal/testkit"
)

// auditBuffer collects audit records.
type auditBuffer struct{ testkit.SyncBuffer }

// denied returns the remote addresses of the source_denied records.
func (a *auditBuffer) denied(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range testkit.JSONLines(t, a.String()) {
		if m["reason"] == string(audit.SourceDenied) {
			host, _, err := net.SplitHostPort(m["remote_addr"].(string))
			require.NoError(t, err)
			out = append(out, host)
		}
	}
	return out
}

// edgeUnder is an edge listener on 127.0.0.1 that takes its source
// allow-list from set alone (no static list), as imedge does in token-only
// mode with IM's egress list. It counts ClientHellos, so a test can tell a
// connection closed before its handshake from one refused during it. A
// handshaken connection gets one byte and is closed.
type edgeUnder struct {
	ln     *edge.Listener
	ca     *certstest.CA
	hellos atomic.Int32
	audit  *auditBuffer
}

func newEdgeUnder(t *testing.T, set edge.SourceSet) *edgeUnder {
	t.Helper()
	u := &edgeUnder{ca: certstest.NewCA(t), audit: &auditBuffer{}}
	cert := certstest.TLSCertificate(t, u.ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { u.hellos.Add(1); return nil, nil }}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u.ln, err = edge.New(inner, edge.Options{TLSConfig: cfg, AllowSet: set, Audit: audit.New(u.audit, audit.Options{})})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := u.ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte{'!'})
			_ = c.Close()
		}
	})
	t.Cleanup(func() { u.ln.Close(); wg.Wait() })
	return u
}

// handshakeFrom completes a TLS handshake from the loopback address src and
// reads the byte the server sends; it returns the first error.
func (u *edgeUnder) handshakeFrom(t *testing.T, src string) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	raw, err := d.Dial("tcp", u.ln.Addr().String())
	require.NoError(t, err, "the TCP connection is accepted; the check comes after")
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	tc := tls.Client(raw, &tls.Config{RootCAs: certstest.Pool(u.ca), ServerName: "localhost"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	b := make([]byte, 1)
	_, err = tc.Read(b)
	return err
}

// The list fetched from (fake) IM is what the edge listener enforces:
// nobody before the first list, the listed sources after it, a change
// without a restart, the last good list through a failure. A refused
// connection is closed before its TLS handshake and audited source_denied.
func TestEnforcement_EdgeFollowsTheFetchedList(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("127.0.0.2"))
	e.im.answer("6", okReply("127.0.0.3/32"))
	s := e.source(t)
	u := newEdgeUnder(t, s)

	// No list yet: fail closed.
	require.Error(t, u.handshakeFrom(t, "127.0.0.2"), "no list held: nobody is admitted")
	assert.Zero(t, u.hellos.Load(), "closed before the handshake")
	assert.Equal(t, []string{"127.0.0.2"}, u.audit.denied(t))

	require.NoError(t, s.Refresh(t.Context()))
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.2"), "on nettype 5's list")
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.3"), "on nettype 6's list")
	require.Error(t, u.handshakeFrom(t, "127.0.0.4"), "on neither list")
	assert.Equal(t, int32(2), u.hellos.Load(), "the refused source never reached the handshake")
	assert.Equal(t, []string{"127.0.0.2", "127.0.0.4"}, u.audit.denied(t))

	// IM's list changes: the next refresh applies it to new connections.
	e.im.answer("5", okReply("127.0.0.4"))
	require.NoError(t, s.Refresh(t.Context()))
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.4"), "added")
	require.Error(t, u.handshakeFrom(t, "127.0.0.2"), "removed")
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.3"), "the other list is unchanged")

	// IM fails: the last good list stays in force.
	e.im.answer("5", reply{status: 500})
	e.im.answer("6", reply{body: "garbage"})
	require.Error(t, s.Refresh(t.Context()))
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.4"))
	assert.NoError(t, u.handshakeFrom(t, "127.0.0.3"))
	require.Error(t, u.handshakeFrom(t, "127.0.0.5"))

	assert.Equal(t, []string{"127.0.0.2", "127.0.0.4", "127.0.0.2", "127.0.0.5"}, u.audit.denied(t))
	assert.Equal(t, uint64(4), u.ln.Stats().SourceDenied)
	_, problems := e.im.seen()
	assert.Empty(t, problems)
}

// The lookup the edge makes per connection takes no lock: a refresh that
// publishes new lists while connections are checked races with nothing
// (run with -race).
func TestEnforcement_ContainsDuringRefreshes(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
	e.im.answer("5", okReply("10.0.0.0/24"))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				assert.True(t, s.Contains(addr("10.0.0.1")), "an address on every list published")
			}
		})
	}
	for i := range 20 {
		e.im.answer("5", okReply("10.0.0.0/24", netip.AddrFrom4([4]byte{10, 1, byte(i), 0}).String()+"/24"))
		require.NoError(t, s.Refresh(t.Context()))
	}
	close(stop)
	wg.Wait()
	assert.True(t, s.Contains(addr("10.1.19.1")))
	assert.False(t, s.Contains(addr("10.1.18.1")))
}
