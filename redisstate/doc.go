// Package redisstate keeps the receiver's de-duplication keys and
// per-ClientIP rate-limit buckets in Redis, so that several imedge
// instances behind one layer-4 balancer share them: a retry of a callback
// that lands on another instance is recognised as a duplicate, and a
// ClientIP's budget is counted once across the fleet.
//
// A [Client] owns the connection to Redis and a health-check loop. Its
// [Client.NewDedupe] returns a [Dedupe] (a receiver.Seen) whose
// check-and-mark is one atomic SET NX PX, and [Client.NewLimiter] returns a
// [Limiter] (a receiver.LimiterWithErr) running GCRA in one Lua script.
//
// # When Redis is unreachable
//
// An operation that fails (time-out, connection refused) marks Redis down;
// the health loop pings it every [Options.HealthInterval] and marks it up
// again on the first answer, after which the shared mode resumes. While it
// is down, the [Policy] decides:
//
//   - [FailOpen] (the default): the caller's local state (the in-process
//     dedupe.Set and receiver.ClientLimiter) answers instead. Each such
//     answer is counted in [Stats.Fallbacks]; the switch to and from local
//     state is logged at Warn and Info. No audit record is written for it,
//     because the callback is accepted and the audit stream holds one
//     record per refusal.
//   - [FailClosed]: Claim and AllowContext return an error wrapping
//     receiver.ErrStateUnavailable, which the receiver answers 503 with
//     reason redis_unavailable (audited), so IM retries later.
//
// Either way no callback is silently dropped.
package redisstate
