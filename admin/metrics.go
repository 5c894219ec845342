package admin

import (
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imedge/imedge/audit"
)

// collector turns the components' Stats snapshots into metrics at scrape
// time. Counters come straight from the components' own monotonic counters,
// so a scrape never misses an increment and the callback path never touches
// Prometheus.
type collector struct {
	s *Server
	d descs
}

// descs are the metric descriptions, built once per collector.
type descs struct {
	buildInfo, ready, draining *prometheus.Desc

	requests, inProgress, rejected, handshakeFailures, auditRecords, auditWritten, auditSuppressed *prometheus.Desc

	limiterKeys, limiterEvictions, limiterLimited, limiterExempt *prometheus.Desc

	redisUp, redisFallbacks, redisRefused, redisErrors *prometheus.Desc

	dedupeKeys, dedupeInFlight, dedupeHits, dedupeEvictions *prometheus.Desc

	outboxPending, outboxPendingBytes, outboxDead, outboxDeadBytes, outboxOldestAge, outboxMaxEvents, outboxMaxBytes *prometheus.Desc
	outboxRetained, outboxRetainedBytes, outboxAbsorbed, outboxStoreFailing                                          *prometheus.Desc

	deliveryAttempts, deliverySuccesses, deliveryFailures, deliveryDead, deliveryAbandoned, deliveryInFlight, deliveryPaused *prometheus.Desc

	certExpiry, crlNextUpdate, reloads, lastReloadOK, loadedAt *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("imedge_"+name, help, labels, nil)
	}
	return descs{
		buildInfo: d("build_info", "Always 1; labels carry the imedge version and the Go version.", "version", "goversion"),
		ready:     d("ready", "1 when /readyz answers 200 (every readiness check passes: TLS material loaded, outbox writable, not draining, IM's egress list held with --im-egress), else 0."),
		draining:  d("draining", "1 once SIGTERM or SIGINT started the drain, else 0."),

		requests:          d("requests_total", "Callbacks answered, by outcome: accepted (stored in the outbox), duplicate, empty (PairList empty) or rejected.", "outcome"),
		inProgress:        d("requests_in_progress", "Callbacks being read, checked or answered right now (handler entered, reply not yet finished)."),
		rejected:          d("requests_rejected_total", "Callbacks refused at the HTTP level, by audit reason code.", "reason"),
		handshakeFailures: d("tls_handshake_failures_total", "TLS handshakes refused, by audit reason code (counted before audit sampling).", "reason"),
		auditRecords:      d("audit_records_total", "Records passed to the audit log, by reason code, counted before sampling.", "reason"),
		auditWritten:      d("audit_written_total", "Audit records written to the audit log."),
		auditSuppressed:   d("audit_suppressed_total", "Audit records left out by sampling (reported in summary lines)."),

		limiterKeys:      d("ratelimit_keys", "ClientIP buckets held by the rate limiter."),
		limiterEvictions: d("ratelimit_evictions_total", "ClientIP buckets evicted from the rate limiter's table (steady growth: raise --rate-max-keys)."),
		limiterLimited:   d("ratelimit_limited_total", "Callbacks refused by the rate limiter."),
		limiterExempt:    d("ratelimit_exempt_total", "Callbacks from exempt ClientIPs that bypassed the limit."),
		redisUp:          d("redis_up", "1 when the shared state on Redis (--redis-url) answers, 0 while the --redis-policy applies."),
		redisFallbacks:   d("redis_fallbacks_total", "Dedupe and rate-limit answers given by local per-instance state because Redis was unavailable (fail-open)."),
		redisRefused:     d("redis_refused_total", "Dedupe and rate-limit checks refused because Redis was unavailable (fail-closed; callbacks answered 503 redis_unavailable)."),
		redisErrors:      d("redis_errors_total", "Redis operations that failed (time-out, connection error); each marks Redis down until the next successful ping."),

		dedupeKeys:      d("dedupe_keys", "Event ids remembered by the de-duplication set."),
		dedupeInFlight:  d("dedupe_in_flight", "Event ids claimed by a request and not yet settled."),
		dedupeHits:      d("dedupe_hits_total", "Callbacks recognised as duplicates."),
		dedupeEvictions: d("dedupe_evictions_total", "Event ids pushed out by --dedupe-size before their window ended (should stay 0)."),

		outboxPending:       d("outbox_pending_events", "Events stored and not yet delivered, by destination (a --route pattern, or default for --forward-url).", "destination"),
		outboxPendingBytes:  d("outbox_pending_bytes", "Stored size of the pending events, by destination.", "destination"),
		outboxDead:          d("outbox_dead_letters", "Events in the dead-letter list, by destination.", "destination"),
		outboxDeadBytes:     d("outbox_dead_letter_bytes", "Stored size of the dead letters, by destination.", "destination"),
		outboxRetained:      d("outbox_retained_events", "Delivered events kept for replay (--retain-delivered), by destination; dropped first when room is needed.", "destination"),
		outboxRetainedBytes: d("outbox_retained_bytes", "Stored size of the retained events, by destination.", "destination"),
		outboxOldestAge:     d("outbox_oldest_pending_age_seconds", "Age of the oldest pending event, by destination; 0 when none is pending.", "destination"),
		outboxMaxEvents:     d("outbox_max_events", "The destination's share of the outbox event limit (pending plus dead letters); a full share refuses only its own commands (503 outbox_full).", "destination"),
		outboxMaxBytes:      d("outbox_max_bytes", "The destination's share of the outbox byte limit (pending plus dead letters).", "destination"),
		outboxAbsorbed:      d("outbox_absorbed_total", "Events delivered before the outbox stored them in bbolt (only the journal held them)."),
		outboxStoreFailing:  d("outbox_store_failing", "1 while journaled events cannot be stored in bbolt (callbacks are refused with 503 outbox_error)."),

		deliveryAttempts:  d("delivery_attempts_total", "Delivery attempts started, by destination (a request may carry a batch).", "destination"),
		deliverySuccesses: d("delivery_successes_total", "Delivery attempts answered 2xx, by destination.", "destination"),
		deliveryFailures:  d("delivery_failures_total", "Delivery attempts that failed (retried or dead-lettered), by destination.", "destination"),
		deliveryDead:      d("delivery_dead_lettered_total", "Events moved to the dead-letter list, by destination.", "destination"),
		deliveryAbandoned: d("delivery_abandoned_total", "Delivery attempts cut short by a shutdown; their events stay pending.", "destination"),
		deliveryInFlight:  d("delivery_in_flight", "Delivery attempts in progress, by destination.", "destination"),
		deliveryPaused:    d("delivery_paused", "1 while a destination's URL gives no answer at all (connection refused, timeout) and new attempts pause.", "destination"),

		certExpiry:    d("certificate_expiry_seconds", "Seconds until the certificate's NotAfter (negative once expired): the served certificate (role server) and each client CA (role client_ca).", "role", "subject", "sha256"),
		crlNextUpdate: d("crl_next_update_seconds", "Seconds until a client CRL's NextUpdate (negative once stale).", "issuer", "file"),
		reloads:       d("tls_reloads_total", "Reloads of certificates, CA bundle and CRLs, by result (success: new material served; failure: previous material kept).", "result"),
		lastReloadOK:  d("tls_last_reload_success", "1 when the last reload succeeded, 0 when it failed; absent before the first reload."),
		loadedAt:      d("tls_loaded_timestamp_seconds", "Unix time the TLS material in use was read."),
	}
}

// Describe implements prometheus.Collector. It lists every description,
// including those of metrics a given scrape may leave out.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, desc := range []*prometheus.Desc{
		d.buildInfo, d.ready, d.draining,
		d.requests, d.inProgress, d.rejected, d.handshakeFailures, d.auditRecords, d.auditWritten, d.auditSuppressed,
		d.limiterKeys, d.limiterEvictions, d.limiterLimited, d.limiterExempt,
		d.redisUp, d.redisFallbacks, d.redisRefused, d.redisErrors,
		d.dedupeKeys, d.dedupeInFlight, d.dedupeHits, d.dedupeEvictions,
		d.outboxPending, d.outboxPendingBytes, d.outboxDead, d.outboxDeadBytes, d.outboxOldestAge, d.outboxMaxEvents, d.outboxMaxBytes,
		d.outboxRetained, d.outboxRetainedBytes, d.outboxAbsorbed, d.outboxStoreFailing,
		d.deliveryAttempts, d.deliverySuccesses, d.deliveryFailures, d.deliveryDead, d.deliveryAbandoned, d.deliveryInFlight, d.deliveryPaused,
		d.certExpiry, d.crlNextUpdate, d.reloads, d.lastReloadOK, d.loadedAt,
	} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.s, &c.d
	now := s.o.Now()
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}

	gauge(d.buildInfo, 1, s.o.Version, runtime.Version())
	gauge(d.ready, b2f(s.readiness().Ready))
	gauge(d.draining, b2f(s.draining.Load()))

	// Callbacks. Every reason is exported from the start (at 0), so rate()
	// and alerts work before the first refusal.
	if s.o.Receiver != nil {
		r := s.o.Receiver.Stats()
		var rejected uint64
		for _, reason := range audit.Reasons() {
			if isHandshake(reason) {
				continue
			}
			counter(d.rejected, r.Rejected[reason], string(reason))
			rejected += r.Rejected[reason]
		}
		for reason, n := range r.Rejected { // reasons added after this list was written
			if !known(reason) {
				counter(d.rejected, n, string(reason))
				rejected += n
			}
		}
		counter(d.requests, r.Accepted, "accepted")
		counter(d.requests, r.Duplicates, "duplicate")
		counter(d.requests, r.Empty, "empty")
		counter(d.requests, rejected, "rejected")
		gauge(d.inProgress, float64(r.InProgress))
	}
	if s.o.Audit != nil {
		counts := s.o.Audit.Counts()
		for _, reason := range audit.Reasons() {
			if isHandshake(reason) {
				counter(d.handshakeFailures, counts[reason], string(reason))
			}
			counter(d.auditRecords, counts[reason], string(reason))
		}
		for reason, n := range counts { // reasons added after this list was written
			if !known(reason) {
				counter(d.auditRecords, n, string(reason))
			}
		}
		w, sup := s.o.Audit.Stats()
		counter(d.auditWritten, w)
		counter(d.auditSuppressed, sup)
	}
	if s.o.Limiter != nil {
		l := s.o.Limiter.Stats()
		gauge(d.limiterKeys, float64(l.Keys))
		counter(d.limiterEvictions, l.Evictions)
		counter(d.limiterLimited, l.Limited)
		counter(d.limiterExempt, l.Exempt)
	}
	if s.o.Redis != nil {
		r := s.o.Redis()
		gauge(d.redisUp, b2f(r.Up))
		counter(d.redisFallbacks, r.Fallbacks)
		counter(d.redisRefused, r.Refused)
		counter(d.redisErrors, r.Errors)
	}
	if s.o.Dedupe != nil {
		st := s.o.Dedupe.Stats()
		gauge(d.dedupeKeys, float64(st.Len))
		gauge(d.dedupeInFlight, float64(st.InFlight))
		counter(d.dedupeHits, st.Hits)
		counter(d.dedupeEvictions, st.Evictions)
	}
	if ob, err := s.o.Outbox.Stats(); err == nil {
		for _, ds := range ob.Destinations {
			gauge(d.outboxPending, float64(ds.Pending), ds.Name)
			gauge(d.outboxPendingBytes, float64(ds.PendingBytes), ds.Name)
			gauge(d.outboxDead, float64(ds.Dead), ds.Name)
			gauge(d.outboxDeadBytes, float64(ds.DeadBytes), ds.Name)
			gauge(d.outboxRetained, float64(ds.Retained), ds.Name)
			gauge(d.outboxRetainedBytes, float64(ds.RetainedBytes), ds.Name)
			age := 0.0
			if !ds.OldestPending.IsZero() {
				age = max(now.Sub(ds.OldestPending).Seconds(), 0)
			}
			gauge(d.outboxOldestAge, age, ds.Name)
			gauge(d.outboxMaxEvents, float64(ds.MaxEvents), ds.Name)
			gauge(d.outboxMaxBytes, float64(ds.MaxBytes), ds.Name)
		}
		counter(d.outboxAbsorbed, ob.Absorbed)
		gauge(d.outboxStoreFailing, b2f(ob.StoreFailing))
	}
	for _, disp := range s.o.Dispatchers {
		ds := disp.Stats()
		counter(d.deliveryAttempts, ds.Attempts, ds.Destination)
		counter(d.deliverySuccesses, ds.Successes, ds.Destination)
		counter(d.deliveryFailures, ds.Failures, ds.Destination)
		counter(d.deliveryDead, ds.DeadLettered, ds.Destination)
		counter(d.deliveryAbandoned, ds.Abandoned, ds.Destination)
		gauge(d.deliveryInFlight, float64(ds.InFlight), ds.Destination)
		paused := 0.0
		if !ds.PausedUntil.IsZero() && ds.PausedUntil.After(now) {
			paused = 1
		}
		gauge(d.deliveryPaused, paused, ds.Destination)
	}

	ts := s.o.TLS.Status()
	if ts.ServerCert.SHA256 != "" {
		gauge(d.certExpiry, ts.ServerCert.NotAfter.Sub(now).Seconds(), "server", ts.ServerCert.Subject, ts.ServerCert.SHA256)
	}
	for _, ca := range ts.ClientCAs {
		gauge(d.certExpiry, ca.NotAfter.Sub(now).Seconds(), "client_ca", ca.Subject, ca.SHA256)
	}
	for _, crl := range ts.CRLs {
		if !crl.NextUpdate.IsZero() {
			gauge(d.crlNextUpdate, crl.NextUpdate.Sub(now).Seconds(), crl.Issuer, crl.File)
		}
	}
	counter(d.reloads, ts.ReloadSuccesses, "success")
	counter(d.reloads, ts.ReloadFailures, "failure")
	if !ts.LastReload.At.IsZero() {
		gauge(d.lastReloadOK, b2f(ts.LastReload.OK))
	}
	if !ts.LoadedAt.IsZero() {
		gauge(d.loadedAt, float64(ts.LoadedAt.UnixNano())/1e9)
	}
}

// isHandshake reports whether reason is a TLS handshake refusal; audit names
// all of them tls_*.
func isHandshake(r audit.Reason) bool { return strings.HasPrefix(string(r), "tls_") }

func known(r audit.Reason) bool {
	for _, k := range audit.Reasons() {
		if k == r {
			return true
		}
	}
	return false
}
