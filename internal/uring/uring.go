package uring

import "errors"

// ErrUnavailable is wrapped by New's error when io_uring cannot be used
// here: not Linux, a kernel without io_uring or with it disabled
// (kernel.io_uring_disabled), or a seccomp policy refusing its calls.
var ErrUnavailable = errors.New("io_uring unavailable")

// ErrClosed is returned by a flush on, or interrupted by, a closed Ring.
var ErrClosed = errors.New("io_uring ring closed")
