// Package admin serves imedge's operator endpoints on a listener of their
// own: /healthz (the process answers), /readyz (TLS material loaded, outbox
// writable, not draining), /metrics (Prometheus text format, from a registry
// of its own, never the global default one), /status (a JSON snapshot for
// people and rotation scripts) and, behind a switch, net/http/pprof.
//
// It owns every Prometheus dependency of imedge: the other packages keep
// plain counters behind their Stats methods, and the collectors here read
// them at scrape time, so nothing on the callback path knows about
// Prometheus. The only per-request work it adds is [Server.Instrument]'s
// latency and TLS counters.
//
// It does not own the listener's address or its TLS configuration (the
// caller passes a ready net.Listener to [Server.Serve]), nor any of the
// components it reports on.
package admin
