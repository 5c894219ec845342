package admin

import "errors"

// ErrInvalidOptions is returned (wrapped, with the reason) by [New] when its
// options cannot work.
var ErrInvalidOptions = errors.New("admin: invalid options")
