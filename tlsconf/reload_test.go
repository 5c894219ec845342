package tlsconf

import (
	"crypto/tls"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestSource_Reload_RotatesServerCertKeepingOpenConnections(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	cli := ca.Issue(t)

	old := e.client(e.clientConfig(cli), true) // keeps its connection open
	leaf, _, err := e.get(old)
	require.NoError(t, err)
	require.True(t, leaf.Equal(e.server.Cert))

	next := e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	e.writeServer(next)
	require.NoError(t, e.src.Reload(t.Context()))

	leaf, _, err = e.get(e.client(e.clientConfig(cli), false))
	require.NoError(t, err)
	assert.True(t, leaf.Equal(next.Cert), "new connections get the new certificate")

	leaf, _, err = e.get(old)
	require.NoError(t, err)
	assert.True(t, leaf.Equal(e.server.Cert), "the open connection keeps working on the old certificate")

	st := e.src.Status()
	assert.Equal(t, certs.CertFingerprint(next.Cert), st.ServerCert.SHA256)
	assert.Equal(t, certs.Fingerprint(next.Cert), st.ServerCert.SPKISHA256)
	assert.True(t, st.LastReload.OK)
	assert.Equal(t, uint64(1), st.ReloadSuccesses)
	assert.Zero(t, st.ReloadFailures)
}

func TestSource_Reload_SameFilesKeepsServing(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	require.NoError(t, e.src.Reload(t.Context()))
	leaf, _, err := e.get(e.client(e.clientConfig(ca.Issue(t)), false))
	require.NoError(t, err, "reloading the same certificate must not drop it from the cache")
	assert.True(t, leaf.Equal(e.server.Cert))
}

// TestSource_Reload_RemovedCAStopsResumedSessions shows that sessions
// resume, that a resumed session carries the client's identity (a client
// config without certificates resumes), and that after the issuing CA is
// removed by a reload, the resumed session is refused too.
func TestSource_Reload_RemovedCAStopsResumedSessions(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			caA, caB := certstest.NewCA(t), certstest.NewCA(t)
			e := newEnv(t, []*certstest.CA{caA, caB}, nil)
			cliB := caB.Issue(t, certstest.Client("spiffe://imedge/b"))
			cache := tls.NewLRUClientSessionCache(4)

			withCert := e.clientConfig(cliB)
			withCert.ClientSessionCache = cache
			withCert.MinVersion, withCert.MaxVersion = version, version
			_, resumed, err := e.get(e.client(withCert, false))
			require.NoError(t, err)
			require.False(t, resumed)

			// Same session cache, no certificate: only a resumption can pass.
			noCert := e.clientConfig(nil)
			noCert.ClientSessionCache = cache
			noCert.MinVersion, noCert.MaxVersion = version, version
			_, resumed, err = e.get(e.client(noCert, false))
			require.NoError(t, err)
			require.True(t, resumed, "session did not resume")

			certstest.WriteBundle(t, e.opts.ClientCAFile, caA)
			require.NoError(t, e.src.Reload(t.Context()))

			before := len(e.records())
			_, _, err = e.get(e.client(noCert, false))
			require.Error(t, err, "a resumed session of a removed CA must be refused")
			recs := e.records()[before:]
			require.Len(t, recs, 1)
			// tls_unknown_ca, not tls_no_cert: the refused handshake was the
			// resumption, checked against the new bundle.
			assert.Equal(t, string(audit.TLSUnknownCA), recs[0]["reason"])
			assert.Equal(t, certs.CertFingerprint(cliB.Cert), recs[0]["cert_sha256"])

			_, _, err = e.get(e.client(e.clientConfig(cliB), false))
			require.Error(t, err, "a full handshake of a removed CA must be refused")
			_, _, err = e.get(e.client(e.clientConfig(caA.Issue(t)), false))
			require.NoError(t, err, "clients of the remaining CA still pass")
		})
	}
}

func TestSource_Reload_BadMaterialKeepsOld(t *testing.T) {
	cases := []struct {
		name     string
		crl      bool // start with a CRL configured
		breakIt  func(t *testing.T, e *env, ca *certstest.CA)
		sentinel error
		file     func(e *env) string
	}{
		{
			name: "corrupt key",
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				writeFile(t, e.opts.KeyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
			},
			file: func(e *env) string { return e.opts.KeyFile },
		},
		{
			name: "mismatched pair",
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				other := e.serverCA.Issue(t, certstest.Server("localhost"))
				key, err := other.KeyPEM()
				require.NoError(t, err)
				writeFile(t, e.opts.KeyFile, key)
			},
			sentinel: certs.ErrKeyMismatch,
			file:     func(e *env) string { return e.opts.KeyFile },
		},
		{
			name: "expired server certificate",
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				now := time.Now()
				e.writeServer(e.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"), certstest.ValidBetween(now.Add(-2*time.Hour), now.Add(-time.Hour))))
			},
			sentinel: ErrServerCertExpired,
			file:     func(e *env) string { return e.opts.CertFile },
		},
		{
			name: "empty bundle",
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				writeFile(t, e.opts.ClientCAFile, nil)
			},
			sentinel: ErrEmptyBundle,
			file:     func(e *env) string { return e.opts.ClientCAFile },
		},
		{
			name: "CRL signed by another CA",
			crl:  true,
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				writeCRLPEM(t, e.opts.ClientCRLFiles[0], certstest.NewCA(t).CRL(t))
			},
			sentinel: ErrCRLIssuer,
			file:     func(e *env) string { return e.opts.ClientCRLFiles[0] },
		},
		{
			name: "missing certificate file",
			breakIt: func(t *testing.T, e *env, _ *certstest.CA) {
				require.NoError(t, os.Remove(e.opts.CertFile))
			},
			sentinel: fs.ErrNotExist,
			file:     func(e *env) string { return e.opts.CertFile },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca := certstest.NewCA(t)
			e := newEnv(t, []*certstest.CA{ca}, func(dir string, o *Options) {
				if tc.crl {
					p := filepath.Join(dir, "client.crl")
					writeCRLPEM(t, p, ca.CRL(t))
					o.ClientCRLFiles = []string{p}
				}
			})
			cli := ca.Issue(t)
			before := e.src.Status()

			tc.breakIt(t, e, ca)
			err := e.src.Reload(t.Context())
			require.Error(t, err)
			if tc.sentinel != nil {
				assert.ErrorIs(t, err, tc.sentinel)
			}
			var fe *certs.FileError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.file(e), fe.Path)
			assert.Contains(t, err.Error(), tc.file(e), "the error names the file")

			st := e.src.Status()
			assert.False(t, st.LastReload.OK)
			assert.Equal(t, err.Error(), st.LastReload.Error)
			assert.Equal(t, uint64(1), st.ReloadFailures)
			assert.Zero(t, st.ReloadSuccesses)
			assert.Equal(t, before.ServerCert, st.ServerCert)
			assert.Equal(t, before.ClientCAs, st.ClientCAs)
			assert.Contains(t, e.log.String(), "tls reload failed")

			leaf, _, err := e.get(e.client(e.clientConfig(cli), false))
			require.NoError(t, err, "the old material is still served")
			assert.True(t, leaf.Equal(e.server.Cert))
		})
	}
}

func TestNew_FailsNamingTheProblem(t *testing.T) {
	ca := certstest.NewCA(t)
	srv := ca.Issue(t, certstest.Server("localhost"))
	good := ca.WriteFiles(t, srv)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	writeFile(t, empty, []byte("no pem here\n"))
	missing := filepath.Join(dir, "missing.pem")

	base := func() Options {
		return Options{CertFile: good.Cert, KeyFile: good.Key, ClientCAFile: good.CA}
	}
	cases := []struct {
		name     string
		mutate   func(o *Options)
		sentinel error
		mention  string
	}{
		{"missing certificate", func(o *Options) { o.CertFile = missing }, fs.ErrNotExist, missing},
		{"missing key", func(o *Options) { o.KeyFile = missing }, fs.ErrNotExist, missing},
		{"missing CA bundle", func(o *Options) { o.ClientCAFile = missing }, fs.ErrNotExist, missing},
		{"empty CA bundle", func(o *Options) { o.ClientCAFile = empty }, ErrEmptyBundle, empty},
		{"no CA bundle", func(o *Options) { o.ClientCAFile = "" }, ErrNoClientCA, ""},
		{"no certificate option", func(o *Options) { o.CertFile = "" }, ErrMissingFile, "CertFile"},
		{"CRL without a bundle", func(o *Options) {
			o.ClientAuth, o.ClientCAFile, o.ClientCRLFiles = ClientAuthNone, "", []string{empty}
		}, ErrBadCRL, empty},
		{"bad allow entry", func(o *Options) { o.AllowedClients = []string{"dns:ok.example", "email:x@y"} }, ErrBadAllowEntry, "email:x@y"},
		{"bad spki pin", func(o *Options) { o.AllowedClients = []string{"spki:abcd"} }, ErrBadAllowEntry, "spki:abcd"},
		{"allow-list without client auth", func(o *Options) {
			o.ClientAuth, o.AllowedClients = ClientAuthNone, []string{"cn:x"}
		}, ErrAllowListWithoutClientAuth, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.mutate(&o)
			src, err := New(t.Context(), o)
			require.Error(t, err)
			assert.Nil(t, src)
			assert.ErrorIs(t, err, tc.sentinel)
			assert.Contains(t, err.Error(), tc.mention)
		})
	}

	t.Run("CRL with no bundle CA to sign it", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.crl")
		writeCRLDER(t, p, ca.CRL(t))
		o := base()
		o.ClientAuth, o.ClientCAFile, o.ClientCRLFiles = ClientAuthNone, "", []string{p}
		_, err := New(t.Context(), o)
		require.ErrorIs(t, err, ErrCRLIssuer)
		assert.Contains(t, err.Error(), p)
	})
}

func TestSource_Close(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)

	var wg sync.WaitGroup
	wg.Go(func() { e.src.Watch(t.Context(), time.Hour) })
	e.src.Close()
	wg.Wait() // Watch returns once the Source is closed
	e.src.Close()
	assert.ErrorIs(t, e.src.Reload(t.Context()), ErrClosed)
}

func TestParseClientAuth(t *testing.T) {
	for in, want := range map[string]ClientAuth{"require": ClientAuthRequire, " None ": ClientAuthNone, "REQUIRE": ClientAuthRequire} {
		got, err := ParseClientAuth(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		assert.Equal(t, strings.ToLower(strings.TrimSpace(in)), got.String())
	}
	for _, in := range []string{"", "optional", "verify"} {
		_, err := ParseClientAuth(in)
		assert.ErrorIs(t, err, ErrBadClientAuth, in)
	}
	var zero ClientAuth
	assert.Equal(t, ClientAuthRequire, zero, "the zero value requires client certificates")
}
