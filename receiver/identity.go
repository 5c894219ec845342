package receiver

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/imedge/imedge/certs"
)

// EventID returns the id of a callback: the lowercase hex SHA-256 over
// appID, a zero byte, command, a zero byte and the raw body. IM callbacks
// carry no id of their own, so identical requests share an id; it is also
// the de-duplication key.
func EventID(appID, command string, body []byte) string {
	h := sha256.New()
	var sep = [1]byte{0}
	h.Write([]byte(appID))
	h.Write(sep[:])
	h.Write([]byte(command))
	h.Write(sep[:])
	h.Write(body)
	var sum [sha256.Size]byte
	var id [2 * sha256.Size]byte
	hex.Encode(id[:], h.Sum(sum[:0]))
	return string(id[:])
}

// IdentityOf names the holder of a verified client certificate: its first
// URI SAN, else its first DNS SAN, else its subject common name, else
// "spki:" followed by the SPKI SHA-256 (see [certs.Fingerprint]). A nil
// certificate has no identity ("").
func IdentityOf(c *x509.Certificate) string {
	switch {
	case c == nil:
		return ""
	case len(c.URIs) > 0 && c.URIs[0] != nil:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	}
	return "spki:" + certs.Fingerprint(c)
}
