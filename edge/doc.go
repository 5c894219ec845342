// Package edge holds imedge's connection-level defences: everything that
// happens to a TCP connection before net/http sees it.
//
// A [Listener] wraps a plain TCP listener and runs each accepted connection
// through a fixed chain, on the connection's own goroutine and under one
// handshake deadline:
//
//	accept ─► global slot ─► [Options.Stages: e.g. PROXY protocol v2] ─►
//	          source allow-list ─► per-address cap ─► TLS handshake ─► Accept()
//
// The source allow-list is Options.AllowSources, fixed, together with
// Options.AllowSet, a [SourceSet] that may change while the listener runs
// (IM's egress list); neither check takes a lock.
//
// The accept loop only accepts and takes a slot: a slow or silent client can
// never block it, and a refused connection is closed and counted, never
// returned as an error from Accept. The TLS handshake runs with its own
// deadline (Options.HandshakeTimeout), separate from net/http's header, read
// and write timeouts; Accept hands over connections whose handshake is
// already complete, so net/http's implicit handshake deadline never applies:
// a *tls.Conn when the client negotiated HTTP/2 (net/http's HTTP/2 server
// takes it by ALPN), otherwise a view of the TLS connection's plaintext
// with a ConnectionState method, which net/http serves as a plain HTTP/1
// connection while setting Request.TLS from it. Through that view the
// package sees what the HTTP/1 server reads and writes, and closes it with
// a lingering close.
//
// Lingering close: an HTTP/1 server that answers a request without reading
// its body (a refusal: the body is over the cap, or unauthenticated) and then
// closes the connection would, closing a socket with unread input, send a
// TCP reset, which can destroy its answer in flight or make a client still
// writing its body fail before it reads the answer. So when an HTTP/1
// connection is closed at the end of a request it answered, the view first
// ends its write side (TLS close_notify and a TCP FIN: the answer is
// complete), then reads and drops what the client still sends, undecrypted,
// until the client's end of stream, at most Options.LingerBytes (4 MiB) and
// Options.LingerTime (5 s), and never past the read deadline the HTTP server
// last set for the request (its own ReadTimeout), whichever comes first;
// only then does it close. It runs on the goroutine closing the connection
// and takes no goroutine of its own; the connection keeps its slot (so
// Options.MaxConns bounds lingering connections too), and a second Close
// (http.Server.Close) ends a linger at once. Connections the client closed,
// whose read failed or timed out, or that were idle, close at once.
// The number of connections, and so of goroutines, is bounded by
// Options.MaxConns: when it is reached the oldest connection still in its
// handshake is closed to make room, and when every slot holds an established
// connection new ones wait in the kernel's accept queue.
//
// [ConnContext], [ConnState] and [Observe] let an http.Server report the
// refusals net/http makes on its own (a malformed request, a header block
// over MaxHeaderBytes, an unknown transfer coding or expectation, headers
// not complete within ReadHeaderTimeout) to the audit log, which it
// otherwise never sees, with the status it answered.
//
// Every refusal writes one record to the audit log (sampled there). The
// package owns no TLS material (tlsconf does) and no HTTP semantics
// (receiver does).
package edge
