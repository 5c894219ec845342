package store

import (
	"errors"

	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned (wrapped) by [Open] when another process holds the
// store file.
var ErrLocked = errors.New("forward: outbox in use by a running imedge; stop it first")

// ErrNewerFormat is returned (wrapped, with both versions) by [Open] for a
// store written by a newer imedge, and by the decoders for a record or
// state of a newer version.
var ErrNewerFormat = errors.New("forward: newer outbox format")

// ErrCorrupt is returned (wrapped) for a record, state or value that does
// not parse.
var ErrCorrupt = errors.New("forward: corrupt outbox record")

// ErrNotFound is returned (wrapped) when no stored event matches.
var ErrNotFound = errors.New("forward: no such entry")

// ErrReadOnly is returned (wrapped) by writes to a store opened read-only:
// bbolt's own error, so that either matches.
var ErrReadOnly = berrors.ErrDatabaseReadOnly
