package certs_test

import (
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestLoadKeyPair_RoundTrip(t *testing.T) {
	ca := certstest.NewCA(t)
	srv := ca.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	p := ca.WriteFiles(t, srv)

	pair, err := certs.LoadKeyPair(p.Cert, p.Key)
	require.NoError(t, err)
	assert.Equal(t, srv.Cert.Raw, pair.Leaf.Raw)

	st, err := os.Stat(p.Key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "private keys are written 0600")
}

func TestLoadKeyPair_Errors(t *testing.T) {
	ca := certstest.NewCA(t)
	a := ca.WriteFiles(t, ca.Issue(t, certstest.Server("a")))
	b := ca.WriteFiles(t, ca.Issue(t, certstest.Server("b")))
	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("not pem"), 0o600))

	tests := []struct {
		name, cert, key string
		want            error
		path            string
	}{
		{"missing cert", filepath.Join(t.TempDir(), "nope.pem"), a.Key, os.ErrNotExist, "nope.pem"},
		{"mismatched key", a.Cert, b.Key, certs.ErrKeyMismatch, b.Key},
		{"no key in file", a.Cert, empty, certs.ErrNoPrivateKey, empty},
		{"no cert in file", empty, a.Key, certs.ErrNoCertificates, empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certs.LoadKeyPair(tc.cert, tc.key)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			var fe *certs.FileError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, fe.Path, tc.path, "the error names the file")
		})
	}
}

func TestLoadPool_Bundle(t *testing.T) {
	a, b := certstest.NewCA(t), certstest.NewCA(t)
	path := filepath.Join(t.TempDir(), "bundle.pem")
	certstest.WriteBundle(t, path, a, b)
	pool, list, err := certs.LoadPool(path)
	require.NoError(t, err)
	require.Len(t, list, 2)

	leaf := b.Issue(t, certstest.Client("second"))
	_, err = leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err, "a certificate from the second CA in a bundle verifies")

	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, _, err = certs.LoadPool(empty)
	assert.ErrorIs(t, err, certs.ErrNoCertificates)
}

func TestReadFile_Bounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.pem")
	require.NoError(t, os.WriteFile(path, make([]byte, certs.MaxFileSize+1), 0o644))
	_, err := certs.ReadFile("reading certificate", path)
	assert.ErrorIs(t, err, certs.ErrTooLarge)
}

func TestIssue_UsageAndKeyTypes(t *testing.T) {
	ca, err := certs.NewCA(certs.Request{CommonName: "root", KeyType: certs.RSA2048})
	require.NoError(t, err)
	assert.True(t, ca.Cert.IsCA)

	for _, tc := range []struct {
		usage certs.Usage
		want  []x509.ExtKeyUsage
	}{
		{certs.UsageServer, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{certs.UsageClient, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{certs.UsageBoth, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
	} {
		iss, err := ca.Issue(certs.Request{CommonName: "x", Usage: tc.usage})
		require.NoError(t, err)
		assert.Equal(t, tc.want, iss.Cert.ExtKeyUsage)
		assert.NoError(t, iss.Cert.CheckSignatureFrom(ca.Cert))
	}
	_, err = certs.GenerateKey("dsa")
	assert.Error(t, err)
	_, err = ca.Issue(certs.Request{CommonName: "x", NotBefore: time.Now(), NotAfter: time.Now().Add(-time.Hour)})
	assert.Error(t, err)
}

func TestDescribe(t *testing.T) {
	ca := certstest.NewCA(t)
	iss := ca.Issue(t, certstest.Client("spiffe://im/sender"))
	in := certs.Describe(iss.Cert)
	assert.Equal(t, []string{"spiffe://im/sender"}, in.URIs)
	assert.Equal(t, []string{"clientAuth"}, in.ExtKeyUsage)
	assert.Len(t, in.SHA256, 64)
	assert.Equal(t, certs.Fingerprint(iss.Cert), in.SPKISHA256)
	assert.NotEqual(t, in.SHA256, in.SPKISHA256)
	assert.Contains(t, in.String(), "URI SANs:")
}

func TestRevocationList(t *testing.T) {
	ca := certstest.NewCA(t)
	der := ca.CRL(t, big.NewInt(42))
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(ca.Cert))
	require.Len(t, crl.RevokedCertificateEntries, 1)
	assert.Equal(t, int64(42), crl.RevokedCertificateEntries[0].SerialNumber.Int64())
}

func TestParseCRLs_PEMAndDER(t *testing.T) {
	ca := certstest.NewCA(t)
	der := ca.CRL(t, big.NewInt(7))
	got, err := certs.ParseCRLs(der)
	require.NoError(t, err)
	require.Len(t, got, 1)

	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.CRL(t)})...)
	got, err = certs.ParseCRLs(pemData)
	require.NoError(t, err)
	assert.Len(t, got, 2, "every PEM block is read")

	_, err = certs.ParseCRLs(certs.EncodeCertificatesPEM(ca.Cert))
	assert.ErrorIs(t, err, certs.ErrNoCRL)
	_, err = certs.ParseCRLs([]byte("junk"))
	assert.Error(t, err)
}
