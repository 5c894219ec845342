package forward

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"
)

// Event is one accepted callback as the outbox stores and delivers it. It
// mirrors receiver.Event field for field; cmd/imedge converts between the
// two so that neither package imports the other. Body is the exact bytes IM
// sent and is delivered unchanged.
type Event struct {
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

// Entry describes one stored event for operators: its place in the outbox
// and its delivery state. The zero value describes nothing.
type Entry struct {
	Seq         uint64    // storage key; delivery order is ascending Seq among due entries
	Event       Event     // metadata; Event.Body is set by [Outbox.Show] only
	BodySize    int       // length of the body in bytes
	StoredSize  int       // bytes the record takes against [OutboxOptions.MaxBytes]
	AcceptedAt  time.Time // when Append stored it
	Attempts    int       // failed delivery attempts so far
	LastAttempt time.Time // zero before the first failed attempt
	NextAttempt time.Time // zero means due now (pending entries only)
	LastError   string    // status code and short reason of the last failure; never a body
	Dead        bool      // in the dead-letter bucket
	DeadAt      time.Time // when it was dead-lettered
}

// Stats is a snapshot of the outbox's contents.
type Stats struct {
	Pending       int       // events waiting for delivery (including those in flight)
	PendingBytes  int64     // their stored size
	Dead          int       // dead-lettered events
	DeadBytes     int64     // their stored size
	OldestPending time.Time // acceptance time of the oldest pending event; zero when none
	// Unapplied counts the pending events found only in the journal: in a
	// read-only open after a crash, events answered OK that the next
	// writable open (the server, replay or purge) stores. Included in
	// Pending.
	Unapplied  int
	Remembered int   // accepted ids kept for dedupe reload (approximate)
	MaxEvents  int   // the event limit (pending plus dead)
	MaxBytes   int64 // the byte limit (pending plus dead)
	// Absorbed counts events delivered before the applier stored them,
	// whose record was therefore never written to bbolt, since open.
	Absorbed uint64
	// StoreFailing is true while journaled events cannot be stored in
	// bbolt; Append then refuses new events.
	StoreFailing bool
}

// deliveryState is what the dispatcher persists about a pending event's
// attempts, and what a dead letter keeps of its last failure.
type deliveryState struct {
	Attempts    int
	LastAttempt time.Time
	NextAttempt time.Time
	DeadAt      time.Time
	LastError   string
}

const (
	recordVersion = 1
	stateVersion  = 1
	// maxLastError bounds the stored error text.
	maxLastError = 512
)

var errCorrupt = errors.New("forward: corrupt outbox record")

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeRecord serialises ev with its acceptance time. Layout: version,
// accepted and received unix nanoseconds (big endian), then eight
// uvarint-length-prefixed strings and the length-prefixed body.
func encodeRecord(ev Event, acceptedAt time.Time) []byte {
	strs := [...]string{ev.ID, ev.AppID, ev.Command, ev.ClientIP, ev.OptPlatform, ev.Identity, ev.CertSHA256, ev.RequestID}
	n := 1 + 16 + binary.MaxVarintLen64*(len(strs)+1) + len(ev.Body)
	for _, s := range strs {
		n += len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(acceptedAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(ev.ReceivedAt)))
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(ev.Body)))
	b = append(b, ev.Body...)
	return b
}

// decodeRecord parses a record. Strings and the body are copied, so the
// result outlives the bbolt transaction. With withBody false, Body stays nil.
func decodeRecord(b []byte, withBody bool) (ev Event, acceptedAt time.Time, bodySize int, err error) {
	if len(b) < 17 || b[0] != recordVersion {
		return Event{}, time.Time{}, 0, errCorrupt
	}
	acceptedAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[1:9])))
	ev.ReceivedAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[9:17])))
	rest := b[17:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errCorrupt
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	for _, dst := range [...]*string{&ev.ID, &ev.AppID, &ev.Command, &ev.ClientIP, &ev.OptPlatform, &ev.Identity, &ev.CertSHA256, &ev.RequestID} {
		f, ferr := field()
		if ferr != nil {
			return Event{}, time.Time{}, 0, ferr
		}
		*dst = string(f)
	}
	body, err := field()
	if err != nil {
		return Event{}, time.Time{}, 0, err
	}
	if withBody {
		ev.Body = append([]byte{}, body...)
	}
	return ev, acceptedAt, len(body), nil
}

// recordAcceptedAt reads only the acceptance time of a record.
func recordAcceptedAt(b []byte) time.Time {
	if len(b) < 9 || b[0] != recordVersion {
		return time.Time{}
	}
	return fromUnixNano(int64(binary.BigEndian.Uint64(b[1:9])))
}

func encodeState(st deliveryState) []byte {
	le := st.LastError
	if len(le) > maxLastError {
		le = le[:maxLastError]
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+24+len(le))
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(st.Attempts))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(st.LastAttempt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(st.NextAttempt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(st.DeadAt)))
	b = binary.AppendUvarint(b, uint64(len(le)))
	b = append(b, le...)
	return b
}

func decodeState(b []byte) (deliveryState, error) {
	var st deliveryState
	if len(b) < 1 || b[0] != stateVersion {
		return st, errCorrupt
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1<<31 {
		return st, errCorrupt
	}
	st.Attempts = int(n)
	b = b[k:]
	if len(b) < 24 {
		return st, errCorrupt
	}
	st.LastAttempt = fromUnixNano(int64(binary.BigEndian.Uint64(b[0:8])))
	st.NextAttempt = fromUnixNano(int64(binary.BigEndian.Uint64(b[8:16])))
	st.DeadAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[16:24])))
	b = b[24:]
	n, k = binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return st, errCorrupt
	}
	st.LastError = string(b[k : k+int(n)])
	return st, nil
}

// encodeDead joins a dead letter's state and its record.
func encodeDead(st deliveryState, rec []byte) []byte {
	s := encodeState(st)
	b := make([]byte, 0, binary.MaxVarintLen64+len(s)+len(rec))
	b = binary.AppendUvarint(b, uint64(len(s)))
	b = append(b, s...)
	return append(b, rec...)
}

// splitDead returns the state and the record of a dead letter. The record
// aliases b.
func splitDead(b []byte) (deliveryState, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return deliveryState{}, nil, errCorrupt
	}
	st, err := decodeState(b[k : k+int(n)])
	if err != nil {
		return deliveryState{}, nil, err
	}
	return st, b[k+int(n):], nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// matchRef reports whether ref names the entry: its event id, or its
// sequence number in decimal.
func matchRef(ref string, seq uint64, id string) bool {
	if ref == id {
		return true
	}
	n, err := strconv.ParseUint(ref, 10, 64)
	return err == nil && n == seq
}
