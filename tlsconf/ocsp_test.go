package tlsconf

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// ocspResponder is a real OCSP responder on loopback that answers "good"
// for every serial, signed by its CA, and counts the requests it gets.
type ocspResponder struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newOCSPResponder(t *testing.T, ca *certstest.CA) *ocspResponder {
	t.Helper()
	r := &ocspResponder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<16))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		q, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, "parse", http.StatusBadRequest)
			return
		}
		now := time.Now()
		der, err := ocsp.CreateResponse(ca.Cert, ca.Cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: q.SerialNumber,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(30 * time.Minute),
		}, ca.Key)
		if err != nil {
			http.Error(w, "sign", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(der)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// writeLeafWithOCSP writes a localhost server certificate whose
// certificate names responder (none when empty), followed by its CA, and
// its key; it returns the two paths.
func writeLeafWithOCSP(t *testing.T, ca *certstest.CA, responder, aia string) (string, string) {
	t.Helper()
	key, err := certs.GenerateKey(certs.ECDSAP256)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if responder != "" {
		tmpl.OCSPServer = []string{responder}
	}
	if aia != "" {
		tmpl.IssuingCertificateURL = []string{aia}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	keyPEM, err := certs.EncodePrivateKeyPEM(key)
	require.NoError(t, err)
	writeFile(t, keyFile, keyPEM)
	writeFile(t, certFile, certs.EncodeCertificatesPEM(leaf, ca.Cert))
	return certFile, keyFile
}

// stapleOf makes one TLS handshake with src and returns the stapled OCSP
// response.
func stapleOf(t *testing.T, src *Source, ca *certstest.CA) []byte {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = src.ServerConfig()
	srv.StartTLS()
	defer srv.Close()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{ServerName: "localhost", RootCAs: certstest.Pool(ca)})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().OCSPResponse
}

func TestSource_OCSPStapling_OnlyWhenTheCertificateNamesAResponder(t *testing.T) {
	ca := certstest.NewCA(t)
	resp := newOCSPResponder(t, ca)

	t.Run("responder named: fetched at start and stapled", func(t *testing.T) {
		certFile, keyFile := writeLeafWithOCSP(t, ca, resp.srv.URL, "")
		before := resp.hits.Load()
		src, err := New(t.Context(), Options{CertFile: certFile, KeyFile: keyFile, ClientAuth: ClientAuthNone})
		require.NoError(t, err)
		t.Cleanup(src.Close)
		assert.Greater(t, resp.hits.Load(), before, "the responder was asked at start")
		staple := stapleOf(t, src, ca)
		require.NotEmpty(t, staple, "the OCSP response is stapled")
		parsed, err := ocsp.ParseResponse(staple, ca.Cert)
		require.NoError(t, err)
		assert.Equal(t, ocsp.Good, parsed.Status)
	})

	t.Run("no responder: no network call, stapling off", func(t *testing.T) {
		// The AIA issuer URL points at the counting server too: any fetch
		// certmagic might make for this certificate would show up there.
		certFile, keyFile := writeLeafWithOCSP(t, ca, "", resp.srv.URL+"/issuer")
		before := resp.hits.Load()
		src, err := New(t.Context(), Options{CertFile: certFile, KeyFile: keyFile, ClientAuth: ClientAuthNone})
		require.NoError(t, err)
		t.Cleanup(src.Close)
		assert.True(t, src.magic.Load().OCSP.DisableStapling, "stapling is disabled for a certificate naming no responder")
		assert.Empty(t, stapleOf(t, src, ca))
		assert.Equal(t, before, resp.hits.Load(), "no request left the process")
	})
}
