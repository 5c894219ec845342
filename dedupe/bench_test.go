package dedupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/internal/testkit"
)

// BenchmarkSet_ClaimSettle measures the path of a new event: Claim returns
// true and Settle marks the key seen. Keys repeat only after their window
// ended, so every Claim is new (and drops one expired key).
func BenchmarkSet_ClaimSettle(b *testing.B) {
	const ring = 1 << 12
	keys := make([]string, ring)
	for i := range keys {
		keys[i] = key(i)
	}
	var now time.Time
	s, err := dedupe.New(dedupe.Options{TTL: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond) // a key comes back after 4 s > TTL
		k := keys[i%ring]
		ok, err := s.Claim(ctx, k)
		if err != nil || !ok {
			b.Fatalf("Claim = %v, %v; want true, nil", ok, err)
		}
		s.Settle(k, true)
		i++
	}
}

// BenchmarkSet_ClaimDuplicate measures the path of a retried event: Claim
// finds the key seen and returns false.
func BenchmarkSet_ClaimDuplicate(b *testing.B) {
	const ring = 1 << 12
	s, err := dedupe.New(dedupe.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	keys := make([]string, ring)
	for i := range keys {
		keys[i] = key(i)
		if _, err := s.Claim(ctx, keys[i]); err != nil {
			b.Fatal(err)
		}
		s.Settle(keys[i], true)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if ok, err := s.Claim(ctx, keys[i%ring]); err != nil || ok {
			b.Fatalf("Claim = %v, %v; want false, nil", ok, err)
		}
		i++
	}
}

// BenchmarkMemory_1MKeys reports the live heap (and, on Linux, the growth of
// the resident set) of a Set holding 2²⁰ accepted keys (64-character hex, as
// the receiver uses). Run with -benchtime=1x.
func BenchmarkMemory_1MKeys(b *testing.B) {
	const n = 1 << 20
	ctx := context.Background()
	testkit.ReportMemory(b, n, func() any {
		s, err := dedupe.New(dedupe.Options{Size: n})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			k := key(i)
			if _, err := s.Claim(ctx, k); err != nil {
				b.Fatal(err)
			}
			s.Settle(k, true)
		}
		if got := s.Stats().Len; got != n {
			b.Fatalf("Len = %d, want %d", got, n)
		}
		return s
	})
}
