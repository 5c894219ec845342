// Package journal is the outbox's write-ahead log: a preallocated file of
// length-prefixed, CRC-32C-checked records, each with a sequence number,
// written by one group leader at a time (one write and one flush per group
// of concurrent callers) and reused from its start once everything written
// was applied elsewhere.
//
// It owns the file, its record framing, the sequence numbers, the flush
// method (io_uring where the kernel offers it, else fdatasync(2)) and the
// wait for the applier before the file is reused. It does not know what a
// record holds (package store encodes them) nor where records are applied
// (package forward's applier copies them into the store and calls
// [Journal.MarkApplied]). It imports only internal/uring.
//
// # File format
//
// The file has a fixed size and is written with zeros once, when created
// or resized. Records follow each other from offset 0:
//
//	length  uint32, little endian: 8 + len(payload)
//	crc     uint32, little endian: CRC-32C (Castagnoli) of seq and payload
//	seq     uint64, little endian
//	payload the record's bytes
//
// Sequence numbers grow by one per record and never repeat. When the rest
// of a group does not fit, the writer waits until every record written was
// applied and starts over at offset 0 without clearing the file: [Scan]
// stops at the first record that is torn, zero, fails its CRC, or whose
// sequence number is not above the previous one's (the previous pass).
package journal
