package edge

import "errors"

// ErrNoTLSConfig is returned by New when Options.TLSConfig is nil.
var ErrNoTLSConfig = errors.New("edge: a TLS configuration is required")

// ErrBadOption is wrapped by New's errors for an out-of-range option.
var ErrBadOption = errors.New("edge: invalid option")
