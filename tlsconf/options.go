package tlsconf

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/imedge/imedge/audit"
)

// ClientAuth selects whether clients must present a certificate. The zero
// value is ClientAuthRequire.
type ClientAuth int

// Client-auth modes.
const (
	// ClientAuthRequire requests a client certificate and refuses the
	// handshake unless it chains to the client-CA bundle, is valid now,
	// allows client authentication, is not revoked and passes the
	// allow-list. It is the default.
	ClientAuthRequire ClientAuth = iota
	// ClientAuthNone requests no client certificate. It exists only for
	// token-only deployments; the IM token is then the only authentication.
	ClientAuthNone
)

// String returns "require" or "none".
func (c ClientAuth) String() string {
	switch c {
	case ClientAuthRequire:
		return "require"
	case ClientAuthNone:
		return "none"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(c))
}

// ParseClientAuth parses "require" or "none" (case-insensitive, surrounding
// space ignored). Anything else is an error wrapping ErrBadClientAuth.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "require":
		return ClientAuthRequire, nil
	case "none":
		return ClientAuthNone, nil
	}
	return 0, fmt.Errorf("parsing client auth mode %q: %w (want require or none)", s, ErrBadClientAuth)
}

// Options configures a Source. CertFile and KeyFile are required unless
// ACMEDomains is set (then they must be empty); ClientCAFile is required
// unless ClientAuth is ClientAuthNone. New copies the Options; changing
// them afterwards has no effect. Every file is re-read by Reload.
type Options struct {
	// CertFile is the server certificate chain, PEM, leaf first.
	CertFile string
	// KeyFile is the server private key, PEM (PKCS#8, PKCS#1 or SEC 1).
	KeyFile string
	// ACMEDomains, when set, makes the server certificate come from an ACME
	// CA (one certificate per name, obtained and renewed by certmagic with
	// TLS-ALPN-01 only) instead of CertFile/KeyFile. See Source.StartACME.
	ACMEDomains []string
	// ACMEEmail is the contact address of the ACME account; empty registers
	// without one.
	ACMEEmail string
	// ACMECA is the ACME directory URL (https); empty means DefaultACMECA,
	// Let's Encrypt production.
	ACMECA string
	// ACMEStorage is the directory (created, mode 0700) where the ACME
	// account and the obtained certificates and keys are kept across
	// restarts. Required with ACMEDomains.
	ACMEStorage string
	// ACMERootsFile is a PEM bundle of the roots trusted for the ACME
	// server's own HTTPS (a private ACME CA); empty means the system roots.
	ACMERootsFile string
	// ClientCAFile is a PEM bundle of the CAs allowed to issue client
	// certificates; several CAs are allowed.
	ClientCAFile string
	// ClientCRLFiles are CRLs (PEM "X509 CRL" blocks or DER), each signed by
	// a CA of the bundle. Empty means no revocation checking.
	ClientCRLFiles []string
	// CRLFailClosed refuses clients of an issuer whose CRL is past its
	// NextUpdate (reason tls_crl_stale). False logs a warning and accepts.
	CRLFailClosed bool
	// ClientAuth is the client-certificate mode; zero is ClientAuthRequire.
	ClientAuth ClientAuth
	// AllowedClients restricts accepted client identities. Entries are
	// "cn:NAME" (subject common name), "dns:NAME" (DNS SAN, case-insensitive),
	// "uri:URI" (URI SAN) or "spki:HEX64" (SHA-256 of the SubjectPublicKeyInfo,
	// as certs.Fingerprint prints it). Empty accepts any certificate chaining
	// to the bundle.
	AllowedClients []string
	// AllowedClientsFile, when set, adds the entries of a file (one per
	// line; blank lines and lines starting with # are ignored) to
	// AllowedClients. It is re-read on Reload and watched like the
	// certificates; a file with no entry is an error, so emptying it can
	// never silently open the door to every client of the bundle.
	AllowedClientsFile string
	// ServerName is the name whose certificate is served when the client
	// sends no SNI or an unknown one. Empty means the certificate's first DNS
	// SAN, else its first IP SAN, else its common name.
	ServerName string
	// Curves restricts the key exchanges offered (see [ParseCurves]); nil
	// keeps Go's default, which prefers the X25519MLKEM768 post-quantum
	// hybrid when the client offers it.
	Curves []tls.CurveID
	// Audit receives one record per refused handshake; nil discards.
	Audit *audit.Logger
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
	// Now is the clock used for validity, CRL freshness and status; nil
	// means time.Now.
	Now func() time.Time
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Options) now() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}
