package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// KeyType names a key algorithm for new certificates.
type KeyType string

// Key types accepted by NewCA and Issue. The zero value means ECDSAP256.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
)

// Usage says what a certificate is for; it sets key usage and EKU.
type Usage int

// Usages.
const (
	UsageServer Usage = iota + 1 // serverAuth EKU
	UsageClient                  // clientAuth EKU
	UsageBoth                    // serverAuth and clientAuth
	UsageCA                      // a CA: certSign and crlSign, no EKU
)

// Request describes a certificate to issue. Zero NotBefore means one minute
// ago; zero NotAfter means NotBefore plus 90 days.
type Request struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	URIs       []*url.URL
	Usage      Usage
	KeyType    KeyType
	NotBefore  time.Time
	NotAfter   time.Time
}

// CA is a certificate authority that can issue certificates and CRLs. It is
// immutable after creation and safe for concurrent use.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Issued is a new certificate with its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertPEM returns the certificate as PEM.
func (i *Issued) CertPEM() []byte { return EncodeCertificatesPEM(i.Cert) }

// KeyPEM returns the private key as PKCS#8 PEM.
func (i *Issued) KeyPEM() ([]byte, error) { return EncodePrivateKeyPEM(i.Key) }

// GenerateKey returns a new private key of type kt.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("generating key: unknown key type %q (want %s, %s or %s)", kt, ECDSAP256, RSA2048, RSA3072)
}

// NewCA creates a self-signed root CA. req.Usage is ignored.
func NewCA(req Request) (*CA, error) {
	if req.CommonName == "" {
		return nil, errors.New("creating CA: common name is required")
	}
	key, err := GenerateKey(req.KeyType)
	if err != nil {
		return nil, err
	}
	req.Usage = UsageCA
	tmpl, err := template(req, key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA certificate and key from PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !pair.Leaf.IsCA {
		return nil, &FileError{Path: certFile, Op: "loading CA", Err: errors.New("certificate is not a CA")}
	}
	return &CA{Cert: pair.Leaf, Key: pair.PrivateKey.(crypto.Signer)}, nil
}

// Issue creates a certificate signed by ca. Usage defaults to UsageClient
// when unset. The validity is clipped to the CA's.
func (ca *CA) Issue(req Request) (*Issued, error) {
	if req.Usage == 0 {
		req.Usage = UsageClient
	}
	key, err := GenerateKey(req.KeyType)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(req, key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %q: %w", req.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new certificate: %w", err)
	}
	return &Issued{Cert: cert, Key: key}, nil
}

// RevocationList returns a DER CRL signed by ca listing serials, valid from
// thisUpdate to nextUpdate, with the given CRL number.
func (ca *CA) RevocationList(serials []*big.Int, number int64, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(serials))
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	return der, nil
}

func template(req Request, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	nb := req.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	na := req.NotAfter
	if na.IsZero() {
		na = nb.Add(90 * 24 * time.Hour)
	}
	if !na.After(nb) {
		return nil, errors.New("certificate NotAfter must be after NotBefore")
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	skid := sha1.Sum(spki) // identifier only, not a security boundary
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             nb,
		NotAfter:              na,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		URIs:                  req.URIs,
		SubjectKeyId:          skid[:],
		BasicConstraintsValid: true,
	}
	switch req.Usage {
	case UsageCA:
		t.IsCA = true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	case UsageServer:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case UsageClient:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case UsageBoth:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("unknown certificate usage %d", req.Usage)
	}
	if _, ok := pub.(*rsa.PublicKey); ok && req.Usage != UsageCA {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return t, nil
}
