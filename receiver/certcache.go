package receiver

import (
	"bytes"
	"crypto/x509"

	"github.com/imedge/imedge/certs"
)

// certNames are the identity and fingerprint of one client certificate.
type certNames struct {
	raw      []byte // DER of the certificate they were computed from
	identity string
	sha256   string
}

// certNames returns the identity and SHA-256 fingerprint of c. IM presents
// the same certificate on every connection, so the last answer is kept and
// reused while certificates compare equal byte for byte; hashing the
// certificate again for every callback was a measurable part of the
// request path.
func (h *Handler) certNames(c *x509.Certificate) (identity, sha256 string) {
	if n := h.lastCert.Load(); n != nil && bytes.Equal(n.raw, c.Raw) {
		return n.identity, n.sha256
	}
	n := &certNames{raw: c.Raw, identity: IdentityOf(c), sha256: certs.CertFingerprint(c)}
	h.lastCert.Store(n)
	return n.identity, n.sha256
}
