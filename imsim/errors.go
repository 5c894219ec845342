package imsim

import "errors"

// ErrInvalidOptions is returned (wrapped, with the reason) by [Load] and
// [Send] when their options cannot work.
var ErrInvalidOptions = errors.New("imsim: invalid options")

// ErrBadReply is returned (wrapped) by [Send] when the server's answer is
// not an HTTP/1.1 response.
var ErrBadReply = errors.New("imsim: malformed reply")
