package tlsconf

import (
	"crypto/sha256"
	"crypto/x509"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// verifiedCacheSize bounds the chains remembered per generation. IM
// presents one certificate (two during a rotation), so a few hundred
// entries cover any real deployment; an attacker cannot fill it, since
// only chains that verified are stored.
const verifiedCacheSize = 256

// verifiedChain is the outcome of a successful x509 verification of one
// offered certificate list: the chains built and the window, the
// intersection of the validity periods of every certificate on them,
// inside which the same verification gives the same answer.
type verifiedChain struct {
	chains    [][]*x509.Certificate
	notBefore time.Time
	notAfter  time.Time
}

func newVerifiedCache() *lru.Cache[[sha256.Size]byte, verifiedChain] {
	c, err := lru.New[[sha256.Size]byte, verifiedChain](verifiedCacheSize)
	if err != nil { // only for a non-positive size
		panic(err)
	}
	return c
}

// chainKey identifies an offered certificate list by the SHA-256 of its
// DER certificates, each prefixed with its length.
func chainKey(offered []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range offered {
		l := len(c.Raw)
		n[0], n[1], n[2], n[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verifyChain returns the chains from offered[0] to st's client CAs,
// verifying them with x509 the first time a certificate list is seen and
// answering from st.verified afterwards while now is inside the window of
// every certificate involved. Chain building and its signature checks were
// about a third of the server's cost of a full handshake; the rest of
// verifyClient (revocation, allow-list) still runs every time, and the
// client's proof of possession of the key is checked by crypto/tls on every
// handshake. Only successes are remembered.
func verifyChain(st *state, offered []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	key := chainKey(offered)
	if v, ok := st.verified.Get(key); ok && !now.Before(v.notBefore) && !now.After(v.notAfter) {
		return v.chains, nil
	}
	opts := x509.VerifyOptions{
		Roots:       st.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(offered) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range offered[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	chains, err := offered[0].Verify(opts)
	if err != nil {
		return nil, err
	}
	v := verifiedChain{chains: chains, notBefore: offered[0].NotBefore, notAfter: offered[0].NotAfter}
	for _, chain := range chains {
		for _, c := range chain {
			if c.NotBefore.After(v.notBefore) {
				v.notBefore = c.NotBefore
			}
			if c.NotAfter.Before(v.notAfter) {
				v.notAfter = c.NotAfter
			}
		}
	}
	st.verified.Add(key, v)
	return chains, nil
}
