package sandbox

import "errors"

// ErrRelativePath is wrapped by Apply's error for a path that is not
// absolute after cleaning (Apply makes relative paths absolute first; this
// only happens when the working directory is unknown).
var ErrRelativePath = errors.New("sandbox: path is not absolute")
