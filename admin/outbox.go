package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/forward"
)

// The outbox operations: their request and answer shapes (the JSON of the
// admin API under /outbox/, documented in docs/outbox-api.md), and [Local],
// which runs them on an outbox of this process. The HTTP side is in
// outbox_http.go, the client in client.go.

// OutboxOps is what the outbox operations need from the outbox: the
// operator methods of *forward.Outbox, which are safe while it delivers.
type OutboxOps interface {
	Stats() (forward.Stats, error)
	List(ctx context.Context, q forward.Query) (forward.Page, error)
	Show(ctx context.Context, ref string) (forward.Entry, error)
	ReplayDead(ctx context.Context, f forward.Filter) (int, error)
	ReplayDelivered(ctx context.Context, f forward.Filter) (int, error)
	RetryNow(ctx context.Context, f forward.Filter) (int, error)
	PurgeDead(ctx context.Context, f forward.Filter) (int, error)
}

// Operator runs the outbox operations: [Local] on an outbox of this
// process, [Client] on a running imedge through its admin listener. Both
// give the same answers, so imedge outbox prints the same thing either way.
type Operator interface {
	// OutboxStats counts the stored events, in total and per destination.
	OutboxStats(ctx context.Context) (OutboxStats, error)
	// ListEvents returns one page of the events in q.State that match q.
	ListEvents(ctx context.Context, q ListQuery) (EventPage, error)
	// ShowEvent returns one event, body and attempt history included.
	ShowEvent(ctx context.Context, ref string) (Event, error)
	// Act applies a to the events s selects.
	Act(ctx context.Context, a Action, s Selection) (ActionResult, error)
}

// Action is a change the outbox operations make to stored events.
type Action string

// The actions, each POST /outbox/ACTION.
const (
	// ActionReplayDead moves dead letters back to their queues, due now
	// with a fresh attempt count.
	ActionReplayDead Action = "replay-dead"
	// ActionReplayDelivered queues retained delivered events for delivery
	// again (the internal service lost them).
	ActionReplayDelivered Action = "replay-delivered"
	// ActionRetry makes pending events due now, ending their backoff.
	ActionRetry Action = "retry"
	// ActionPurgeDead deletes dead letters.
	ActionPurgeDead Action = "purge-dead"
)

// Actions lists every action.
func Actions() []Action {
	return []Action{ActionReplayDead, ActionReplayDelivered, ActionRetry, ActionPurgeDead}
}

func (a Action) valid() bool {
	for _, k := range Actions() {
		if a == k {
			return true
		}
	}
	return false
}

// State is the state of the events a acts on: pending for retry,
// delivered (retained) for replay-delivered, dead for the others.
func (a Action) State() forward.State {
	switch a {
	case ActionReplayDelivered:
		return forward.StateDelivered
	case ActionRetry:
		return forward.StatePending
	}
	return forward.StateDead
}

// Bounds of the outbox operations' requests.
const (
	// MaxRefs is the most event references one request may name.
	MaxRefs = 1000
	// MaxListLimit is the largest page ListEvents returns.
	MaxListLimit = 1000
	// maxRefLen and maxNameLen bound a reference and a command or
	// destination name.
	maxRefLen  = 128
	maxNameLen = 256
)

// Selection says which stored events an action or a listing applies to:
// the events named in Refs (event ids or sequence numbers), and of those
// (or of all, without Refs) the ones matching every filter set. For an
// action, the zero Selection is refused: All must say "every event" on
// purpose, and excludes Refs and filters.
type Selection struct {
	Refs        []string  `json:"refs,omitempty"`        // event ids or sequence numbers, at most MaxRefs
	Command     string    `json:"command,omitempty"`     // exact command, "Family.*" or "*"
	Destination string    `json:"destination,omitempty"` // exact destination name (a route's pattern, or "default")
	Since       time.Time `json:"since,omitzero"`        // accepted at or after
	Until       time.Time `json:"until,omitzero"`        // accepted before
	All         bool      `json:"all,omitempty"`         // every event of the action's state
}

// empty reports whether s selects by nothing.
func (s *Selection) empty() bool {
	return len(s.Refs) == 0 && s.Command == "" && s.Destination == "" && s.Since.IsZero() && s.Until.IsZero()
}

// filter checks s and returns it as the outbox's filter. An action's
// selection must name refs, a filter or All.
func (s *Selection) filter(action bool) (forward.Filter, error) {
	bad := func(format string, a ...any) (forward.Filter, error) {
		return forward.Filter{}, fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, a...)...)
	}
	switch {
	case action && s.All && !s.empty():
		return bad("all selects every event: give it without refs or filters")
	case action && !s.All && s.empty():
		return bad("select events: give refs, a filter (command, destination, since, until) or all")
	case len(s.Refs) > MaxRefs:
		return bad("%d refs: at most %d per request", len(s.Refs), MaxRefs)
	case s.Command != "" && !validCommand(s.Command):
		return bad("command %q: want a command name, Family.* or *", clipText(s.Command))
	case len(s.Destination) > maxNameLen:
		return bad("destination: longer than %d bytes", maxNameLen)
	case !s.Since.IsZero() && !s.Until.IsZero() && !s.Since.Before(s.Until):
		return bad("since (%s) must be before until (%s)", s.Since.Format(time.RFC3339), s.Until.Format(time.RFC3339))
	}
	for _, r := range s.Refs {
		if r == "" || len(r) > maxRefLen {
			return bad("ref %q: want an event id or a sequence number", clipText(r))
		}
	}
	return forward.Filter{Destination: s.Destination, Command: s.Command, From: s.Since, To: s.Until, Refs: s.Refs}, nil
}

// auditFilter is s as the audit record's filter (refs are written apart).
func (s *Selection) auditFilter() map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("command", s.Command)
	set("destination", s.Destination)
	if !s.Since.IsZero() {
		m["since"] = s.Since.UTC().Format(time.RFC3339Nano)
	}
	if !s.Until.IsZero() {
		m["until"] = s.Until.UTC().Format(time.RFC3339Nano)
	}
	if s.All {
		m["all"] = "true"
	}
	return m
}

// validCommand reports whether p is "*", a command name
// ("Group.CallbackAfterSendMsg") or a family pattern ("Group.*").
func validCommand(p string) bool {
	if p == "*" {
		return true
	}
	p = strings.TrimSuffix(p, ".*")
	if p == "" || len(p) > maxNameLen {
		return false
	}
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			return false
		}
		for _, c := range part {
			if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// clipText bounds text from a request quoted in an error.
func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ListQuery selects a page of events for [Operator.ListEvents]. Refs and
// All of its Selection are not used.
type ListQuery struct {
	State     forward.State // pending (the default), dead or delivered (retained)
	Selection               // command, destination, since, until
	// After lists only events with a sequence number above it: zero for
	// the first page, then the previous page's Next.
	After uint64
	// Limit is the page size: zero means forward.DefaultListLimit, at
	// most MaxListLimit.
	Limit int
}

func (q *ListQuery) query() (forward.Query, error) {
	switch q.State {
	case "", forward.StatePending, forward.StateDead, forward.StateDelivered:
	default:
		return forward.Query{}, fmt.Errorf("%w: state %q: want pending, dead or delivered", ErrBadRequest, clipText(string(q.State)))
	}
	if q.Limit < 0 || q.Limit > MaxListLimit {
		return forward.Query{}, fmt.Errorf("%w: limit %d: want 1 to %d", ErrBadRequest, q.Limit, MaxListLimit)
	}
	sel := q.Selection
	sel.Refs, sel.All = nil, false
	f, err := sel.filter(false)
	if err != nil {
		return forward.Query{}, err
	}
	return forward.Query{State: q.State, Filter: f, After: q.After, Limit: q.Limit}, nil
}

// OutboxStats is the answer of GET /outbox/stats: the stored events in
// total and per destination.
type OutboxStats struct {
	Pending         int       `json:"pending"`
	PendingBytes    int64     `json:"pending_bytes"`
	DeadLetters     int       `json:"dead_letters"`
	DeadLetterBytes int64     `json:"dead_letter_bytes"`
	Retained        int       `json:"retained"` // delivered events kept for replay
	RetainedBytes   int64     `json:"retained_bytes"`
	OldestPending   time.Time `json:"oldest_pending,omitzero"` // absent when nothing is pending
	// Unapplied counts pending events only the journal holds (a stopped
	// instance's directory after a crash); included in Pending.
	Unapplied    int                 `json:"unapplied"`
	MaxEvents    int                 `json:"max_events"`
	MaxBytes     int64               `json:"max_bytes"`
	StoreFailing bool                `json:"store_failing"`
	Destinations []OutboxDestination `json:"destinations"`
}

// OutboxDestination is one destination's part of [OutboxStats].
type OutboxDestination struct {
	Name            string    `json:"name"`
	Pending         int       `json:"pending"`
	PendingBytes    int64     `json:"pending_bytes"`
	DeadLetters     int       `json:"dead_letters"`
	DeadLetterBytes int64     `json:"dead_letter_bytes"`
	Retained        int       `json:"retained"`
	RetainedBytes   int64     `json:"retained_bytes"`
	OldestPending   time.Time `json:"oldest_pending,omitzero"`
	MaxEvents       int       `json:"max_events"` // its share of the event limit
	MaxBytes        int64     `json:"max_bytes"`  // its share of the byte limit
	Rerouted        int       `json:"rerouted"`   // events of removed routes it delivers (default only)
}

// Event is one stored event as the outbox operations show it: GET
// /outbox/events lists them without Body and History, GET
// /outbox/events/REF shows one with them.
type Event struct {
	Seq              uint64        `json:"seq"`   // storage key; delivery order among due events
	State            forward.State `json:"state"` // pending, dead or delivered
	ID               string        `json:"id"`    // event id (X-Imedge-Event-Id)
	Destination      string        `json:"destination"`
	SdkAppid         string        `json:"sdkappid"`
	Command          string        `json:"command"`
	ClientIP         string        `json:"client_ip,omitempty"`
	OptPlatform      string        `json:"opt_platform,omitempty"`
	ClientIdentity   string        `json:"client_identity,omitempty"`
	ClientCertSHA256 string        `json:"client_cert_sha256,omitempty"`
	RequestID        string        `json:"request_id,omitempty"`
	ReceivedAt       time.Time     `json:"received_at,omitzero"`
	AcceptedAt       time.Time     `json:"accepted_at,omitzero"`
	BodySize         int           `json:"body_size"`
	StoredSize       int           `json:"stored_size"`
	Attempts         int           `json:"attempts"` // failed attempts since it was stored or replayed
	LastAttempt      time.Time     `json:"last_attempt,omitzero"`
	NextAttempt      time.Time     `json:"next_attempt,omitzero"` // absent: due now (pending events)
	LastError        string        `json:"last_error,omitempty"`
	DeadAt           time.Time     `json:"dead_at,omitzero"`
	DeliveredAt      time.Time     `json:"delivered_at,omitzero"`
	// Body is the body IM sent, when it is JSON (always, for events the
	// receiver accepted); BodyBase64 holds any other body. Shown only.
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 []byte          `json:"body_base64,omitempty"`
	// History is the last forward.HistoryLen attempts, oldest first, the
	// success included. Shown only.
	History []Attempt `json:"history,omitempty"`
}

// Attempt is one delivery attempt of an [Event]. Its JSON gives Duration
// as a Go duration string ("1.5s"), as imedge's logs do.
type Attempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
	Status   int           `json:"status,omitempty"` // HTTP status of a failure; absent for a success or no answer
	Error    string        `json:"error,omitempty"`  // status or transport error; absent on success
}

type attemptJSON struct {
	At       time.Time `json:"at"`
	Duration string    `json:"duration"`
	Status   int       `json:"status,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// MarshalJSON writes a with its duration as a Go duration string.
func (a Attempt) MarshalJSON() ([]byte, error) {
	return json.Marshal(attemptJSON{At: a.At, Duration: a.Duration.String(), Status: a.Status, Error: a.Error})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Attempt) UnmarshalJSON(b []byte) error {
	var j attemptJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.Duration)
	if err != nil {
		return fmt.Errorf("attempt duration: %w", err)
	}
	*a = Attempt{At: j.At, Duration: d, Status: j.Status, Error: j.Error}
	return nil
}

// EventPage is the answer of GET /outbox/events.
type EventPage struct {
	Events []Event `json:"events"`
	// Next is the after of the next page; zero (absent) on the last.
	Next uint64 `json:"next,omitempty"`
}

// ActionResult is the answer of an action.
type ActionResult struct {
	Action Action `json:"action"`
	Count  int    `json:"count"` // events changed
	// NotFound lists the refs that matched no event in the action's state
	// (the others were acted on).
	NotFound []string `json:"not_found,omitempty"`
	// Skipped says why matching events were left as they were (e.g. a
	// retained event whose destination's share is full).
	Skipped []string `json:"skipped,omitempty"`
}

// Local runs the outbox operations on an outbox opened in this process:
// the admin listener on the server's outbox, and imedge outbox on a
// stopped instance's directory. Outbox is required. Safe for concurrent
// use when Outbox is.
type Local struct {
	Outbox OutboxOps
}

// OutboxStats implements [Operator].
func (l Local) OutboxStats(context.Context) (OutboxStats, error) {
	st, err := l.Outbox.Stats()
	if err != nil {
		return OutboxStats{}, err
	}
	out := OutboxStats{
		Pending: st.Pending, PendingBytes: st.PendingBytes, DeadLetters: st.Dead, DeadLetterBytes: st.DeadBytes,
		Retained: st.Retained, RetainedBytes: st.RetainedBytes, OldestPending: st.OldestPending.UTC(),
		Unapplied: st.Unapplied, MaxEvents: st.MaxEvents, MaxBytes: st.MaxBytes, StoreFailing: st.StoreFailing,
		Destinations: make([]OutboxDestination, 0, len(st.Destinations)),
	}
	for _, d := range st.Destinations {
		out.Destinations = append(out.Destinations, OutboxDestination{
			Name: d.Name, Pending: d.Pending, PendingBytes: d.PendingBytes, DeadLetters: d.Dead, DeadLetterBytes: d.DeadBytes,
			Retained: d.Retained, RetainedBytes: d.RetainedBytes, OldestPending: d.OldestPending.UTC(),
			MaxEvents: d.MaxEvents, MaxBytes: d.MaxBytes, Rerouted: d.Rerouted,
		})
	}
	return out, nil
}

// ListEvents implements [Operator].
func (l Local) ListEvents(ctx context.Context, q ListQuery) (EventPage, error) {
	fq, err := q.query()
	if err != nil {
		return EventPage{}, err
	}
	p, err := l.Outbox.List(ctx, fq)
	if err != nil {
		return EventPage{}, err
	}
	out := EventPage{Events: make([]Event, 0, len(p.Entries)), Next: p.Next}
	for i := range p.Entries {
		out.Events = append(out.Events, eventOf(&p.Entries[i]))
	}
	return out, nil
}

// ShowEvent implements [Operator]. An unknown ref gives an error wrapping
// forward.ErrNotFound.
func (l Local) ShowEvent(ctx context.Context, ref string) (Event, error) {
	if ref == "" || len(ref) > maxRefLen {
		return Event{}, fmt.Errorf("%w: ref %q: want an event id or a sequence number", ErrBadRequest, clipText(ref))
	}
	e, err := l.Outbox.Show(ctx, ref)
	if err != nil {
		return Event{}, err
	}
	ev := eventOf(&e)
	if json.Valid(e.Event.Body) {
		ev.Body = json.RawMessage(e.Event.Body)
	} else if len(e.Event.Body) > 0 {
		ev.BodyBase64 = e.Event.Body
	}
	ev.History = make([]Attempt, 0, len(e.History))
	for _, a := range e.History {
		ev.History = append(ev.History, Attempt{At: a.At.UTC(), Duration: a.Duration, Status: a.Status, Error: a.Error})
	}
	return ev, nil
}

// Act implements [Operator]. Refs that match no event in the action's
// state, and events left because their destination's share is full, are
// reported in the result after the others were acted on; when nothing was
// done because of them, the error wraps forward.ErrNotFound or
// forward.ErrFull as well.
func (l Local) Act(ctx context.Context, a Action, s Selection) (ActionResult, error) {
	res := ActionResult{Action: a}
	if !a.valid() {
		return res, fmt.Errorf("%w: unknown action %q", ErrBadRequest, clipText(string(a)))
	}
	f, err := s.filter(true)
	if err != nil {
		return res, err
	}
	op := map[Action]func(context.Context, forward.Filter) (int, error){
		ActionReplayDead: l.Outbox.ReplayDead, ActionReplayDelivered: l.Outbox.ReplayDelivered,
		ActionRetry: l.Outbox.RetryNow, ActionPurgeDead: l.Outbox.PurgeDead,
	}[a]
	n, err := op(ctx, f)
	res.Count = n
	var other []error
	for _, e := range leaves(err) {
		switch {
		case errors.Is(e, forward.ErrNotFound):
			if ref, ok := refOf(e, s.Refs); ok {
				res.NotFound = append(res.NotFound, ref)
				continue
			}
			other = append(other, e)
		case errors.Is(e, forward.ErrFull):
			res.Skipped = append(res.Skipped, e.Error())
		default:
			other = append(other, e)
		}
	}
	if len(other) > 0 {
		return res, fmt.Errorf("%s: %w", a, errors.Join(other...))
	}
	if n > 0 {
		return res, nil
	}
	switch {
	case len(res.Skipped) > 0:
		return res, fmt.Errorf("%s: %d matching event(s) left, their destination's share of the outbox is full (%s): %w",
			a, len(res.Skipped), res.Skipped[0], forward.ErrFull)
	case len(res.NotFound) > 0:
		return res, fmt.Errorf("%s: no %s event matches %s: %w", a, a.State(), quoteAll(res.NotFound), forward.ErrNotFound)
	}
	return res, nil
}

// leaves flattens the errors joined in err.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// refOf returns the ref of refs a not-found error of the outbox names (it
// quotes the ref, as %q does).
func refOf(err error, refs []string) (string, bool) {
	msg := err.Error()
	for _, r := range refs {
		if strings.Contains(msg, strconv.Quote(r)) {
			return r, true
		}
	}
	return "", false
}

func quoteAll(refs []string) string {
	q := make([]string, 0, min(len(refs), 10))
	for _, r := range refs[:min(len(refs), 10)] {
		q = append(q, strconv.Quote(r))
	}
	if len(refs) > 10 {
		q = append(q, fmt.Sprintf("and %d more", len(refs)-10))
	}
	return strings.Join(q, ", ")
}

// eventOf describes an outbox entry, without body and history.
func eventOf(e *forward.Entry) Event {
	ev := &e.Event
	dest := ev.Destination
	if dest == "" {
		dest = forward.DefaultDestination
	}
	return Event{
		Seq: e.Seq, State: e.State, ID: ev.ID, Destination: dest, SdkAppid: ev.AppID, Command: ev.Command,
		ClientIP: ev.ClientIP, OptPlatform: ev.OptPlatform, ClientIdentity: ev.Identity, ClientCertSHA256: ev.CertSHA256,
		RequestID: ev.RequestID, ReceivedAt: ev.ReceivedAt.UTC(), AcceptedAt: e.AcceptedAt.UTC(),
		BodySize: e.BodySize, StoredSize: e.StoredSize, Attempts: e.Attempts, LastAttempt: e.LastAttempt.UTC(),
		NextAttempt: e.NextAttempt.UTC(), LastError: e.LastError, DeadAt: e.DeadAt.UTC(), DeliveredAt: e.DeliveredAt.UTC(),
	}
}
