package lrutable

import (
	"encoding/binary"
	"hash/maphash"
)

// SeededHash returns a hash function for [Options.Hash] keyed by a fresh
// random seed. Keys an attacker chooses (client addresses) need such a hash:
// without the seed, the attacker cannot pick keys that collide in the
// index. Each call returns a function with its own seed. The function is
// safe for concurrent use.
func SeededHash() func([16]byte) uint64 {
	seed := maphash.MakeSeed()
	return func(k [16]byte) uint64 {
		return maphash.Bytes(seed, k[:]) // a little faster than maphash.Comparable (BenchmarkTable_*)
	}
}

// DigestHash returns the first 8 bytes of k as a little-endian integer. It
// is a fine hash, and the cheapest, for keys that are already uniformly
// random and unpredictable to an attacker, such as salted cryptographic
// digests. It must not be used for keys an attacker can choose.
func DigestHash(k [16]byte) uint64 {
	return binary.LittleEndian.Uint64(k[:8])
}
