package store

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The accepted bucket remembers the ids of accepted events for
// AcceptedSince (a dedupe window reloaded at start). Each applier
// transaction stores the ids it applies in blocks of up to
// acceptedBlockIDs, one value each:
//
//	key:   acceptedKey(newest acceptance time in the block, its highest sequence)
//	value: acceptedBlock, count (uvarint), then per id, oldest first:
//	       acceptance time (Unix nanoseconds, 8 bytes big endian),
//	       length (uvarint) and encodeID form of the id
//
// One Put per 64 events instead of one per event: a transaction carries
// thousands of events under load, and per-event Puts were about 4 % of
// imedge's CPU per callback (the cursor search and copies of each
// insert). Not one block per transaction: bbolt rewrites the last leaf
// (two or more values) on every append, so blocks of thousands of ids
// were copied again by the next transaction, through the store's memory
// mapping (20 MiB more RSS after a million callbacks). Stores written
// before blocks hold one id per key (value: encodeID form, tag 0 or 1,
// acceptance time in the key); both forms are read, and pruning removes
// either.
//
// Because a block is keyed by its newest time, every id of blocks before
// the one Seek(since) finds is older than since; ids of later blocks are
// compared one by one. The ids of one transaction are in acceptance
// order; across two transactions, Appends that raced each other may be a
// few milliseconds out of order.
const acceptedBlock = 2

// acceptedBlockIDs is the most ids a block holds: about 2.7 KiB, under a
// 4 KiB page.
const acceptedBlockIDs = 64

// AcceptedID is one id of a block. A hex SHA-256 id is kept decoded:
// Append decodes it right after the receiver made it; decoding it in the
// applier, 100 ms and thousands of callbacks later, was 2.6 % of the CPU
// profile, almost all of it in the first reading of each id string.
type AcceptedID struct {
	seq uint64   // sequence number, set when stored
	at  int64    // acceptance time, Unix nanoseconds
	bin [32]byte // the id decoded, when hex is set
	hex bool
	id  string // the id as is, when hex is not set
}

// NewAcceptedID returns id, accepted at at, in the form a block stores.
// Callers make it where the id is fresh in the cache (Append), not in the
// applier's transaction.
func NewAcceptedID(at time.Time, id string) AcceptedID {
	a := AcceptedID{at: max(unixNano(at), 0)}
	if a.hex = decodeHexID(&a.bin, id); !a.hex {
		a.id = id
	}
	return a
}

// decodeHexID decodes id into dst if it is a lowercase hex SHA-256, in one
// pass, and reports whether it was.
func decodeHexID(dst *[32]byte, id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := range dst {
		hi, lo := lowerHex[id[2*i]], lowerHex[id[2*i+1]]
		if hi|lo > 0xf {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// lowerHex maps '0'-'9' and 'a'-'f' to their values and every other byte
// to 0xff. Read-only.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// putAccepted stores the ids of entries, oldest first, in blocks of up to
// acceptedBlockIDs. Sorted by time, each block's newest id is no newer
// than the next block's oldest, so the keys keep the blocks in order; the
// highest sequence in a block makes its key unique.
func putAccepted(a *bolt.Bucket, entries []*Entry) error {
	ids := make([]AcceptedID, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
		ids[i].seq = e.Seq
	}
	slices.SortStableFunc(ids, func(x, y AcceptedID) int { return cmp.Compare(x.at, y.at) })
	for chunk := range slices.Chunk(ids, acceptedBlockIDs) {
		var last uint64
		for _, x := range chunk {
			last = max(last, x.seq)
		}
		if err := a.Put(acceptedKeyNanos(chunk[len(chunk)-1].at, last), appendAcceptedBlock(nil, chunk)); err != nil {
			return err
		}
	}
	return nil
}

// appendAcceptedBlock appends the block value holding ids.
func appendAcceptedBlock(b []byte, ids []AcceptedID) []byte {
	b = append(b, acceptedBlock)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for i := range ids {
		x := &ids[i]
		b = binary.BigEndian.AppendUint64(b, uint64(x.at))
		if x.hex {
			b = binary.AppendUvarint(b, 33)
			b = append(append(b, 1), x.bin[:]...)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(x.id)+1))
		b = append(append(b, 0), x.id...)
	}
	return b
}

// acceptedCount returns how many ids the value v holds (a malformed block
// counts as one, so that pruning removes it).
func acceptedCount(v []byte) int {
	if len(v) == 0 || v[0] != acceptedBlock {
		return 1
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n == 0 || n > uint64(len(v)) {
		return 1
	}
	return int(n)
}

// eachAccepted calls fn for each id the value v under key k holds, oldest
// first, with its acceptance time. It stops at the first malformed entry
// of a block (what came before it is reported).
func eachAccepted(k, v []byte, fn func(id string, at time.Time)) {
	if len(v) == 0 || v[0] != acceptedBlock {
		fn(decodeID(v), acceptedKeyTime(k))
		return
	}
	walkBlock(v, func(at int64, enc []byte, _ int) bool {
		fn(decodeID(enc), fromUnixNano(at))
		return true
	})
}

// walkBlock calls fn for each entry of the block v with its time, its
// encodeID form and the offset just past it, until fn returns false or an
// entry is malformed.
func walkBlock(v []byte, fn func(at int64, enc []byte, end int) bool) {
	n, k := binary.Uvarint(v[1:])
	if k <= 0 {
		return
	}
	off := 1 + k
	for range n {
		if len(v)-off < 8 {
			return
		}
		at := int64(binary.BigEndian.Uint64(v[off:]))
		l, k := binary.Uvarint(v[off+8:])
		if k <= 0 || l > uint64(len(v)-off-8-k) {
			return
		}
		start := off + 8 + k
		off = start + int(l)
		if !fn(at, v[start:off], off) {
			return
		}
	}
}

// dropOldestAccepted returns the block v without its first drop ids, or
// ok false when v is not a block of more than drop well-formed ids.
func dropOldestAccepted(v []byte, drop int) (rest []byte, ok bool) {
	total := acceptedCount(v)
	if len(v) == 0 || v[0] != acceptedBlock || total <= drop {
		return nil, false
	}
	i, cut, kept := 0, -1, 0
	walkBlock(v, func(_ int64, _ []byte, end int) bool {
		i++
		if i == drop {
			cut = end
		}
		if i > drop {
			kept++
		}
		return true
	})
	if cut < 0 || kept != total-drop {
		return nil, false
	}
	rest = append([]byte{acceptedBlock}, binary.AppendUvarint(nil, uint64(kept))...)
	return append(rest, v[cut:]...), true
}

// acceptedPrunePerAppend bounds how many expired accepted ids one stored
// event removes; it only has to outpace the one id each adds.
const acceptedPrunePerAppend = 8

// pruneAccepted removes the oldest remembered ids that are past
// RememberFor (whole blocks whose newest id is) or beyond MaxRemembered
// (whole blocks, then the oldest ids of the next one), at most about
// acceptedPrunePerAppend per id added, and returns how many it removed.
func (s *Store) pruneAccepted(a *bolt.Bucket, now time.Time, added int) (int, error) {
	cutoff := now.Add(-s.rememberFor)
	count := s.remembered.Load() + int64(added)
	c := a.Cursor()
	n := 0
	for n < acceptedPrunePerAppend*added {
		k, v := c.First()
		if k == nil {
			break
		}
		held := acceptedCount(v)
		excess := count - int64(n) - int64(s.maxRemember)
		if acceptedKeyTime(k).Before(cutoff) || excess >= int64(held) {
			if err := c.Delete(); err != nil {
				return n, err
			}
			n += held
			continue
		}
		if excess <= 0 {
			break
		}
		rest, ok := dropOldestAccepted(v, int(excess))
		if !ok { // malformed: drop it whole
			if err := c.Delete(); err != nil {
				return n, err
			}
			n += held
			continue
		}
		if err := a.Put(slices.Clone(k), rest); err != nil {
			return n, err
		}
		n += int(excess)
		break
	}
	return n, nil
}

// countAccepted returns how many ids the bucket holds.
func countAccepted(a *bolt.Bucket) int64 {
	var n int64
	c := a.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		n += int64(acceptedCount(v))
	}
	return n
}

// acceptedKey orders the accepted bucket by time, then sequence, so pruning
// and AcceptedSince are range scans.
func acceptedKey(at time.Time, seq uint64) []byte {
	return acceptedKeyNanos(max(unixNano(at), 0), seq)
}

func acceptedKeyNanos(at int64, seq uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return binary.BigEndian.AppendUint64(b, seq)
}

func acceptedKeyTime(k []byte) time.Time {
	if len(k) < 8 {
		return time.Time{}
	}
	return fromUnixNano(int64(binary.BigEndian.Uint64(k[:8])))
}

// decodeID reads an id in encodeID's form (see accepted_test.go): a hex
// SHA-256 in 33 bytes behind tag 1, any other id as is behind tag 0.
func decodeID(b []byte) string {
	if len(b) == 33 && b[0] == 1 {
		return hex.EncodeToString(b[1:])
	}
	if len(b) >= 1 {
		return string(b[1:])
	}
	return ""
}
