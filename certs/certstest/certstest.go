// Package certstest builds throwaway PKI for tests: an in-memory CA that
// issues server and client certificates valid from a minute ago, so no
// fixture can expire. Helpers take testing.TB and fail the test on error.
// It is imported only by _test.go files.
package certstest

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imedge/imedge/certs"
)

// CA is a test certificate authority. Safe for concurrent use.
type CA struct {
	*certs.CA
}

// Option adjusts a certificate request.
type Option func(*certs.Request)

// NewCA returns a new ECDSA P-256 root valid from a minute ago for one hour,
// unless options say otherwise.
func NewCA(t testing.TB, opts ...Option) *CA {
	t.Helper()
	req := certs.Request{CommonName: "imedge test CA", NotAfter: time.Now().Add(time.Hour)}
	for _, o := range opts {
		o(&req)
	}
	ca, err := certs.NewCA(req)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{CA: ca}
}

// Server makes a server certificate for the given DNS names and IP literals.
func Server(names ...string) Option {
	return func(r *certs.Request) {
		r.Usage = certs.UsageServer
		if r.CommonName == "" && len(names) > 0 {
			r.CommonName = names[0]
		}
		for _, n := range names {
			if ip := net.ParseIP(n); ip != nil {
				r.IPs = append(r.IPs, ip)
			} else {
				r.DNSNames = append(r.DNSNames, n)
			}
		}
	}
}

// Client makes a client certificate. An identity with "://" becomes a URI
// SAN; anything else becomes the common name and a DNS SAN.
func Client(identity string) Option {
	return func(r *certs.Request) {
		r.Usage = certs.UsageClient
		if u, err := url.Parse(identity); err == nil && u.Scheme != "" && u.Host != "" {
			r.URIs = append(r.URIs, u)
			if r.CommonName == "" {
				r.CommonName = u.Host
			}
			return
		}
		r.CommonName = identity
		r.DNSNames = append(r.DNSNames, identity)
	}
}

// CommonName sets the subject common name only.
func CommonName(cn string) Option { return func(r *certs.Request) { r.CommonName = cn } }

// Usage sets the usage (EKU) explicitly.
func Usage(u certs.Usage) Option { return func(r *certs.Request) { r.Usage = u } }

// RSA selects a 2048-bit RSA key.
func RSA() Option { return func(r *certs.Request) { r.KeyType = certs.RSA2048 } }

// ValidFor sets the validity to start a minute ago and last d.
func ValidFor(d time.Duration) Option {
	return func(r *certs.Request) {
		r.NotBefore = time.Now().Add(-time.Minute)
		r.NotAfter = time.Now().Add(d)
	}
}

// ValidBetween sets an explicit validity window (for expired or not yet
// valid certificates).
func ValidBetween(nb, na time.Time) Option {
	return func(r *certs.Request) { r.NotBefore, r.NotAfter = nb, na }
}

// Issue signs a certificate; with no Server or Client option it is a client
// certificate named "client".
func (ca *CA) Issue(t testing.TB, opts ...Option) *certs.Issued {
	t.Helper()
	req := certs.Request{NotAfter: time.Now().Add(time.Hour)}
	for _, o := range opts {
		o(&req)
	}
	if req.Usage == 0 {
		Client("client")(&req)
	}
	if req.NotAfter.After(ca.Cert.NotAfter) {
		req.NotAfter = ca.Cert.NotAfter
	}
	iss, err := ca.CA.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// TLSCertificate returns i as a tls.Certificate with Leaf set.
func TLSCertificate(t testing.TB, i *certs.Issued) tls.Certificate {
	t.Helper()
	return tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}
}

// MutualServerTLS returns the TLS configuration of a loopback test server
// that presents a certificate ca issues for names and requires a client
// certificate ca issued: TLS 1.2 at least, as every imedge listener.
func MutualServerTLS(t testing.TB, ca *CA, names ...string) *tls.Config {
	t.Helper()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{TLSCertificate(t, ca.Issue(t, Server(names...)))},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    Pool(ca),
	}
}

// Pool returns a pool holding the given CAs.
func Pool(cas ...*CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// Paths are files written by WriteFiles.
type Paths struct {
	Dir  string
	Cert string // PEM certificate
	Key  string // PEM PKCS#8 key, mode 0600
	CA   string // PEM of the issuing CA
}

// WriteFiles writes i, its key and the CA into a new t.TempDir().
func (ca *CA) WriteFiles(t testing.TB, i *certs.Issued) Paths {
	t.Helper()
	dir := t.TempDir()
	p := Paths{Dir: dir, Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
	if err := certs.WriteIssued(i, p.Cert, p.Key); err != nil {
		t.Fatal(err)
	}
	ca.WriteCA(t, p.CA)
	return p
}

// WriteCA writes the CA certificate as PEM to path.
func (ca *CA) WriteCA(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, certs.EncodeCertificatesPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteBundle writes several CAs into one PEM bundle at path.
func WriteBundle(t testing.TB, path string, cas ...*CA) {
	t.Helper()
	var list []*x509.Certificate
	for _, ca := range cas {
		list = append(list, ca.Cert)
	}
	if err := os.WriteFile(path, certs.EncodeCertificatesPEM(list...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// CRL returns a DER CRL signed by ca revoking the serials, valid for an hour.
func (ca *CA) CRL(t testing.TB, serials ...*big.Int) []byte {
	t.Helper()
	der, err := ca.RevocationList(serials, time.Now().Unix(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
