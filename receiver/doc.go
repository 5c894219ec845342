// Package receiver is imedge's HTTP side: the [http.Handler] that receives
// Tencent Cloud IM webhook callbacks, checks each against the protocol and
// its command's entry in the command catalog (package catalog), and hands
// each accepted event to a [Sink].
//
// A request passes, outermost first: panic recovery, method, path, client
// identity, query (SdkAppid, CallbackCommand, contenttype, ClientIP,
// OptPlatform, token signature), per-ClientIP rate limit, body cap, body
// validation in one pass over the bytes, de-duplication, and the Sink. Every
// refusal is answered with the JSON reply IM expects and leaves exactly one
// audit record; nothing that was received is echoed back.
//
// # Which commands are served
//
// By default every after-callback of the catalog (49 commands): IM ignores
// the reply, so the event is stored and answered OK. [Options.Commands]
// narrows that to patterns. The before-callbacks and
// Chatbot.OnC2CSignalMessage, whose reply IM acts on, are refused
// unsupported_command unless a [Decider] is configured: for them OK means
// allow, so they are never stored and answered OK.
//
// With a Decider they are served by default, and refusing one at the edge
// is not a decision: a 429, 503 or 400 is a callback failure to IM, which
// then lets the message through under its console policy. So every refusal
// of such a command other than an authentication failure (no client
// certificate, a bad, stale or missing Sign, another SdkAppid) is answered
// HTTP 200 with the Decider's fallback for it and audited with its own
// reason (status 200, the detail naming the fallback): over
// [Options.DecideLimiter] (the per-ClientIP [Options.Limiter] does not
// apply to them), a body that fails validation or is over the cap, shared
// state unavailable, an internal error. A command outside the
// catalog is forwarded after generic checks (a JSON object whose top-level
// CallbackCommand, if any, equals the query's), counted and logged, or
// refused, as [Options.UnknownCommands] says.
//
// # Body validation
//
// The catalog entry is compiled once into rules the scanner follows in one
// pass, without reflection and without allocating per field. A body that
// breaks the entry is refused 400: bad_pairlist (PairList missing or
// malformed), bad_account (an account id empty, too long, not UTF-8, not a
// string), bad_field (any other checked field; the detail names it), and
// command_mismatch and bad_json as before. [Options.Validation] warn
// forwards a body that breaks only its entry, counted and logged. An empty
// PairList (Sns.CallbackFriendAdd, FriendDelete, BlackListAdd,
// BlackListDelete) carries no relationship change: it is answered OK and
// not forwarded.
//
// # Callbacks without a ClientIP
//
// Push.*, ContentCallback.* and Alert.* callbacks carry no ClientIP: IM
// triggers them itself (push results, moderation results, its own limit
// alerts), not a client. They are exempt from the per-ClientIP limit rather
// than sharing a per-command or per-app bucket: the limit exists to stop
// one client's device from flooding the outbox, and here there is no such
// client; IM already bounds Push at 1000 callbacks a second and re-sends
// the ones it holds back, while a 429 on a moderation result or an alert
// would lose it, since IM does not retry those. They remain bounded by
// authentication, the body cap and the outbox limits. A ClientIP that such
// a callback does carry must be an address and is limited like any other.
//
// The package owns HTTP semantics only. It does not own TLS: the peer
// certificate was verified by package tlsconf before the request exists, and
// the handler reads it from r.TLS. It does not own storage or delivery (the
// Sink does), the decision path (the Decider does), the command table
// (package catalog), nor the de-duplication set (the [Seen] interface is
// implemented by package dedupe and wired in by cmd/imedge).
package receiver
