// Package h1 is imedge's own HTTP/1.1 server, an alternative to net/http's
// for the edge listener's connections (imedge serve --http1 fast).
//
// It exists for speed: net/http's HTTP/1 server starts a goroutine per
// request to watch the connection while the handler runs and builds its
// response through several layers of buffering. For a short callback
// answered by a small JSON reply that overhead is a fifth of the
// receiver's CPU. This server reads one request at a time on the
// connection's goroutine, hands the handler a [*http.Request], buffers the
// handler's (small) reply and writes status line, headers and body with
// one write.
//
// It is also stricter than net/http, on purpose: it is an edge parser.
// Only origin-form targets ("/path?query"), HTTP/1.1 and HTTP/1.0, token
// methods and header names, and header values without control characters
// are accepted; obs-fold, a request with both Content-Length and
// Transfer-Encoding, a Transfer-Encoding other than chunked, differing
// Content-Length values and a missing or repeated Host are refused with
// 400 (501 for an unknown transfer coding, 505 for another HTTP version,
// 417 for an Expect other than 100-continue, 431 for a header block over
// MaxHeaderBytes). A chunked body's trailer section is checked the same
// way, within 4 KiB (net/http's limit), and dropped; a malformed one fails
// the handler's read of the body. Every refusal is reported to
// Server.Refused, so the caller can audit it; the connection is closed
// after the answer.
//
// Answers are never held back by a body: a handler that answers without
// reading the body is answered at once, and only then is an unread rest
// (at most 256 KiB) read and dropped to keep the connection; a handler's
// Connection: close, a larger rest, or a rest that cannot be finished
// closes it instead. A connection closed with input possibly unread
// lingers first: it ends its write side, then reads and drops what the
// client still sends, until the client's end of stream, 4 MiB, 5 s or its
// ReadTimeout, whichever comes first, so that closing with unread input
// does not reset the connection under the answer. As RFC 9112 asks (and
// net/http does), CR and LF bytes right after a POST are ignored.
//
// What it does not do: HTTP/2 (connections that negotiated another
// protocol by ALPN go to Server.Other, e.g. a net/http server through a
// [Handoff]), protocol upgrades, streaming responses (a reply is buffered
// in full, at most [MaxResponseBytes]), cancelling a request's context
// (it is the connection's, from Server.BaseContext and ConnContext: it
// does not end when the client goes away or when the handler returns; a
// handler that starts work outliving it must not rely on that), net/http's
// context values (http.ServerContextKey,
// http.LocalAddrContextKey), and exact timeouts: a read or write deadline
// is moved only when it would change by more than 1/64 of its timeout, so
// a timeout may end up to that much early. A ResponseWriter or request body used after
// its handler returned fails (http.ErrBodyReadAfterClose) or writes into
// nothing; it never touches the next request.
package h1
