package redisstate

import "errors"

// ErrPasswordInURL is returned (wrapped) by [New] when the Redis URL carries
// a password: passwords come from [Options.Password] (a file or the
// environment), never from a value that ends up in process listings or
// logs.
var ErrPasswordInURL = errors.New("redisstate: the Redis URL must not contain a password")

// ErrBadOptions is returned (wrapped) by [New], [Client.NewDedupe] and
// [Client.NewLimiter] when an option is out of range.
var ErrBadOptions = errors.New("redisstate: invalid options")

// ErrInFlightTimeout is returned (wrapped) by [Dedupe.Claim] when another
// instance holds the key and did not settle it within the wait bound. The
// receiver answers 503 so that IM retries.
var ErrInFlightTimeout = errors.New("redisstate: in-flight copy on another instance not settled in time")

// ErrInFlightFailed is returned (wrapped) by [Dedupe.Claim] when it waited
// for another holder of the key (on this instance or another) and that
// holder did not accept its copy. The key is free again; the sender retries.
var ErrInFlightFailed = errors.New("redisstate: in-flight copy was not accepted")
