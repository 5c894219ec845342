package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// ParseCRLs returns every CRL in data, which holds either PEM "X509 CRL"
// blocks or one DER CRL. A PEM file without such a block wraps ErrNoCRL.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN")) {
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
		if len(ders) == 0 {
			return nil, ErrNoCRL
		}
	} else {
		ders = [][]byte{data}
	}
	out := make([]*x509.RevocationList, 0, len(ders))
	for i, der := range ders {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("parsing CRL %d: %w", i+1, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// CRLUpdate is a change to a CA's CRL: the entries of a previous CRL kept,
// serials added, and the new CRL's validity.
type CRLUpdate struct {
	// From is the previous CRL of the same CA, or nil for a first one. Its
	// entries are kept with their revocation times and the new CRL is
	// numbered after it.
	From *x509.RevocationList
	// Revoke lists serials to add; one already listed is reported in
	// CRLResult.AlreadyRevoked, not added twice.
	Revoke []*big.Int
	// Validity is the time until NextUpdate.
	Validity time.Duration
	// Now is the revocation time of new entries; zero means time.Now().
	Now time.Time
}

// CRLResult is a CRL signed by SignCRL.
type CRLResult struct {
	PEM            []byte   // the CRL, PEM "X509 CRL"
	Number         *big.Int // its CRL number
	NextUpdate     time.Time
	Revoked        []*big.Int // every serial listed
	Added          []*big.Int // serials newly listed
	AlreadyRevoked []*big.Int // serials asked for that were listed already
}

// SignCRL signs a CRL with ca: the previous entries kept (with their own
// revocation times, which CA.RevocationList would reset), u.Revoke added.
// ThisUpdate is a minute before Now, for a verifier whose clock is slightly
// behind.
func SignCRL(ca *CA, u CRLUpdate) (CRLResult, error) {
	if u.Validity <= 0 {
		return CRLResult{}, fmt.Errorf("signing CRL: validity %s must be positive", u.Validity)
	}
	if u.Now.IsZero() {
		u.Now = time.Now()
	}
	res := CRLResult{Number: big.NewInt(1), NextUpdate: u.Now.Add(u.Validity)}
	var entries []x509.RevocationListEntry
	if u.From != nil {
		entries = slices.Clone(u.From.RevokedCertificateEntries)
		if u.From.Number != nil {
			res.Number.Add(u.From.Number, big.NewInt(1))
		}
	}
	for _, serial := range u.Revoke {
		if slices.ContainsFunc(entries, func(e x509.RevocationListEntry) bool { return e.SerialNumber.Cmp(serial) == 0 }) {
			res.AlreadyRevoked = append(res.AlreadyRevoked, serial)
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: u.Now})
		res.Added = append(res.Added, serial)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    res.Number,
		ThisUpdate:                u.Now.Add(-time.Minute),
		NextUpdate:                res.NextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return CRLResult{}, fmt.Errorf("signing CRL: %w", err)
	}
	for _, e := range entries {
		res.Revoked = append(res.Revoked, e.SerialNumber)
	}
	res.PEM = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	return res, nil
}

// LoadCRLOf reads path and returns its CRL signed by ca.
func LoadCRLOf(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	data, err := ReadFile("reading CRL", path)
	if err != nil {
		return nil, err
	}
	lists, err := ParseCRLs(data)
	if err != nil {
		return nil, &FileError{Path: path, Op: "parsing CRL", Err: err}
	}
	for _, l := range lists {
		if l.CheckSignatureFrom(ca) == nil {
			return l, nil
		}
	}
	return nil, &FileError{Path: path, Op: "reading CRL", Err: fmt.Errorf("no CRL in it is signed by %s", ca.Subject)}
}

// ParseSerial reads a serial number in hex ("3a9f", "0x3a9f", "3A:9F"), as
// SerialHex writes it and the audit log records it.
func ParseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	h = strings.TrimPrefix(h, "0x")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || n.Sign() < 0 {
		return nil, errors.New("want a hexadecimal serial number")
	}
	return n, nil
}
