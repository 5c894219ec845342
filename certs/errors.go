package certs

import (
	"errors"
	"fmt"
)

// ErrNoCertificates reports a PEM file or bundle that holds no certificate.
var ErrNoCertificates = errors.New("certs: no certificate found")

// ErrNoPrivateKey reports a PEM file that holds no private key.
var ErrNoPrivateKey = errors.New("certs: no private key found")

// ErrKeyMismatch reports a private key that does not belong to its certificate.
var ErrKeyMismatch = errors.New("certs: private key does not match certificate")

// ErrTooLarge reports a file larger than the bounded read allows (1 MiB).
var ErrTooLarge = errors.New("certs: file too large")

// FileError records an error about one file, the way *fs.PathError does. Its
// message names the file so an operator can act on it.
type FileError struct {
	Path string // the file concerned
	Op   string // what was being done, e.g. "reading certificate"
	Err  error  // the cause
}

// Error returns "OP PATH: ERR".
func (e *FileError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Op, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// ErrNoCRL reports a PEM file that holds no "X509 CRL" block.
var ErrNoCRL = errors.New("certs: no X509 CRL PEM block")
