package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
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
