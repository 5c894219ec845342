package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
)

// verifyClient is the VerifyConnection of a Require-mode handshake, full or
// resumed. It checks, in order: a certificate was presented; the leaf is
// inside its validity window; the chain leads to the bundle with client
// authentication allowed; no certificate of the chain is revoked by its
// issuer's CRL (and, failing closed, that CRL is fresh); the leaf is on the
// allow-list. The first failure writes one audit record and refuses.
func (s *Source) verifyClient(st *state, conn net.Conn, cs tls.ConnectionState) error {
	rec := audit.Record{TLSVersion: tls.VersionName(cs.Version)}
	if len(cs.PeerCertificates) == 0 {
		rec.Reason, rec.Detail = audit.TLSNoCert, "no client certificate presented"
		return s.refuseConn(conn, rec)
	}
	leaf := cs.PeerCertificates[0]
	rec.CertSubject = leaf.Subject.String()
	rec.CertSerial = certs.SerialHex(leaf)
	rec.CertSHA256 = certs.CertFingerprint(leaf)

	now := s.now()
	switch {
	case now.Before(leaf.NotBefore):
		rec.Reason, rec.Detail = audit.TLSNotYetValid, "client certificate not valid yet"
		return s.refuseConn(conn, rec)
	case now.After(leaf.NotAfter):
		rec.Reason, rec.Detail = audit.TLSExpired, "client certificate expired"
		return s.refuseConn(conn, rec)
	}

	chains, err := verifyChain(st, cs.PeerCertificates, now)
	if err != nil {
		rec.Reason, rec.Detail = classify(err)
		return s.refuseConn(conn, rec)
	}

	if reason, detail, ok := s.checkRevocation(st, chains, now); !ok {
		rec.Reason, rec.Detail = reason, detail
		return s.refuseConn(conn, rec)
	}

	if !st.allow.allows(leaf) {
		rec.Reason, rec.Detail = audit.TLSNotAllowed, "client identity not on the allow-list"
		return s.refuseConn(conn, rec)
	}
	return nil
}

// classify maps an x509 verification error to a reason and a fixed detail
// (never the error text, which quotes names from the offered certificate).
func classify(err error) (audit.Reason, string) {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			return audit.TLSExpired, "a certificate of the chain is outside its validity window"
		case x509.IncompatibleUsage:
			return audit.TLSBadEKU, "certificate not valid for client authentication"
		}
		return audit.TLSBadCert, "certificate chain invalid"
	}
	var unk x509.UnknownAuthorityError
	if errors.As(err, &unk) {
		return audit.TLSUnknownCA, "certificate not issued by a trusted client CA"
	}
	return audit.TLSBadCert, "certificate chain invalid"
}

// checkRevocation looks every certificate of every verified chain up in
// its issuer's CRLs. A listed serial refuses (tls_revoked). A stale CRL of
// an issuer on the chain refuses when failing closed (tls_crl_stale) and is
// otherwise logged once per CRL.
func (s *Source) checkRevocation(st *state, chains [][]*x509.Certificate, now time.Time) (audit.Reason, string, bool) {
	if len(st.crls) == 0 {
		return "", "", true
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			for _, e := range st.crls[issuerKey(chain[i+1])] {
				if e.revokes(chain[i]) {
					if i == 0 {
						return audit.TLSRevoked, "client certificate revoked", false
					}
					return audit.TLSRevoked, "intermediate CA certificate revoked", false
				}
			}
		}
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			for _, e := range st.crls[issuerKey(chain[i+1])] {
				if !e.stale(now) {
					continue
				}
				if st.failClosed {
					return audit.TLSCRLStale, "issuer CRL past its next update", false
				}
				if e.warned.CompareAndSwap(false, true) {
					s.log.Warn("client CRL is past its next update; accepting clients (fail open)", crlAttrs(e)...)
				}
			}
		}
	}
	return "", "", true
}

func crlAttrs(e *crlEntry) []any {
	a := []any{
		slog.String("file", e.file),
		slog.String("issuer", e.issuer.Subject.String()),
		slog.Time("next_update", e.list.NextUpdate),
	}
	if e.list.Number != nil {
		a = append(a, slog.String("number", e.list.Number.String()))
	}
	return a
}

// refuseConn completes rec with the peer address, audits it and returns
// the handshake error.
func (s *Source) refuseConn(conn net.Conn, rec audit.Record) error {
	rec.RemoteAddr = remoteAddr(conn)
	s.refuse(rec)
	return fmt.Errorf("verifying client certificate: %w (%s)", ErrClientRefused, rec.Reason)
}

// refuse writes one audit record and a debug log line for a refused
// handshake.
func (s *Source) refuse(rec audit.Record) {
	s.audit.Log(rec)
	s.log.Debug("tls handshake refused",
		slog.String("reason", string(rec.Reason)),
		slog.String("remote_addr", rec.RemoteAddr),
		slog.String("cert_sha256", rec.CertSHA256))
}
