// Package certs holds imedge's pure PEM and X.509 helpers: loading key pairs
// and CA bundles from disk with bounded reads, fingerprints, a small
// certificate authority used by `imedge certs`, dev mode and the tests, and
// a human-readable description of a certificate.
//
// It owns no TLS configuration (see package tlsconf) and keeps no state: every
// function works on its arguments only and is safe for concurrent use.
package certs
