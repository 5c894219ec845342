package tlsconf

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestSource_Watch_ReloadsChangedFiles(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	cli := ca.Issue(t)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { e.src.Watch(ctx, 20*time.Millisecond) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	next := e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	e.writeServer(next) // key then certificate, each by atomic rename
	want := certs.CertFingerprint(next.Cert)

	require.Eventually(t, func() bool { return e.src.Status().ServerCert.SHA256 == want }, 5*time.Second, 20*time.Millisecond)
	leaf, _, err := e.get(e.client(e.clientConfig(cli), false))
	require.NoError(t, err)
	assert.True(t, leaf.Equal(next.Cert), "the new certificate is served")
	assert.GreaterOrEqual(t, e.src.Status().ReloadSuccesses, uint64(1))
}

func TestSource_Watch_IgnoresTouchAndRetriesOnlyOnChange(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	w := &watcher{stamps: make(map[string]fileStamp)}

	// Same content rewritten: no reload.
	e.writeServer(e.server)
	e.src.poll(t.Context(), w)
	assert.Zero(t, e.src.Status().ReloadSuccesses+e.src.Status().ReloadFailures)

	// Broken content: one failed reload, not retried while unchanged.
	writeFile(t, e.opts.KeyFile, []byte("garbage"))
	e.src.poll(t.Context(), w)
	e.src.poll(t.Context(), w)
	assert.Equal(t, uint64(1), e.src.Status().ReloadFailures)

	// A missing file (mid-rename) reloads nothing.
	require.NoError(t, os.Remove(e.opts.ClientCAFile))
	e.src.poll(t.Context(), w)
	assert.Equal(t, uint64(1), e.src.Status().ReloadFailures)

	// Everything good again: reloaded.
	certstest.WriteBundle(t, e.opts.ClientCAFile, ca)
	next := e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	e.writeServer(next)
	e.src.poll(t.Context(), w)
	st := e.src.Status()
	assert.Equal(t, uint64(1), st.ReloadSuccesses)
	assert.Equal(t, certs.CertFingerprint(next.Cert), st.ServerCert.SHA256)
}
