package certs

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// MaxFileSize is the largest certificate, key, bundle or CRL file read (1 MiB).
const MaxFileSize = 1 << 20

// ReadFile reads path through a 1 MiB bound. Errors are *FileError with op.
func ReadFile(op, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{Path: path, Op: op, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{Path: path, Op: op, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &FileError{Path: path, Op: op, Err: ErrTooLarge}
	}
	return data, nil
}

// ParseCertificatesPEM returns every CERTIFICATE block in data, in order. It
// returns ErrNoCertificates when there is none; other PEM blocks are skipped.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, ErrNoCertificates
	}
	return out, nil
}

// LoadCertificates reads a PEM file and returns its certificates.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := ReadFile("reading certificate", path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, &FileError{Path: path, Op: "parsing certificate", Err: err}
	}
	return certs, nil
}

// LoadPool reads a PEM bundle of CA certificates and returns them both as a
// pool and as a list (for fingerprints and CRL checks). A bundle with no
// certificate is an error wrapping ErrNoCertificates.
func LoadPool(path string) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := ReadFile("reading CA bundle", path)
	if err != nil {
		return nil, nil, err
	}
	list, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, nil, &FileError{Path: path, Op: "parsing CA bundle", Err: err}
	}
	pool := x509.NewCertPool()
	for _, c := range list {
		pool.AddCert(c)
	}
	return pool, list, nil
}

// LoadKeyPair reads a PEM certificate chain and its PEM private key, checks
// that they match and returns a tls.Certificate with Leaf set.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := ReadFile("reading certificate", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := ReadFile("reading private key", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return ParseKeyPair(certPEM, keyPEM, certFile, keyFile)
}

// ParseKeyPair is LoadKeyPair on bytes; the names are used in errors only.
func ParseKeyPair(certPEM, keyPEM []byte, certName, keyName string) (tls.Certificate, error) {
	chain, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return tls.Certificate{}, &FileError{Path: certName, Op: "parsing certificate", Err: err}
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return tls.Certificate{}, &FileError{Path: keyName, Op: "parsing private key", Err: err}
	}
	if !KeyMatches(chain[0], key) {
		return tls.Certificate{}, &FileError{Path: keyName, Op: "matching private key to " + certName, Err: ErrKeyMismatch}
	}
	out := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// ParsePrivateKeyPEM returns the first private key in data (PKCS#8, PKCS#1
// or SEC 1 EC).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, ErrNoPrivateKey
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("parsing %s: unsupported key type %T", block.Type, k)
		}
		return s, nil
	}
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// Fingerprint returns the lowercase hex SHA-256 of the certificate's
// SubjectPublicKeyInfo: the value used for SPKI pins.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// CertFingerprint returns the lowercase hex SHA-256 of the whole DER
// certificate, as `openssl x509 -fingerprint -sha256` prints it (without colons).
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// EncodeCertificatesPEM returns the PEM encoding of certs, in order.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// EncodePrivateKeyPEM returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ClientTLS returns the TLS configuration of an outgoing connection
// imedge makes (deliveries, decision services): TLS 1.2 or newer, the
// servers verified against the PEM bundle caFile (the system roots when
// empty), and, when certFile is set, the client certificate of certFile
// and keyFile. what names the connection in errors ("forward",
// "decision services").
func ClientTLS(what, caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, _, err := LoadPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("loading the %s CA bundle: %w", what, err)
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		pair, err := LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the %s client certificate: %w", what, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
