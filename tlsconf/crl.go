package tlsconf

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/certs"
)

// crlEntry is one loaded CRL, tied to the bundle CA that signed it. Only
// warned changes after load.
type crlEntry struct {
	file    string
	list    *x509.RevocationList
	issuer  *x509.Certificate
	revoked map[string]struct{} // serial numbers, lowercase hex
	warned  atomic.Bool         // a stale warning was logged for this entry
}

// stale reports whether the CRL is past its NextUpdate at now. A CRL
// without NextUpdate never goes stale.
func (e *crlEntry) stale(now time.Time) bool {
	return !e.list.NextUpdate.IsZero() && now.After(e.list.NextUpdate)
}

// revokes reports whether c's serial is listed.
func (e *crlEntry) revokes(c *x509.Certificate) bool {
	if c.SerialNumber == nil {
		return false
	}
	_, ok := e.revoked[c.SerialNumber.Text(16)]
	return ok
}

// issuerKey identifies a CA by subject and public key, so a chain element
// and a bundle certificate for the same CA match even when they are
// different certificates (re-issued or cross-signed).
func issuerKey(c *x509.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

// crlIndex maps issuerKey to the CRLs that CA signed.
type crlIndex map[string][]*crlEntry

// loadCRL reads one CRL file (PEM with one or more "X509 CRL" blocks, or
// DER) and checks that each CRL is signed by a CA in cas. Errors are
// *certs.FileError naming the file. It also returns the bytes read.
func loadCRL(path string, cas []*x509.Certificate) ([]*crlEntry, []byte, error) {
	data, err := certs.ReadFile("reading CRL", path)
	if err != nil {
		return nil, nil, err
	}
	lists, err := certs.ParseCRLs(data)
	if err != nil {
		return nil, nil, &certs.FileError{Path: path, Op: "parsing CRL", Err: fmt.Errorf("%w: %w", ErrBadCRL, err)}
	}
	out := make([]*crlEntry, 0, len(lists))
	for _, list := range lists {
		issuer := crlSigner(list, cas)
		if issuer == nil {
			return nil, nil, &certs.FileError{Path: path, Op: "verifying CRL", Err: ErrCRLIssuer}
		}
		e := &crlEntry{file: path, list: list, issuer: issuer, revoked: make(map[string]struct{}, len(list.RevokedCertificateEntries))}
		for _, r := range list.RevokedCertificateEntries {
			if r.SerialNumber != nil {
				e.revoked[r.SerialNumber.Text(16)] = struct{}{}
			}
		}
		out = append(out, e)
	}
	return out, data, nil
}

// crlSigner returns the CA of cas whose key signed list, preferring one
// whose subject matches the CRL's issuer name; nil when none did.
func crlSigner(list *x509.RevocationList, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if bytes.Equal(list.RawIssuer, ca.RawSubject) && list.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	for _, ca := range cas {
		if list.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}
