package dedupe

import (
	"crypto/rand"
	"crypto/sha256"
)

// digest is the fixed-size form in which a Set stores a key: the first 128
// bits of SHA-256(salt ‖ key). A 16-byte array kept inline in the table's
// slot, instead of a string header plus a separately allocated string, keeps
// the table free of pointers and small (BenchmarkMemory_1MKeys: ~40 B/key).
// Being uniformly random and salted, its first 8 bytes also serve as the
// table's hash (lrutable.DigestHash).
//
// Two distinct keys share a digest with probability about n²/2¹²⁹ for n keys
// (below 10⁻²⁶ for a million), and the per-Set random salt means nobody can
// search for a colliding pair offline. The salt changes on restart, which is
// harmless: [Set.Load] re-inserts the original keys.
type digest [16]byte

// salt is a per-Set random prefix for key hashing.
type salt [16]byte

func newSalt() salt {
	var s salt
	_, _ = rand.Read(s[:]) // crypto/rand.Read never returns an error
	return s
}

// digestOf maps key to its digest under s.
func (s *salt) digestOf(key string) digest {
	buf := make([]byte, 0, len(s)+64) // fits a hex SHA-256 key without a heap allocation
	buf = append(buf, s[:]...)
	buf = append(buf, key...)
	sum := sha256.Sum256(buf)
	return digest(sum[:len(digest{})])
}
