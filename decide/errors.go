package decide

import "errors"

// ErrInvalidOptions is returned (wrapped, with the reason) by [New],
// [ParseTarget] and [ParseFallback] for settings that cannot work.
var ErrInvalidOptions = errors.New("decide: invalid options")

// ErrTimeoutTooLong reports a Timeout above [MaxTimeout]: the answer would
// reach IM after its 2-second budget, where IM applies its own policy.
var ErrTimeoutTooLong = errors.New("decide: timeout above the largest IM's budget allows")
