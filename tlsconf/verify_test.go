package tlsconf

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestSource_ClientCertificateMatrix(t *testing.T) {
	caA := certstest.NewCA(t)
	caB := certstest.NewCA(t) // second CA of the bundle
	rogue := certstest.NewCA(t)
	now := time.Now()

	spkiClient := caA.Issue(t, certstest.Client("spiffe://imedge/pinned-by-spki"))
	allowed := []string{
		"uri:spiffe://imedge/ecdsa",
		"uri:spiffe://imedge/rsa",
		"uri:spiffe://imedge/second-ca",
		"cn:cn-only",
		"dns:dns-only.example",
		"uri:spiffe://imedge/uri-only",
		"spki:" + strings.ToUpper(certs.Fingerprint(spkiClient.Cert)), // case-insensitive
		"uri:spiffe://imedge/server-eku",                              // allowed, but the EKU is wrong
		"uri:spiffe://imedge/rogue",                                   // allowed, but the CA is not trusted
	}

	cases := []struct {
		name   string
		cert   *certs.Issued
		reason audit.Reason // empty: accepted
	}{
		{"no certificate", nil, audit.TLSNoCert},
		{"rogue CA", rogue.Issue(t, certstest.Client("spiffe://imedge/rogue")), audit.TLSUnknownCA},
		{"expired", caA.Issue(t, certstest.Client("spiffe://imedge/ecdsa"), certstest.ValidBetween(now.Add(-2*time.Hour), now.Add(-time.Hour))), audit.TLSExpired},
		{"not yet valid", caA.Issue(t, certstest.Client("spiffe://imedge/ecdsa"), certstest.ValidBetween(now.Add(10*time.Minute), now.Add(50*time.Minute))), audit.TLSNotYetValid},
		{"server-only EKU", caA.Issue(t, certstest.Client("spiffe://imedge/server-eku"), certstest.Usage(certs.UsageServer)), audit.TLSBadEKU},
		{"not on the allow-list", caA.Issue(t, certstest.Client("spiffe://imedge/stranger")), audit.TLSNotAllowed},
		{"valid ECDSA", caA.Issue(t, certstest.Client("spiffe://imedge/ecdsa")), ""},
		{"valid RSA", caA.Issue(t, certstest.Client("spiffe://imedge/rsa"), certstest.RSA()), ""},
		{"valid from the second CA", caB.Issue(t, certstest.Client("spiffe://imedge/second-ca")), ""},
		{"allow cn", caA.Issue(t, certstest.CommonName("cn-only"), certstest.Usage(certs.UsageClient)), ""},
		{"allow dns", caA.Issue(t, certstest.Client("dns-only.example")), ""},
		{"allow uri", caA.Issue(t, certstest.Client("spiffe://imedge/uri-only")), ""},
		{"allow spki", spkiClient, ""},
	}

	e := newEnv(t, []*certstest.CA{caA, caB}, func(_ string, o *Options) { o.AllowedClients = allowed })
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s", tls.VersionName(version), tc.name), func(t *testing.T) {
				cfg := e.clientConfig(tc.cert)
				cfg.MinVersion, cfg.MaxVersion = version, version
				before := len(e.records())

				leaf, _, err := e.get(e.client(cfg, false))
				recs := e.records()[before:]

				if tc.reason == "" {
					require.NoError(t, err)
					assert.True(t, leaf.Equal(e.server.Cert), "served leaf is not ours")
					assert.Empty(t, recs, "accepted handshake left audit records")
					return
				}
				require.Error(t, err)
				require.Len(t, recs, 1, "want exactly one audit record")
				r := recs[0]
				assert.Equal(t, string(tc.reason), r["reason"])
				assert.True(t, strings.HasPrefix(fmt.Sprint(r["remote_addr"]), "127.0.0.1:"), "remote_addr %v", r["remote_addr"])
				assert.Equal(t, tls.VersionName(version), r["tls_version"])
				assert.NotEmpty(t, r["detail"])
				if tc.cert == nil {
					assert.NotContains(t, r, "cert_sha256")
					return
				}
				assert.Equal(t, certs.CertFingerprint(tc.cert.Cert), r["cert_sha256"])
				assert.Equal(t, certs.SerialHex(tc.cert.Cert), r["cert_serial"])
				assert.Equal(t, tc.cert.Cert.Subject.String(), r["cert_subject"])
			})
		}
	}
}

func TestSource_EmptyAllowListAcceptsAnyClientOfTheBundle(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	for _, id := range []string{"spiffe://a/b", "whoever.example"} {
		_, _, err := e.get(e.client(e.clientConfig(ca.Issue(t, certstest.Client(id))), false))
		require.NoError(t, err, id)
	}
	assert.Empty(t, e.records())
}

func TestSource_RefusesTLS11WithOneRecord(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	cfg := e.clientConfig(ca.Issue(t))
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11

	_, _, err := e.get(e.client(cfg, false))
	require.Error(t, err)
	recs := e.records()
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.TLSVersion), recs[0]["reason"])
	assert.Equal(t, "TLS 1.1", recs[0]["tls_version"])
	assert.True(t, strings.HasPrefix(fmt.Sprint(recs[0]["remote_addr"]), "127.0.0.1:"))
}

func TestSource_TLS12PolicyRefusesCBCSuites(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, nil)
	cfg := e.clientConfig(ca.Issue(t))
	cfg.MaxVersion = tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
	_, _, err := e.get(e.client(cfg, false))
	require.Error(t, err, "a CBC-only client must be refused")

	cfg = e.clientConfig(ca.Issue(t))
	cfg.MaxVersion = tls.VersionTLS12
	resp, err := e.client(cfg, false).Get(e.srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Contains(t, tls12Suites(), resp.TLS.CipherSuite)
	assert.Equal(t, uint16(tls.VersionTLS12), resp.TLS.Version)
}

func TestSource_ClientAuthNone(t *testing.T) {
	e := newEnv(t, nil, func(_ string, o *Options) { o.ClientAuth = ClientAuthNone })
	leaf, _, err := e.get(e.client(e.clientConfig(nil), false))
	require.NoError(t, err)
	assert.True(t, leaf.Equal(e.server.Cert))
	assert.Empty(t, e.records())
	assert.Contains(t, e.log.String(), "client certificates are not verified; only the IM token authenticates callers")
	assert.Equal(t, "none", e.src.Status().ClientAuth)
}

func TestSource_ServesDefaultNameWithoutSNI(t *testing.T) {
	e := newEnv(t, nil, func(dir string, o *Options) {
		o.ClientAuth = ClientAuthNone
		o.ServerName = "imedge.test"
	})
	// Replace the leaf with one that names no IP, so only DefaultServerName
	// can select it for an SNI-less hello.
	other := e.serverCA.Issue(t, certstest.Server("imedge.test"))
	e.writeServer(other)
	require.NoError(t, e.src.Reload(t.Context()))

	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // no SNI is sent to an IP; the leaf is checked below
	})
	require.NoError(t, err)
	defer conn.Close()
	assert.True(t, conn.ConnectionState().PeerCertificates[0].Equal(other.Cert))
}

// ReloadAllowedClients swaps the allow-list for new handshakes; an entry
// that does not parse changes nothing.
func TestSource_ReloadAllowedClients(t *testing.T) {
	ca := certstest.NewCA(t)
	e := newEnv(t, []*certstest.CA{ca}, func(_ string, o *Options) { o.AllowedClients = []string{"uri:spiffe://im/a"} })
	a := e.clientConfig(ca.Issue(t, certstest.Client("spiffe://im/a")))
	b := e.clientConfig(ca.Issue(t, certstest.Client("spiffe://im/b")))
	_, _, err := e.get(e.client(a, false))
	require.NoError(t, err)
	_, _, err = e.get(e.client(b, false))
	require.Error(t, err, "b is not on the list yet")

	require.NoError(t, e.src.ReloadAllowedClients(t.Context(), []string{"uri:spiffe://im/b"}))
	_, _, err = e.get(e.client(b, false))
	require.NoError(t, err, "b is on the new list")
	_, _, err = e.get(e.client(a, false))
	require.Error(t, err, "a left it")

	require.Error(t, e.src.ReloadAllowedClients(t.Context(), []string{"nonsense"}))
	_, _, err = e.get(e.client(b, false))
	require.NoError(t, err, "a refused list kept the previous one")
	assert.Equal(t, 1, e.src.Status().AllowedClients)
}
