package forward

import "errors"

// ErrFull is returned (wrapped) by [Outbox.Append] when storing the event
// would take the outbox past its event or byte limit. Nothing is stored; the
// caller must not acknowledge the event (the receiver answers 503).
var ErrFull = errors.New("forward: outbox full")

// ErrLocked is returned (wrapped) by [OpenOutbox] when another process holds
// the outbox file: a running server or an operator command.
var ErrLocked = errors.New("forward: outbox in use by a running imedge; stop it first")

// ErrClosed is returned by the methods of an [Outbox] after Close.
var ErrClosed = errors.New("forward: outbox closed")

// ErrNotFound is returned (wrapped) when no outbox entry matches a reference.
var ErrNotFound = errors.New("forward: no such entry")

// ErrInvalidOptions is returned (wrapped, with the reason) by the
// constructors when their options cannot work.
var ErrInvalidOptions = errors.New("forward: invalid options")

// ErrRunning is returned by [Dispatcher.Run] when the dispatcher is already
// running.
var ErrRunning = errors.New("forward: dispatcher already running")

// ErrNotWritable is returned (wrapped, with the cause) by
// [Outbox.Writable] when an event could not be stored now.
var ErrNotWritable = errors.New("forward: outbox not writable")
