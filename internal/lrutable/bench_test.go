package lrutable

import (
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/imedge/imedge/internal/testkit"
)

// randomKeys returns n distinct random keys, as salted digests are.
func randomKeys(n int) [][16]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][16]byte, n)
	for i := range keys {
		var k [16]byte
		for j := 0; j < 16; j += 8 {
			u := rng.Uint64()
			for b := range 8 {
				k[j+b] = byte(u >> (8 * b))
			}
		}
		keys[i] = k
	}
	return keys
}

// benchHashes are the hash functions compared: SeededHash (the default,
// maphash.Bytes over the key), maphash.Comparable, and DigestHash.
func benchHashes() []struct {
	name string
	hash func([16]byte) uint64
} {
	seed := maphash.MakeSeed()
	return []struct {
		name string
		hash func([16]byte) uint64
	}{
		{"seeded", SeededHash()},
		{"maphash.Comparable", func(k [16]byte) uint64 { return maphash.Comparable(seed, k) }},
		{"digest", DigestHash},
	}
}

// BenchmarkTable_Get measures hits, in random order, in a table of n keys.
func BenchmarkTable_Get(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		keys := randomKeys(n)
		order := rand.New(rand.NewPCG(3, 4)).Perm(n)
		for _, h := range benchHashes() {
			b.Run(h.name+"/keys="+strconv.Itoa(n), func(b *testing.B) {
				tab := New[[2]int64](Options{Max: n, Hash: h.hash})
				for _, k := range keys {
					tab.Add(k)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					v, ok := tab.Get(keys[order[i&(n-1)]])
					if !ok {
						b.Fatal("miss")
					}
					v[0]++
					i++
				}
			})
		}
	}
}

// BenchmarkTable_AddRemoveOldest measures a new key entering a full table
// of n keys: RemoveOldest, then Add (the limiter's and the dedupe set's
// insertion path at their bound).
func BenchmarkTable_AddRemoveOldest(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		keys := randomKeys(2 * n)
		for _, h := range benchHashes() {
			b.Run(h.name+"/keys="+strconv.Itoa(n), func(b *testing.B) {
				tab := New[[2]int64](Options{Max: n, Hash: h.hash})
				for _, k := range keys[:n] {
					tab.Add(k)
				}
				b.ReportAllocs()
				i := n
				for b.Loop() {
					if _, _, ok := tab.RemoveOldest(); !ok {
						b.Fatal("empty")
					}
					tab.Add(keys[i%len(keys)]) // the removed keys come back after n more
					i++
				}
			})
		}
	}
}

// BenchmarkTable_Memory_1MKeys reports the live heap per key (and, on
// Linux, the growth of the resident set) of a table filled with 2²⁰ keys,
// with values the size of the limiter's bucket (16 B) and of the dedupe
// set's window end (8 B), with and without Options.Max. Run with
// -benchtime=1x.
func BenchmarkTable_Memory_1MKeys(b *testing.B) {
	const n = 1 << 20
	keys := randomKeys(n)
	b.Run("value=16B/Max", func(b *testing.B) { memoryBench(b, keys, func() any { return fill[[2]int64](keys, n) }) })
	b.Run("value=16B/noMax", func(b *testing.B) { memoryBench(b, keys, func() any { return fill[[2]int64](keys, 0) }) })
	b.Run("value=8B/Max", func(b *testing.B) { memoryBench(b, keys, func() any { return fill[int64](keys, n) }) })
	b.Run("value=8B/noMax", func(b *testing.B) { memoryBench(b, keys, func() any { return fill[int64](keys, 0) }) })
}

func fill[V any](keys [][16]byte, bound int) *Table[V] {
	tab := New[V](Options{Max: bound})
	for _, k := range keys {
		tab.Add(k)
	}
	return tab
}

func memoryBench(b *testing.B, keys [][16]byte, build func() any) {
	testkit.ReportMemory(b, len(keys), build)
}
