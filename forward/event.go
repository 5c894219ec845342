package forward

import (
	"time"

	"github.com/imedge/imedge/forward/internal/store"
)

// DefaultDestination is the catch-all destination (imedge's --forward-url):
// an Event with an empty Destination goes there, as do events stored under
// a destination that is no longer configured, and events written before
// destinations existed.
const DefaultDestination = "default"

// Event is one accepted callback as the outbox stores and delivers it. It
// mirrors receiver.Event field for field, plus the destination; cmd/imedge
// converts between the two so that neither package imports the other.
// Body is the exact bytes IM sent and is delivered unchanged.
type Event struct {
	// Destination is the stable name of the route the event is delivered
	// through: the route's pattern (e.g. "Group.*"), or DefaultDestination
	// (also meant by ""). Never a URL, which may carry a secret: the store
	// keeps the name, so a changed URL redirects pending events.
	Destination string
	ID          string    // event id: hex SHA-256 of SdkAppid, command and body
	AppID       string    // SdkAppid
	Command     string    // CallbackCommand
	ClientIP    string    // ClientIP query parameter
	OptPlatform string    // OptPlatform as sent; may be empty
	Identity    string    // verified client-certificate identity; may be empty
	CertSHA256  string    // hex SHA-256 of the client certificate; may be empty
	RequestID   string    // imedge's request id
	ReceivedAt  time.Time // when the request arrived
	Body        []byte    // original request body
	// BodyJSON says the caller has checked that Body is one valid JSON
	// value (the receiver accepts nothing else), so a batch embeds it
	// without checking it again. It is not stored: an event read back
	// from the store is checked before it is embedded.
	BodyJSON bool
}

// record returns ev as the store encodes it, accepted at at.
func (ev *Event) record(at time.Time) store.Record {
	return store.Record{
		Destination: ev.Destination, ID: ev.ID, AppID: ev.AppID, Command: ev.Command, ClientIP: ev.ClientIP,
		OptPlatform: ev.OptPlatform, Identity: ev.Identity, CertSHA256: ev.CertSHA256, RequestID: ev.RequestID,
		ReceivedAt: ev.ReceivedAt, AcceptedAt: at, Body: ev.Body,
	}
}

// eventOf returns the event a stored record holds.
func eventOf(r *store.Record) Event {
	return Event{
		Destination: r.Destination, ID: r.ID, AppID: r.AppID, Command: r.Command, ClientIP: r.ClientIP,
		OptPlatform: r.OptPlatform, Identity: r.Identity, CertSHA256: r.CertSHA256, RequestID: r.RequestID,
		ReceivedAt: r.ReceivedAt, Body: r.Body,
	}
}

// State is where a stored event is: waiting for delivery, dead-lettered,
// or delivered and retained for replay.
type State string

// The states of a stored event.
const (
	StatePending   State = "pending"
	StateDead      State = "dead"
	StateDelivered State = "delivered"
)

func (s State) kind() store.Kind {
	switch s {
	case StateDead:
		return store.KindDead
	case StateDelivered:
		return store.KindDelivered
	}
	return store.KindPending
}

func stateOf(k store.Kind) State {
	switch k {
	case store.KindDead:
		return StateDead
	case store.KindDelivered:
		return StateDelivered
	}
	return StatePending
}

// Attempt is one delivery attempt in an event's history.
type Attempt struct {
	At       time.Time     // when it started
	Duration time.Duration // how long it took
	Status   int           // HTTP status of a failure; zero for a success and when there was no answer
	Error    string        // status or transport error text, never a body; empty on success
}

// HistoryLen is how many of an event's last attempts the outbox keeps.
const HistoryLen = 10

// Entry describes one stored event for operators: its place in the outbox
// and its delivery state. The zero value describes nothing.
type Entry struct {
	Seq         uint64    // storage key; delivery order is ascending Seq among due entries
	State       State     // pending, dead or delivered (retained)
	Event       Event     // metadata; Event.Body is set by [Outbox.Show] only
	BodySize    int       // length of the body in bytes
	StoredSize  int       // bytes the record takes against [OutboxOptions.MaxBytes]
	AcceptedAt  time.Time // when Append stored it
	Attempts    int       // failed delivery attempts so far (since a replay)
	LastAttempt time.Time // zero before the first failed attempt
	NextAttempt time.Time // zero means due now (pending entries only)
	LastError   string    // status code and short reason of the last failure; never a body
	DeadAt      time.Time // when it was dead-lettered
	DeliveredAt time.Time // when it was delivered (retained entries)
	// History holds the last HistoryLen attempts, oldest first, success
	// included; set by [Outbox.Show] only.
	History []Attempt
}

// entryOf describes a stored item; withHistory copies its history.
func entryOf(it *store.Item, withHistory bool) Entry {
	st := &it.State
	e := Entry{
		Seq: it.Seq, State: stateOf(it.Kind), Event: eventOf(&it.Record), BodySize: it.BodySize, StoredSize: it.Size,
		AcceptedAt: it.Record.AcceptedAt, Attempts: st.Attempts, LastAttempt: st.LastAttempt, NextAttempt: st.NextAttempt,
		LastError: st.LastError, DeadAt: st.DeadAt, DeliveredAt: st.DeliveredAt,
	}
	if withHistory {
		for _, a := range st.History {
			e.History = append(e.History, Attempt(a))
		}
	}
	return e
}

// Filter selects stored events for the operator methods of [Outbox]. The
// zero value selects every event.
type Filter struct {
	Destination string    // exact destination name; empty: any
	Command     string    // exact command, "Family.*" for a family, or "*"; empty: any
	From, To    time.Time // acceptance time in [From, To); zero: unbounded
	// Refs are event ids or sequence numbers in decimal; empty: any. An
	// event matches when it matches one of them (and the fields above);
	// refs that match nothing are reported in an error wrapping
	// ErrNotFound.
	Refs []string
}

// Query selects a page of stored events for [Outbox.List].
type Query struct {
	State  State  // which events; empty means StatePending
	Filter Filter // which of them; the zero Filter: all
	// After lists only events with a sequence number above it: zero for
	// the first page, then the previous [Page.Next].
	After uint64
	// Limit is the page size; zero means 100, negative means no limit.
	Limit int
}

// DefaultListLimit is the page size of a [Query] with a zero Limit.
const DefaultListLimit = 100

// Page is one page of [Outbox.List]: entries in sequence order, and the
// cursor for the next page.
type Page struct {
	Entries []Entry // at most the Query's Limit
	// Next is the After of the next page; zero when this is the last.
	Next uint64
}

// Stats is a snapshot of the outbox's contents: totals, and the same per
// destination.
type Stats struct {
	Pending       int       // events waiting for delivery (including those in flight)
	PendingBytes  int64     // their stored size
	Dead          int       // dead-lettered events
	DeadBytes     int64     // their stored size
	Retained      int       // delivered events kept for replay
	RetainedBytes int64     // their stored size
	OldestPending time.Time // acceptance time of the oldest pending event; zero when none
	// Unapplied counts the pending events found only in the journal: in a
	// read-only open after a crash, events answered OK that the next
	// writable open (the server, replay or purge) stores. Included in
	// Pending.
	Unapplied  int
	Remembered int   // accepted ids kept for dedupe reload (approximate)
	MaxEvents  int   // the event limit (pending plus dead, all destinations)
	MaxBytes   int64 // the byte limit (pending plus dead, all destinations)
	// Absorbed counts events delivered before the applier stored them,
	// whose record was therefore never written to bbolt as pending, since
	// open.
	Absorbed uint64
	// StoreFailing is true while journaled events cannot be stored in
	// bbolt; Append then refuses new events.
	StoreFailing bool
	// Destinations has one entry per destination, by name.
	Destinations []DestinationStats
}

// DestinationStats is one destination's part of [Stats].
type DestinationStats struct {
	Name          string    // the destination's name
	Pending       int       // events waiting for delivery (including those in flight)
	PendingBytes  int64     // their stored size
	Dead          int       // dead-lettered events
	DeadBytes     int64     // their stored size
	Retained      int       // delivered events kept for replay
	RetainedBytes int64     // their stored size
	OldestPending time.Time // acceptance time of the oldest pending event; zero when none
	MaxEvents     int       // this destination's share of the event limit
	MaxBytes      int64     // this destination's share of the byte limit
	// Rerouted counts the stored events (pending and dead) of destinations
	// no longer configured, which this one (DefaultDestination) delivers.
	Rerouted int
}
