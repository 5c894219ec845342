// Package receiver is imedge's HTTP side: the [http.Handler] that receives
// Tencent Cloud IM webhook callbacks (today only Sns.CallbackFriendDelete),
// checks them against the protocol, and hands each accepted event to a
// [Sink].
//
// A request passes, outermost first: panic recovery, method, path, client
// identity, query (SdkAppid, CallbackCommand, contenttype, ClientIP,
// OptPlatform, token signature), per-ClientIP rate limit, body cap, body
// validation in one pass over the bytes, de-duplication, and the Sink. Every
// refusal is answered with the JSON reply IM expects and leaves exactly one
// audit record; nothing that was received is echoed back.
//
// The package owns HTTP semantics only. It does not own TLS: the peer
// certificate was verified by package tlsconf before the request exists, and
// the handler reads it from r.TLS. It does not own storage or delivery (the
// Sink does), nor the de-duplication set (the [Seen] interface is implemented
// by package dedupe and wired in by cmd/imedge).
package receiver
