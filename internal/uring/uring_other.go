//go:build !linux

package uring

import (
	"fmt"
	"os"
	"runtime"
)

// Ring is not available outside Linux; see New.
type Ring struct{}

// New fails on operating systems other than Linux.
func New() (*Ring, error) {
	return nil, fmt.Errorf("%w on %s", ErrUnavailable, runtime.GOOS)
}

// Fdatasync is never reached: New returns no Ring here.
func (r *Ring) Fdatasync(*os.File) error { return ErrClosed }

// Close does nothing.
func (r *Ring) Close() error { return nil }
