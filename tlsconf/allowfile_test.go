package tlsconf

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// The allow-list file is read at start, watched like the certificates, and
// a reload that would empty it is refused (the old list keeps serving).
func TestSource_AllowListFile_WatchedAndNeverEmpty(t *testing.T) {
	ca := certstest.NewCA(t)
	alice := ca.Issue(t, certstest.Client("alice"))
	bob := ca.Issue(t, certstest.Client("bob"))
	var allowPath string
	e := newEnv(t, []*certstest.CA{ca}, func(dir string, o *Options) {
		allowPath = filepath.Join(dir, "allow.txt")
		writeFile(t, allowPath, []byte("# IM senders\n\ncn:alice\n"))
		o.AllowedClientsFile = allowPath
	})
	_, _, err := e.get(e.client(e.clientConfig(alice), false))
	require.NoError(t, err, "alice is on the file's list")
	_, _, err = e.get(e.client(e.clientConfig(bob), false))
	require.Error(t, err, "bob is not")

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { e.src.Watch(ctx, 20*time.Millisecond) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	writeFile(t, allowPath, []byte("cn:alice\ndns:bob\n"))
	require.Eventually(t, func() bool { return e.src.Status().ReloadSuccesses >= 1 }, 5*time.Second, 20*time.Millisecond)
	_, _, err = e.get(e.client(e.clientConfig(bob), false))
	assert.NoError(t, err, "bob added to the file is allowed after the watch reloads it")

	writeFile(t, allowPath, []byte("# everyone removed\n"))
	err = e.src.Reload(t.Context())
	require.ErrorIs(t, err, ErrEmptyAllowList)
	var fe *certs.FileError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, allowPath, fe.Path)
	_, _, err = e.get(e.client(e.clientConfig(bob), false))
	assert.NoError(t, err, "an emptied file does not open or close the door: the old list stays")
	other := certstest.NewCA(t)
	_, _, err = e.get(e.client(e.clientConfig(other.Issue(t, certstest.Client("alice"))), false))
	assert.Error(t, err, "the bundle still applies")
}
