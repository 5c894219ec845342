package receiver

import "errors"

// ErrNoAppID reports Options without an AppID.
var ErrNoAppID = errors.New("receiver: AppID is required")

// ErrBadAppID reports an AppID that is not a decimal number.
var ErrBadAppID = errors.New("receiver: AppID must be a decimal number")

// ErrNoSink reports Options without a Sink.
var ErrNoSink = errors.New("receiver: Sink is required")

// ErrBadPath reports a Path that does not start with "/".
var ErrBadPath = errors.New("receiver: Path must start with /")

// ErrNegativeLimit reports a negative MaxBody, MaxAccountBytes or SignWindow.
var ErrNegativeLimit = errors.New("receiver: limits must not be negative")

// ErrStateUnavailable is returned (wrapped) by a [Seen] or a [LimiterWithErr]
// whose shared state (Redis) is unreachable while configured to fail
// closed. The receiver answers 503 with reason redis_unavailable, so the
// sender retries; it is never a silent drop.
var ErrStateUnavailable = errors.New("receiver: shared state unavailable")

// ErrBadMode reports an unknown Options.UnknownCommands or
// Options.Validation value.
var ErrBadMode = errors.New("receiver: unknown policy or validation mode")
