package admin

import (
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/egress"
	"github.com/imedge/imedge/tlsconf"
)

// statusReply is the /status document. Its shape is documented in
// docs/reference.md ("/status"; TestStatusDoc keeps it complete); rotation
// scripts read .tls.server_cert.sha256, so field names only ever get added.
type statusReply struct {
	Version       string           `json:"version"`
	PID           int              `json:"pid,omitempty"`
	StartedAt     time.Time        `json:"started_at"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	Ready         bool             `json:"ready"`
	Draining      bool             `json:"draining"`
	Checks        []check          `json:"checks"`
	TLS           tlsconf.Status   `json:"tls"`
	Outbox        outboxStatus     `json:"outbox"`
	Delivery      []deliveryStatus `json:"delivery,omitempty"` // one per destination
	Callbacks     *callbackStatus  `json:"callbacks,omitempty"`
	Dedupe        *dedupeStatus    `json:"dedupe,omitempty"`
	RateLimiter   *limiterStatus   `json:"rate_limiter"` // null when rate limiting is off
	Audit         *auditStatus     `json:"audit,omitempty"`
	Decide        *decideStatus    `json:"decide,omitempty"`
	// Config is the configuration in force, setting by setting, after
	// SIGHUP reloads; absent when the server does not report it.
	Config map[string]string `json:"config,omitempty"`
	// IMEgress is IM's egress list (--im-egress), with the networks held.
	IMEgress *egressStatus `json:"im_egress,omitempty"`
}

type egressStatus struct {
	egress.Status
	Networks []string `json:"networks"`
}

type outboxStatus struct {
	Error                   string              `json:"error,omitempty"` // Stats failed; the counts are then zero
	Pending                 int                 `json:"pending"`
	PendingBytes            int64               `json:"pending_bytes"`
	DeadLetters             int                 `json:"dead_letters"`
	DeadLetterBytes         int64               `json:"dead_letter_bytes"`
	OldestPending           *time.Time          `json:"oldest_pending"` // null when nothing is pending
	OldestPendingAgeSeconds float64             `json:"oldest_pending_age_seconds"`
	MaxEvents               int                 `json:"max_events"`
	MaxBytes                int64               `json:"max_bytes"`
	Retained                int                 `json:"retained"`
	RetainedBytes           int64               `json:"retained_bytes"`
	Destinations            []destinationStatus `json:"destinations"`
}

type destinationStatus struct {
	Name                    string  `json:"name"`
	Pending                 int     `json:"pending"`
	Dead                    int     `json:"dead_letters"`
	Retained                int     `json:"retained"`
	MaxEvents               int     `json:"max_events"`
	MaxBytes                int64   `json:"max_bytes"`
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
}

type deliveryStatus struct {
	Destination  string     `json:"destination"`
	Attempts     uint64     `json:"attempts"`
	Successes    uint64     `json:"successes"`
	Failures     uint64     `json:"failures"`
	DeadLettered uint64     `json:"dead_lettered"`
	Abandoned    uint64     `json:"abandoned"`
	InFlight     int        `json:"in_flight"`
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
	PausedUntil  *time.Time `json:"paused_until,omitempty"` // set while its URL gives no answer at all
}

type callbackStatus struct {
	Accepted   uint64                  `json:"accepted"`
	Duplicates uint64                  `json:"duplicates"`
	Empty      uint64                  `json:"empty"`
	Rejected   map[audit.Reason]uint64 `json:"rejected"`
}

type dedupeStatus struct {
	Keys      int    `json:"keys"`
	InFlight  int    `json:"in_flight"`
	Hits      uint64 `json:"hits"`
	Evictions uint64 `json:"evictions"`
}

type limiterStatus struct {
	Keys      int    `json:"keys"`
	Evictions uint64 `json:"evictions"`
	Limited   uint64 `json:"limited"`
	Exempt    uint64 `json:"exempt"`
}

type auditStatus struct {
	Written    uint64                  `json:"written"`
	Suppressed uint64                  `json:"suppressed"`
	ByReason   map[audit.Reason]uint64 `json:"by_reason"`
}

func (s *Server) status() statusReply {
	now := s.o.Now()
	rd := s.readiness()
	st := statusReply{
		Version:       s.o.Version,
		PID:           s.o.PID,
		StartedAt:     s.start.UTC(),
		UptimeSeconds: now.Sub(s.start).Seconds(),
		Ready:         rd.Ready,
		Draining:      s.draining.Load(),
		Checks:        rd.Checks,
		TLS:           s.o.TLS.Status(),
		Decide:        s.decideStatus(),
	}
	if ob, err := s.o.Outbox.Stats(); err != nil {
		st.Outbox.Error = err.Error()
	} else {
		st.Outbox = outboxStatus{
			Pending: ob.Pending, PendingBytes: ob.PendingBytes, DeadLetters: ob.Dead, DeadLetterBytes: ob.DeadBytes,
			MaxEvents: ob.MaxEvents, MaxBytes: ob.MaxBytes, Retained: ob.Retained, RetainedBytes: ob.RetainedBytes,
			Destinations: []destinationStatus{},
		}
		for _, d := range ob.Destinations {
			ds := destinationStatus{Name: d.Name, Pending: d.Pending, Dead: d.Dead, Retained: d.Retained,
				MaxEvents: d.MaxEvents, MaxBytes: d.MaxBytes}
			if !d.OldestPending.IsZero() {
				ds.OldestPendingAgeSeconds = max(now.Sub(d.OldestPending).Seconds(), 0)
			}
			st.Outbox.Destinations = append(st.Outbox.Destinations, ds)
		}
		if !ob.OldestPending.IsZero() {
			t := ob.OldestPending.UTC()
			st.Outbox.OldestPending = &t
			st.Outbox.OldestPendingAgeSeconds = max(now.Sub(t).Seconds(), 0)
		}
	}
	for _, disp := range s.o.Dispatchers {
		d := disp.Stats()
		ds := deliveryStatus{
			Destination: d.Destination, Attempts: d.Attempts, Successes: d.Successes, Failures: d.Failures,
			DeadLettered: d.DeadLettered, Abandoned: d.Abandoned, InFlight: d.InFlight, LastError: d.LastError,
		}
		if !d.LastErrorAt.IsZero() {
			t := d.LastErrorAt.UTC()
			ds.LastErrorAt = &t
		}
		if !d.PausedUntil.IsZero() && d.PausedUntil.After(now) {
			t := d.PausedUntil.UTC()
			ds.PausedUntil = &t
		}
		st.Delivery = append(st.Delivery, ds)
	}
	if s.o.Receiver != nil {
		r := s.o.Receiver.Stats()
		st.Callbacks = &callbackStatus{Accepted: r.Accepted, Duplicates: r.Duplicates, Empty: r.Empty, Rejected: r.Rejected}
	}
	if s.o.Dedupe != nil {
		d := s.o.Dedupe.Stats()
		st.Dedupe = &dedupeStatus{Keys: d.Len, InFlight: d.InFlight, Hits: d.Hits, Evictions: d.Evictions}
	}
	if s.o.Limiter != nil {
		l := s.o.Limiter.Stats()
		st.RateLimiter = &limiterStatus{Keys: l.Keys, Evictions: l.Evictions, Limited: l.Limited, Exempt: l.Exempt}
	}
	if s.o.Egress != nil {
		es := s.o.Egress.Status()
		st.IMEgress = &egressStatus{Status: es, Networks: []string{}}
		if n, ok := s.o.Egress.(interface{ Set() *egress.Set }); ok {
			for _, p := range n.Set().Prefixes() {
				st.IMEgress.Networks = append(st.IMEgress.Networks, p.String())
			}
		}
	}
	if s.o.Settings != nil {
		st.Config = s.o.Settings()
	}
	if s.o.Audit != nil {
		w, sup := s.o.Audit.Stats()
		st.Audit = &auditStatus{Written: w, Suppressed: sup, ByReason: s.o.Audit.Counts()}
	}
	return st
}
