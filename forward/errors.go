package forward

import (
	"errors"

	"github.com/imedge/imedge/forward/internal/store"
)

// ErrFull is returned (wrapped) by [Outbox.Append] when storing the event
// would take its destination past its share of the outbox's event or byte
// limit. Nothing is stored; the caller must not acknowledge the event (the
// receiver answers 503). Other destinations keep accepting.
var ErrFull = errors.New("forward: outbox full")

// ErrLocked is returned (wrapped) by [OpenOutbox] when another process holds
// the outbox file: a running server or an operator command.
var ErrLocked = store.ErrLocked

// ErrNewerFormat is returned (wrapped, with both format numbers) by
// [OpenOutbox] when the outbox was written by a newer imedge: upgrade, or
// drain the outbox with the newer version and set it aside. The format is
// recorded in the store itself, so an emptied outbox is refused too.
var ErrNewerFormat = store.ErrNewerFormat

// ErrClosed is returned by the methods of an [Outbox] after Close.
var ErrClosed = errors.New("forward: outbox closed")

// ErrNotFound is returned (wrapped) when no outbox entry matches a reference.
var ErrNotFound = store.ErrNotFound

// ErrUnknownDestination is returned (wrapped, with the name) by
// [Outbox.Append] and [NewDispatcher] for a destination the outbox was not
// opened with.
var ErrUnknownDestination = errors.New("forward: destination not configured")

// ErrInvalidOptions is returned (wrapped, with the reason) by the
// constructors when their options cannot work.
var ErrInvalidOptions = errors.New("forward: invalid options")

// ErrRunning is returned by [Dispatcher.Run] when the dispatcher, or
// another of its destination, is already running.
var ErrRunning = errors.New("forward: dispatcher already running")

// ErrNotWritable is returned (wrapped, with the cause) by
// [Outbox.Writable] when an event could not be stored now.
var ErrNotWritable = errors.New("forward: outbox not writable")
