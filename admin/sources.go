package admin

import (
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

// The interfaces below are what the admin server reads from the running
// components. Each is implemented by the component's own type, named in its
// comment; all methods must be safe for concurrent use.

// TLSSource reports the TLS material in use. *tlsconf.Source implements it.
type TLSSource interface {
	Status() tlsconf.Status
}

// Outbox reports the durable outbox's contents and whether it can store
// events now. *forward.Outbox implements it.
type Outbox interface {
	Stats() (forward.Stats, error)
	Writable() error
}

// Dispatcher reports delivery counters. *forward.Dispatcher implements it.
type Dispatcher interface {
	Stats() forward.DispatcherStats
}

// Receiver reports the callback handler's counters. *receiver.Handler
// implements it.
type Receiver interface {
	Stats() receiver.Stats
}

// Dedupe reports the seen-set's counters. *dedupe.Set implements it.
type Dedupe interface {
	Stats() dedupe.Stats
}

// Limiter reports the per-ClientIP rate limiter's counters.
// *receiver.ClientLimiter implements it.
type Limiter interface {
	Stats() receiver.LimiterStats
}

// RedisStats is the state of the shared state on Redis (--redis-url), read
// through [Options.Redis]: whether Redis answers, and how many answers came
// from the local fallback (fail-open) or were refused (fail-closed).
type RedisStats struct {
	Up        bool
	Fallbacks uint64
	Refused   uint64
	Errors    uint64
}

// Audit reports the audit log's counters. *audit.Logger implements it.
type Audit interface {
	Stats() (written, suppressed uint64)
	Counts() map[audit.Reason]uint64
}
