// Package tlsconf builds and owns imedge's server-side *tls.Config: the
// server certificate, loaded from PEM files into a certmagic cache of its
// own; the client-CA bundle (several CAs allowed); client CRLs; an
// allow-list of client identities (subject CN, DNS SAN, URI SAN, SPKI
// pin); and the handshake policy (TLS 1.2 minimum, ECDHE+AEAD suites).
//
// Client certificates are verified in VerifyConnection rather than by
// crypto/tls, so full and resumed handshakes are checked alike against the
// current material, and every refusal writes exactly one audit record with
// a precise reason code and the offered certificate's identity. Because
// crypto/tls does not verify, tls.ConnectionState.VerifiedChains is empty;
// in ClientAuthRequire mode PeerCertificates[0] of an established
// connection is the verified client certificate.
//
// A [Source] is reloadable under live traffic: Reload (or Watch, which
// polls the files) validates everything and swaps it atomically, keeping
// the previous material on any error. Status reports what is served.
//
// The server certificate can instead come from an ACME CA (Options
// ACMEDomains and friends, then Source.StartACME once the listener is
// open): certmagic's ACMEIssuer obtains and renews it with TLS-ALPN-01
// only, keeping the account and certificates in a directory of the
// operator's choosing. A ClientHello whose ALPN list is exactly
// ["acme-tls/1"] gets a configuration of its own that requests no client
// certificate, has session tickets disabled and serves only the challenge
// certificate; net/http closes such connections after the handshake, so
// nothing on them reaches the HTTP handler. Client authentication stays
// mandatory for every other handshake.
//
// The package does not own the listener, the HTTP server, signals or the
// request-level checks (package receiver reads the peer from r.TLS). It is
// the only imedge package that imports certmagic and zap.
package tlsconf
