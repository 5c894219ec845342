package tlsconf

import (
	"crypto/tls"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestSource_CRL_RevokedClientRefused(t *testing.T) {
	for _, format := range []struct {
		name  string
		write func(testing.TB, string, []byte)
	}{{"PEM", writeCRLPEM}, {"DER", writeCRLDER}} {
		t.Run(format.name, func(t *testing.T) {
			ca := certstest.NewCA(t)
			crlPath := filepath.Join(t.TempDir(), "client.crl")
			format.write(t, crlPath, ca.CRL(t)) // revokes nothing yet
			e := newEnv(t, []*certstest.CA{ca}, func(_ string, o *Options) { o.ClientCRLFiles = []string{crlPath} })
			victim := ca.Issue(t, certstest.Client("spiffe://imedge/victim"))
			other := ca.Issue(t, certstest.Client("spiffe://imedge/other"))

			_, _, err := e.get(e.client(e.clientConfig(victim), false))
			require.NoError(t, err, "not revoked yet")

			format.write(t, crlPath, ca.CRL(t, victim.Cert.SerialNumber, big.NewInt(12345)))
			require.NoError(t, e.src.Reload(t.Context()))

			_, _, err = e.get(e.client(e.clientConfig(victim), false))
			require.Error(t, err)
			recs := e.records()
			require.Len(t, recs, 1)
			assert.Equal(t, string(audit.TLSRevoked), recs[0]["reason"])
			assert.Equal(t, certs.SerialHex(victim.Cert), recs[0]["cert_serial"])

			_, _, err = e.get(e.client(e.clientConfig(other), false))
			require.NoError(t, err, "another client still passes")
			assert.Len(t, e.records(), 1)

			st := e.src.Status()
			require.Len(t, st.CRLs, 1)
			assert.Equal(t, 2, st.CRLs[0].Revoked)
			assert.Equal(t, crlPath, st.CRLs[0].File)
			assert.Equal(t, ca.Cert.Subject.String(), st.CRLs[0].Issuer)
			assert.False(t, st.CRLs[0].Stale)
			assert.NotEmpty(t, st.CRLs[0].Number)
		})
	}
}

func TestSource_CRL_OnlyAppliesToItsIssuer(t *testing.T) {
	caA, caB := certstest.NewCA(t), certstest.NewCA(t)
	cliB := caB.Issue(t)
	crlPath := filepath.Join(t.TempDir(), "a.crl")
	// caA lists cliB's serial: it is not cliB's issuer, so it has no say.
	writeCRLPEM(t, crlPath, caA.CRL(t, cliB.Cert.SerialNumber))
	e := newEnv(t, []*certstest.CA{caA, caB}, func(_ string, o *Options) { o.ClientCRLFiles = []string{crlPath} })
	_, _, err := e.get(e.client(e.clientConfig(cliB), false))
	require.NoError(t, err)
}

func TestSource_CRL_StaleFailClosed(t *testing.T) {
	clock := newFakeClock(time.Now())
	ca := certstest.NewCA(t)
	start := clock.Now()
	der, err := ca.RevocationList(nil, 7, start.Add(-time.Minute), start.Add(10*time.Minute))
	require.NoError(t, err)
	crlPath := filepath.Join(t.TempDir(), "client.crl")
	writeCRLDER(t, crlPath, der)
	e := newEnv(t, []*certstest.CA{ca}, func(_ string, o *Options) {
		o.ClientCRLFiles = []string{crlPath}
		o.CRLFailClosed = true
		o.Now = clock.Now
	})
	cli := ca.Issue(t)

	_, _, err = e.get(e.client(e.clientConfig(cli), false))
	require.NoError(t, err, "fresh CRL")

	clock.Advance(20 * time.Minute) // past NextUpdate, the client is still valid
	_, _, err = e.get(e.client(e.clientConfig(cli), false))
	require.Error(t, err)
	recs := e.records()
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.TLSCRLStale), recs[0]["reason"])

	st := e.src.Status()
	require.Len(t, st.CRLs, 1)
	assert.True(t, st.CRLs[0].Stale)
	assert.Equal(t, "7", st.CRLs[0].Number)
	assert.True(t, st.CRLFailClosed)
}

func TestSource_CRL_StaleWarnOnly(t *testing.T) {
	ca := certstest.NewCA(t)
	now := time.Now()
	der, err := ca.RevocationList(nil, 1, now.Add(-2*time.Hour), now.Add(-time.Hour))
	require.NoError(t, err)
	crlPath := filepath.Join(t.TempDir(), "client.crl")
	writeCRLPEM(t, crlPath, der)
	e := newEnv(t, []*certstest.CA{ca}, func(_ string, o *Options) { o.ClientCRLFiles = []string{crlPath} })
	cli := ca.Issue(t)

	for range 3 {
		_, _, err = e.get(e.client(e.clientConfig(cli), false))
		require.NoError(t, err, "a stale CRL only warns when not failing closed")
	}
	assert.Empty(t, e.records())
	assert.Equal(t, 1, strings.Count(e.log.String(), "client CRL is past its next update"), "warned once per CRL")
	assert.True(t, e.src.Status().CRLs[0].Stale)
}

func TestSource_IntermediateChainAndItsRevocation(t *testing.T) {
	root := certstest.NewCA(t)
	interIss, err := root.CA.Issue(certs.Request{CommonName: "imedge test intermediate", Usage: certs.UsageCA, NotAfter: root.Cert.NotAfter})
	require.NoError(t, err)
	inter := &certstest.CA{CA: &certs.CA{Cert: interIss.Cert, Key: interIss.Key}}
	leaf := inter.Issue(t, certstest.Client("spiffe://imedge/via-intermediate"))

	crlPath := filepath.Join(t.TempDir(), "root.crl")
	writeCRLPEM(t, crlPath, root.CRL(t))
	e := newEnv(t, []*certstest.CA{root}, func(_ string, o *Options) { o.ClientCRLFiles = []string{crlPath} })
	cfg := e.clientConfig(nil)
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw, interIss.Cert.Raw}, PrivateKey: leaf.Key}}

	_, _, err = e.get(e.client(cfg, false))
	require.NoError(t, err, "the presented intermediate completes the chain to the bundle root")

	writeCRLPEM(t, crlPath, root.CRL(t, interIss.Cert.SerialNumber))
	require.NoError(t, e.src.Reload(t.Context()))
	_, _, err = e.get(e.client(cfg, false))
	require.Error(t, err)
	recs := e.records()
	require.Len(t, recs, 1)
	assert.Equal(t, string(audit.TLSRevoked), recs[0]["reason"])
	assert.Equal(t, "intermediate CA certificate revoked", recs[0]["detail"])
	assert.Equal(t, certs.CertFingerprint(leaf.Cert), recs[0]["cert_sha256"])
}
