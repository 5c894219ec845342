package tlsconf

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// TestSource_RaceHammer reloads (alternating two server certificates)
// while clients handshake, fully and by resumption; run with -race. No
// request may fail and every served leaf is one of the two.
func TestSource_RaceHammer(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	leaves := []*certs.Issued{e.server, e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))}

	const workers, perWorker = 8, 20
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		resumed  atomic.Int64
		stop     = make(chan struct{})
		reloads  atomic.Int64
	)
	var reloader sync.WaitGroup
	reloader.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.writeServer(leaves[i%2])
			if err := e.src.Reload(t.Context()); err != nil {
				t.Errorf("reload %d: %v", i, err)
				return
			}
			reloads.Add(1)
		}
	})
	for w := range workers {
		cli := ca.Issue(t)
		wg.Go(func() {
			cfg := e.clientConfig(cli)
			if w%2 == 0 {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			}
			c := e.client(cfg, false)
			for range perWorker {
				resp, err := c.Get(e.srv.URL)
				if err != nil {
					failures.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				leaf := resp.TLS.PeerCertificates[0]
				if resp.TLS.DidResume {
					resumed.Add(1)
				}
				resp.Body.Close()
				if !leaf.Equal(leaves[0].Cert) && !leaf.Equal(leaves[1].Cert) {
					t.Errorf("served an unknown leaf %s", leaf.Subject)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reloader.Wait()

	require.Zero(t, failures.Load())
	assert.Positive(t, reloads.Load())
	assert.Positive(t, resumed.Load(), "no session resumed during the hammer")
	assert.Empty(t, e.records())
	t.Logf("%d requests, %d resumed, %d reloads", workers*perWorker, resumed.Load(), reloads.Load())
}
