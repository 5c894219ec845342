// Package admin serves imedge's operator endpoints on a listener of their
// own: /healthz (the process answers), /readyz (TLS material loaded, outbox
// writable, not draining), /metrics (Prometheus text format, from a registry
// of its own, never the global default one), /status (a JSON snapshot for
// people and rotation scripts), the outbox operations under /outbox/
// (counts, listing, one event with its attempt history, replay, retry,
// purge; authenticated clients only, every change audited: [OutboxAPI])
// and, behind a switch, net/http/pprof.
//
// It also holds the other side: [Client] calls a running imedge's admin
// listener (imedge outbox, imedge certs status), and [Local] runs the
// outbox operations on an outbox opened in the calling process (imedge
// outbox on a stopped instance), with the same answers.
//
// It owns every Prometheus dependency of imedge: the other packages keep
// plain counters behind their Stats methods, and the collectors here read
// them at scrape time, so nothing on the callback path knows about
// Prometheus. The only per-request work it adds is [Server.Instrument]'s
// latency and TLS counters.
//
// It does not own the listener's address or its TLS configuration (the
// caller passes a ready net.Listener to [Server.Serve]), the local
// credential's file (the caller writes it and passes the secret), nor any
// of the components it reports on.
package admin
