package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// DefaultDestination is the destination of records written before
// destinations existed (record version 1), and the catch-all's name.
const DefaultDestination = "default"

// Record versions: 1 has no destination (format 1), 2 adds it first among
// the strings (format 2).
const (
	recordV1 = 1
	recordV2 = 2
)

// State versions: 1 (format 1) and 2, which adds the delivery time and
// the attempt history.
const (
	stateV1 = 1
	stateV2 = 2
)

// HistoryLen is how many attempts a [State] keeps in its History.
const HistoryLen = 10

// maxLastError bounds the stored LastError text; maxAttemptError each
// history entry's error text.
const (
	maxLastError    = 512
	maxAttemptError = 200
)

// Record is one event as the store keeps it: its metadata, its acceptance
// time and the body as IM sent it. The zero value is an empty record.
type Record struct {
	Destination string    // the route's stable name; DefaultDestination for version 1 records
	ID          string    // event id
	AppID       string    // SdkAppid
	Command     string    // CallbackCommand
	ClientIP    string    // ClientIP query parameter
	OptPlatform string    // OptPlatform; may be empty
	Identity    string    // client-certificate identity; may be empty
	CertSHA256  string    // client certificate's SHA-256; may be empty
	RequestID   string    // imedge's request id
	ReceivedAt  time.Time // when the request arrived
	AcceptedAt  time.Time // when the outbox accepted it
	Body        []byte    // the body as IM sent it
}

// Attempt is one delivery attempt as a [State] remembers it.
type Attempt struct {
	At       time.Time     // when it started
	Duration time.Duration // how long it took
	Status   int           // HTTP status; zero when there was no answer
	Error    string        // short error text (never a body); empty on success
}

// State is what the store keeps about an event's delivery: of a pending
// event that failed before, of a dead letter, of a retained delivered
// event. The zero value is a pending event never attempted.
type State struct {
	Attempts    int       // failed attempts
	LastAttempt time.Time // zero before the first failed attempt
	NextAttempt time.Time // zero: due now (pending events only)
	DeadAt      time.Time // when it was dead-lettered
	DeliveredAt time.Time // when it was delivered (retained events)
	LastError   string    // the last failure, with the reason it was dead-lettered
	History     []Attempt // the last HistoryLen attempts, oldest first
}

// AddAttempt appends a to the history, keeping the last HistoryLen, with
// its error text shortened to what is stored.
func (s *State) AddAttempt(a Attempt) {
	a.Error = truncate(a.Error, maxAttemptError)
	if len(s.History) >= HistoryLen {
		s.History = append(s.History[:0:0], s.History[len(s.History)-HistoryLen+1:]...)
	}
	s.History = append(s.History, a)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

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

// Normalize returns t as the store gives it back: UTC, no monotonic
// reading, zero for zero.
func Normalize(t time.Time) time.Time { return fromUnixNano(unixNano(t)) }

// EncodeRecord serialises r in the current version. Layout: version (2),
// accepted and received Unix nanoseconds (8 bytes each, big endian), nine
// uvarint-length-prefixed strings (Destination, ID, AppID, Command,
// ClientIP, OptPlatform, Identity, CertSHA256, RequestID), then the
// uvarint-length-prefixed body, which is therefore the record's last
// bytes.
func EncodeRecord(r *Record) []byte {
	strs := [...]string{r.Destination, r.ID, r.AppID, r.Command, r.ClientIP, r.OptPlatform, r.Identity, r.CertSHA256, r.RequestID}
	n := 1 + 16 + binary.MaxVarintLen64*(len(strs)+1) + len(r.Body)
	for _, s := range strs {
		n += len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, recordV2)
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.AcceptedAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.ReceivedAt)))
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	b = append(b, r.Body...)
	return b
}

// recordFields checks a record's version and returns the fields after its
// two times.
func recordFields(b []byte) (version byte, rest []byte, err error) {
	if len(b) < 17 {
		return 0, nil, ErrCorrupt
	}
	switch b[0] {
	case recordV1, recordV2:
		return b[0], b[17:], nil
	}
	if b[0] > recordV2 {
		return 0, nil, fmt.Errorf("%w: record version %d", ErrNewerFormat, b[0])
	}
	return 0, nil, ErrCorrupt
}

// field splits the next length-prefixed field off *rest.
func field(rest *[]byte) ([]byte, error) {
	n, k := binary.Uvarint(*rest)
	if k <= 0 || n > uint64(len(*rest)-k) {
		return nil, ErrCorrupt
	}
	f := (*rest)[k : k+int(n)]
	*rest = (*rest)[k+int(n):]
	return f, nil
}

// DecodeRecord parses a record of either version. Strings and the body are
// copied, so the result outlives a transaction. With withBody false, Body
// stays nil; bodySize is its length either way.
func DecodeRecord(b []byte, withBody bool) (r Record, bodySize int, err error) {
	version, rest, err := recordFields(b)
	if err != nil {
		return Record{}, 0, err
	}
	r.AcceptedAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[1:9])))
	r.ReceivedAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[9:17])))
	fields := [...]*string{&r.Destination, &r.ID, &r.AppID, &r.Command, &r.ClientIP, &r.OptPlatform, &r.Identity, &r.CertSHA256, &r.RequestID}
	strs := fields[:]
	if version == recordV1 {
		strs = fields[1:]
		r.Destination = DefaultDestination
	}
	for _, dst := range strs {
		f, ferr := field(&rest)
		if ferr != nil {
			return Record{}, 0, ferr
		}
		*dst = string(f)
	}
	body, err := field(&rest)
	if err != nil {
		return Record{}, 0, err
	}
	if withBody {
		r.Body = append([]byte{}, body...)
	}
	return r, len(body), nil
}

// RecordDestination reads only the destination of a record; a version 1
// record's is DefaultDestination.
func RecordDestination(b []byte) (string, error) {
	version, rest, err := recordFields(b)
	if err != nil {
		return "", err
	}
	if version == recordV1 {
		return DefaultDestination, nil
	}
	f, err := field(&rest)
	return string(f), err
}

// recordAcceptedAt reads only the acceptance time of a record.
func recordAcceptedAt(b []byte) time.Time {
	if len(b) < 9 {
		return time.Time{}
	}
	return fromUnixNano(int64(binary.BigEndian.Uint64(b[1:9])))
}

// EncodeState serialises st in the current version. Layout: version (2),
// failed attempts (uvarint), last attempt, next attempt, dead and
// delivered times (Unix nanoseconds, 8 bytes each, big endian), the last
// error (uvarint length, bytes; at most 512), then the history: a count
// (uvarint) and per attempt its start (8 bytes), duration (uvarint
// nanoseconds), status (uvarint) and error (uvarint length, bytes; at
// most 200).
func EncodeState(st State) []byte {
	return appendState(make([]byte, 0, stateSize(&st)), &st)
}

// stateSize bounds the length of st's encoding.
func stateSize(st *State) int {
	n := 1 + 2*binary.MaxVarintLen64 + 32 + min(len(st.LastError), maxLastError)
	for _, a := range st.History {
		n += 8 + 3*binary.MaxVarintLen64 + min(len(a.Error), maxAttemptError)
	}
	return n
}

// appendState appends st's encoding (EncodeState) to b.
func appendState(b []byte, st *State) []byte {
	le := truncate(st.LastError, maxLastError)
	b = append(b, stateV2)
	b = binary.AppendUvarint(b, uint64(max(st.Attempts, 0)))
	for _, t := range [...]time.Time{st.LastAttempt, st.NextAttempt, st.DeadAt, st.DeliveredAt} {
		b = binary.BigEndian.AppendUint64(b, uint64(unixNano(t)))
	}
	b = binary.AppendUvarint(b, uint64(len(le)))
	b = append(b, le...)
	hist := st.History
	if len(hist) > HistoryLen {
		hist = hist[len(hist)-HistoryLen:]
	}
	b = binary.AppendUvarint(b, uint64(len(hist)))
	for _, a := range hist {
		e := truncate(a.Error, maxAttemptError)
		b = binary.BigEndian.AppendUint64(b, uint64(unixNano(a.At)))
		b = binary.AppendUvarint(b, uint64(max(a.Duration, 0)))
		b = binary.AppendUvarint(b, uint64(max(a.Status, 0)))
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// DecodeState parses a state of either version.
func DecodeState(b []byte) (State, error) {
	var st State
	if len(b) < 1 {
		return st, ErrCorrupt
	}
	version := b[0]
	switch {
	case version > stateV2:
		return st, fmt.Errorf("%w: state version %d", ErrNewerFormat, version)
	case version != stateV1 && version != stateV2:
		return st, ErrCorrupt
	}
	b = b[1:]
	uv := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	t64 := func() (time.Time, bool) {
		if len(b) < 8 {
			return time.Time{}, false
		}
		t := fromUnixNano(int64(binary.BigEndian.Uint64(b)))
		b = b[8:]
		return t, true
	}
	str := func() (string, bool) {
		n, ok := uv()
		if !ok || n > uint64(len(b)) {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	n, ok := uv()
	if !ok || n > 1<<31 {
		return st, ErrCorrupt
	}
	st.Attempts = int(n)
	times := []*time.Time{&st.LastAttempt, &st.NextAttempt, &st.DeadAt}
	if version == stateV2 {
		times = append(times, &st.DeliveredAt)
	}
	for _, dst := range times {
		if *dst, ok = t64(); !ok {
			return st, ErrCorrupt
		}
	}
	if st.LastError, ok = str(); !ok {
		return st, ErrCorrupt
	}
	if version == stateV1 {
		return st, nil
	}
	count, ok := uv()
	if !ok || count > HistoryLen {
		return st, ErrCorrupt
	}
	for range count {
		var a Attempt
		var d, status uint64
		okAll := true
		a.At, ok = t64()
		okAll = okAll && ok
		d, ok = uv()
		okAll = okAll && ok && d <= 1<<62
		status, ok = uv()
		okAll = okAll && ok && status < 1000
		a.Error, ok = str()
		if !okAll || !ok {
			return st, ErrCorrupt
		}
		a.Duration, a.Status = time.Duration(d), int(status)
		st.History = append(st.History, a)
	}
	return st, nil
}

// encodeHeld joins a state and a record: a dead letter's or a retained
// event's value, in one allocation (a retained event's is written for
// every delivery).
func encodeHeld(st *State, rec []byte) []byte {
	var buf [256]byte
	s := appendState(buf[:0], st)
	b := make([]byte, 0, binary.MaxVarintLen64+len(s)+len(rec))
	b = binary.AppendUvarint(b, uint64(len(s)))
	b = append(b, s...)
	return append(b, rec...)
}

// splitHeld returns the state and the record of a dead letter's or a
// retained event's value. The record aliases b.
func splitHeld(b []byte) (State, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return State{}, nil, ErrCorrupt
	}
	st, err := DecodeState(b[k : k+int(n)])
	if err != nil {
		return State{}, nil, err
	}
	return st, b[k+int(n):], nil
}

// heldRecord returns the record of a held value without decoding its
// state.
func heldRecord(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, ErrCorrupt
	}
	return b[k+int(n):], nil
}

// SeqKey is the key of sequence number seq in the pending, state and dead
// buckets.
func SeqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// deliveredKey orders the delivered bucket by delivery time, then
// sequence: the oldest delivery is dropped first.
func deliveredKey(at time.Time, seq uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(max(unixNano(at), 0)))
	return binary.BigEndian.AppendUint64(b, seq)
}

func deliveredKeySeq(k []byte) uint64 {
	if len(k) != 16 {
		return 0
	}
	return binary.BigEndian.Uint64(k[8:])
}

func deliveredKeyTime(k []byte) time.Time {
	if len(k) != 16 {
		return time.Time{}
	}
	return fromUnixNano(int64(binary.BigEndian.Uint64(k[:8])))
}

// MatchRef reports whether ref names the event: its id, or its sequence
// number in decimal.
func MatchRef(ref string, seq uint64, id string) bool {
	if ref == id {
		return true
	}
	n, err := strconv.ParseUint(ref, 10, 64)
	return err == nil && n == seq
}

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
