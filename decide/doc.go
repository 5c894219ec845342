// Package decide owns imedge's synchronous decision path: the answer to
// the twelve IM callbacks whose reply IM acts on (the Before commands of
// the catalog and Chatbot.OnC2CSignalMessage), where OK means "allow" and
// the answer is the product. [Service] implements receiver.Decider.
//
// # A decision
//
// For a callback the receiver has authenticated and validated, the
// Service POSTs the same body to the command's decision service (the first
// [Target] whose pattern matches: --decide PATTERN=URL), with IM's query
// string minus Sign and RequestTime appended to the URL and the headers
// and Standard Webhooks signature of a delivery (package forward), over a
// keep-alive pool of its own per service ([DefaultMaxConns] connections,
// idle ones kept [DefaultIdleTimeout]): HTTP/1.1 written and read on the
// caller's goroutine for an http:// service, net/http (HTTP/2 where
// offered) for an https:// one. The whole call, waiting for a
// connection included, is bounded by [Options.Timeout] ([DefaultTimeout],
// at most [MaxTimeout]). No batching, no outbox: the reply goes back to IM
// in the same request. The reply is checked against the command's reply
// schema (catalog.Command.CheckReply) and only what the schema allows is
// relayed, re-encoded.
//
// # Fallback
//
// When no decision can be had the callback is answered HTTP 200 with the
// command's fallback (catalog.Command.Fallback), allow unless a
// [FallbackRule] (--decide-fallback PATTERN=allow|deny[:CODE]) says deny:
//
//	decide_timeout    no answer within the timeout, or the circuit is open
//	decide_error      connection error, or a status other than 2xx
//	decide_bad_reply  a reply the command's schema refuses, or over MaxReplyBytes
//
// The receiver writes one audit record per fallback (status 200, the
// detail naming the fallback); [Stats] counts them per command and reason.
// The receiver's own refusals of these commands (rate limit, validation,
// shared state, internal error) are answered with the same fallback
// through [Service.Fallback]; authentication failures are not: the caller
// is not IM.
//
// # Circuit breaker
//
// Each decision service has a circuit. A call fails when it ends without a
// 2xx answer (time-out, connection error, any other status); a 2xx answer
// is a success even when its reply is refused (the service is up, and
// answers fast). The rule:
//
//   - Closed: every call goes to the service. BreakerFailures
//     ([DefaultBreakerFailures]) consecutive failures open it; a success
//     resets the count.
//   - Open: every callback for the service is answered with its fallback
//     at once (decide_timeout, "circuit open"), without a call.
//   - Once BreakerCoolDown ([DefaultBreakerCoolDown]) has passed since it
//     opened, the next callback is let through as the one trial call
//     (half-open); while it is in flight every other callback still gets
//     the fallback at once. A trial that succeeds closes the circuit; one
//     that fails opens it again for another cool-down.
//   - Calls that started before the circuit opened finish within their
//     budget; their results do not change its state.
//
// So with a service down, at most one callback per cool-down waits out the
// budget, and answers resume within a cool-down of the service's return.
//
// # Same question, same answer
//
// A decision is remembered for [Options.CacheTTL] (imedge serve passes
// --sign-window, not the dedupe window: a decision can go stale), keyed by
// the event id (SHA-256 of SdkAppid, command and body) with the ClientIP and
// OptPlatform the service also sees. An identical callback within that time
// gets the remembered decision without a call; identical callbacks at the
// same time share one call and all get its answer. Fallbacks are never
// remembered. The cache keeps at most [DefaultCacheEntries] decisions and
// [DefaultCacheBytes] (least recently used first out).
//
// # Observe mode
//
// A Before or Reply command no Target matches is answered with its
// fallback at once, logged once at New (Info) and counted. When
// [Options.Observe] says so (imedge serve: a --route names the command),
// its Decision also asks the receiver to hand the event to the Sink after
// answering, to be stored for that route.
//
// # What it does not own
//
// It does not authenticate, rate-limit or validate requests (package
// receiver), does not deliver nor store events (package forward), and
// does not own the reply schemas (package catalog). It holds no
// package-level state and starts no goroutines.
package decide
