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
// and write timeouts; Accept hands net/http a *tls.Conn whose handshake is
// already complete, so net/http's implicit handshake deadline never applies.
// The number of connections, and so of goroutines, is bounded by
// Options.MaxConns: when it is reached the oldest connection still in its
// handshake is closed to make room, and when every slot holds an established
// connection new ones wait in the kernel's accept queue.
//
// [ConnContext], [ConnState] and [Observe] let an http.Server report the
// refusals net/http makes on its own (a malformed request, a header block
// over MaxHeaderBytes, headers not complete within ReadHeaderTimeout) to the
// audit log, which it otherwise never sees; [Refused] does the same for
// another HTTP/1.1 server (package h1) that reports its refusals itself.
//
// Every refusal writes one record to the audit log (sampled there). The
// package owns no TLS material (tlsconf does) and no HTTP semantics
// (receiver does).
package edge
