package forward

import "time"

// Defaults of imedge's delivery settings, defined here once: the zero
// values of DispatcherOptions and ClientOptions mean them, and imedge
// serve's flags, its example config and its reference docs take them from
// these constants (the outbox's own are beside OutboxOptions).
const (
	// DefaultTimeout bounds one delivery attempt (--forward-timeout).
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency is the number of deliveries in flight per
	// destination, and of keep-alive connections to it (--forward-concurrency).
	DefaultConcurrency = 16
	// DefaultBatchWait is how long a batch that is not full waits for more
	// due events (--forward-batch-wait).
	DefaultBatchWait = 5 * time.Millisecond
	// DefaultBackoffBase is the first retry's backoff ceiling (--retry-base).
	DefaultBackoffBase = 500 * time.Millisecond
	// DefaultBackoffMax caps the backoff and any Retry-After (--retry-max).
	DefaultBackoffMax = 5 * time.Minute
	// DefaultMaxAge dead-letters an event not delivered after this long
	// (--max-age).
	DefaultMaxAge = 72 * time.Hour
)
