package dedupe

import "errors"

// ErrBadSize is returned (wrapped) by [New] when [Options.Size] is negative
// or above 2³⁰.
var ErrBadSize = errors.New("dedupe: size out of range")

// ErrBadTTL is returned (wrapped) by [New] when [Options.TTL] is negative.
var ErrBadTTL = errors.New("dedupe: ttl must not be negative")

// ErrInFlightFailed is returned (wrapped) by [Set.Claim] when it waited for
// another holder of the same key and that holder settled it as not accepted.
// The caller should answer so that the sender retries (the key is free again).
var ErrInFlightFailed = errors.New("dedupe: in-flight copy was not accepted")
