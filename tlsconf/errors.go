package tlsconf

import "errors"

// ErrNoClientCA reports that client certificates are required but no
// client-CA bundle (Options.ClientCAFile) was given.
var ErrNoClientCA = errors.New("tlsconf: client certificates are required but no client CA bundle is configured")

// ErrEmptyBundle reports a client-CA bundle file that holds no certificate.
var ErrEmptyBundle = errors.New("tlsconf: client CA bundle holds no certificate")

// ErrCRLIssuer reports a CRL that is not signed by any CA of the client-CA
// bundle, or that cannot be used because there is no bundle.
var ErrCRLIssuer = errors.New("tlsconf: CRL is not signed by a CA of the client CA bundle")

// ErrBadCRL reports a CRL file that cannot be parsed (neither PEM "X509 CRL"
// nor DER).
var ErrBadCRL = errors.New("tlsconf: CRL cannot be parsed")

// ErrServerCertExpired reports a server certificate past its NotAfter.
var ErrServerCertExpired = errors.New("tlsconf: server certificate has expired")

// ErrBadAllowEntry reports an Options.AllowedClients entry that does not
// parse. The wrapping error names the entry.
var ErrBadAllowEntry = errors.New("tlsconf: bad allowed-client entry")

// ErrAllowListWithoutClientAuth reports an allow-list configured while
// client certificates are not requested (ClientAuthNone), where it could
// never be enforced.
var ErrAllowListWithoutClientAuth = errors.New("tlsconf: allowed clients are set but client certificates are not requested")

// ErrBadClientAuth reports a client-auth mode name that ParseClientAuth does
// not know.
var ErrBadClientAuth = errors.New("tlsconf: unknown client auth mode")

// ErrBadCurve reports a key-exchange name that ParseCurves does not know.
var ErrBadCurve = errors.New("tlsconf: unknown key exchange")

// ErrMissingFile reports a required option naming a file (CertFile, KeyFile)
// left empty.
var ErrMissingFile = errors.New("tlsconf: required file not configured")

// ErrClosed reports a Reload on a Source after Close.
var ErrClosed = errors.New("tlsconf: source is closed")

// ErrClientRefused is wrapped by the handshake error returned when a client
// certificate (or its absence) is refused; the audit record carries the
// precise reason.
var ErrClientRefused = errors.New("tlsconf: client refused")

// ErrTLSVersion is wrapped by the handshake error returned when a client
// offers no TLS version at or above 1.2.
var ErrTLSVersion = errors.New("tlsconf: client offers no TLS version >= 1.2")

// ErrACMEWithCertFiles reports ACME domains configured together with a
// certificate or key file: the server certificate comes from one or the
// other.
var ErrACMEWithCertFiles = errors.New("tlsconf: ACME domains and certificate files are exclusive")

// ErrACMEBadCA reports an ACME directory URL that is not https.
var ErrACMEBadCA = errors.New("tlsconf: ACME directory must be an https URL")

// ErrACMEBadDomain reports an ACME domain that TLS-ALPN-01 cannot validate
// or that is not a DNS name.
var ErrACMEBadDomain = errors.New("tlsconf: bad ACME domain")

// ErrACMENotConfigured reports StartACME on a Source without ACME domains.
var ErrACMENotConfigured = errors.New("tlsconf: ACME is not configured")

// ErrACMEStarted reports a second StartACME call.
var ErrACMEStarted = errors.New("tlsconf: ACME management already started")

// ErrACMENotStarted is returned to handshakes that arrive before StartACME,
// and to acme-tls/1 handshakes that are not TLS-ALPN-01 validations.
var ErrACMENotStarted = errors.New("tlsconf: no ACME certificate available")

// ErrEmptyAllowList reports an allow-list file without any entry.
var ErrEmptyAllowList = errors.New("tlsconf: allow-list file has no entry")
