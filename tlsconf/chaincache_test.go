package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCert makes a real ECDSA certificate valid over [nb, na], signed by
// parent (self-signed when parent is nil).
func testCert(t *testing.T, cn string, isCA bool, nb, na time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, key
}

func TestVerifyChain_RemembersOnlySuccessesInsideEveryWindow(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	// The CA expires an hour from now; the leaf it signed claims ten.
	ca, caKey := testCert(t, "client CA", true, t0.Add(-time.Hour), t0.Add(time.Hour), nil, nil)
	leaf, _ := testCert(t, "im-callback", false, t0.Add(-time.Hour), t0.Add(10*time.Hour), ca, caKey)
	rogueCA, rogueKey := testCert(t, "rogue CA", true, t0.Add(-time.Hour), t0.Add(time.Hour), nil, nil)
	rogue, _ := testCert(t, "im-callback", false, t0.Add(-time.Hour), t0.Add(time.Hour), rogueCA, rogueKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	st := &state{pool: pool, verified: newVerifiedCache()}

	first, err := verifyChain(st, []*x509.Certificate{leaf}, t0)
	require.NoError(t, err)
	require.Len(t, first, 1)
	assert.Equal(t, 1, st.verified.Len())

	again, err := verifyChain(st, []*x509.Certificate{leaf}, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Same(t, &first[0][0], &again[0][0], "second verification answered from the cache")

	_, err = verifyChain(st, []*x509.Certificate{rogue}, t0)
	require.Error(t, err)
	var unk x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &unk)
	assert.Equal(t, 1, st.verified.Len(), "failures are not remembered")

	// Past the CA's expiry the remembered chain is no longer trusted even
	// though the leaf itself is still inside its own window.
	_, err = verifyChain(st, []*x509.Certificate{leaf}, t0.Add(2*time.Hour))
	require.Error(t, err)
	var inv x509.CertificateInvalidError
	require.ErrorAs(t, err, &inv)
	assert.Equal(t, x509.Expired, inv.Reason)
}

func TestChainKey_DependsOnEveryCertificateAndTheirOrder(t *testing.T) {
	t0 := time.Now()
	a, _ := testCert(t, "a", true, t0.Add(-time.Hour), t0.Add(time.Hour), nil, nil)
	b, _ := testCert(t, "b", true, t0.Add(-time.Hour), t0.Add(time.Hour), nil, nil)
	assert.Equal(t, chainKey([]*x509.Certificate{a, b}), chainKey([]*x509.Certificate{a, b}))
	assert.NotEqual(t, chainKey([]*x509.Certificate{a}), chainKey([]*x509.Certificate{a, b}))
	assert.NotEqual(t, chainKey([]*x509.Certificate{a, b}), chainKey([]*x509.Certificate{b, a}))
}
