// Package store is the outbox's bbolt file: its buckets, the encoding of
// records and delivery states, the format version and its upgrade, and
// every read and write the outbox makes of stored events (the applier's
// transactions, the dispatcher's outcomes, the operator's queries).
//
// It holds no event in memory and knows nothing of schedules, journal or
// limits: package forward decides what to write, this package writes it.
// Only it imports bbolt.
//
// # Format 2
//
// One file (forward.FileName, mode 0600) with these buckets:
//
//	pending    seq (8 bytes, big endian) -> record
//	state      seq -> state of a pending event that failed before
//	dead       seq -> held value: state and record of a dead letter
//	delivered  delivery time (8 bytes, Unix ns) + seq -> held value of a
//	           delivered event kept for replay; oldest delivery first
//	accepted   acceptance time + seq -> block of accepted event ids
//	meta       "journal-applied" -> seq: every journal record up to it is
//	           stored; "format" -> uvarint format version (absent: 1)
//
// A record ([EncodeRecord]) is: version byte (2); acceptance and receipt
// times (Unix ns, 8 bytes each, big endian); nine uvarint-length-prefixed
// strings: destination, event id, SdkAppid, command, ClientIP,
// OptPlatform, client identity, certificate SHA-256, request id; then the
// uvarint-length-prefixed body, so the body is the record's last bytes.
// Version 1 records (format 1) lack the destination and read as
// [DefaultDestination].
//
// A state ([EncodeState]) is: version byte (2); failed attempts (uvarint);
// last attempt, next attempt, dead and delivery times (8 bytes each); the
// last error (uvarint length, at most 512 bytes); the history: a count
// (uvarint, at most [HistoryLen]) and per attempt its start (8 bytes),
// duration (uvarint ns), HTTP status (uvarint, 0 for no answer or a
// success) and error text (uvarint length, at most 200 bytes, never a
// body). Version 1 states lack the delivery time and the history.
//
// A held value is the state's length (uvarint), the state, and the record.
//
// # Versions
//
// [Open] reads the format key: a newer format is refused with
// [ErrNewerFormat] (read-only opens too); format 1 is upgraded by a
// writable open, which creates the delivered bucket and records format 2.
// Version 1 records and states are not rewritten: the decoders read both
// versions, and everything written from then on is version 2. The journal
// carries records in this encoding, so its records are versioned too.
package store
