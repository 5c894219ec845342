package egress_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/egress"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := egress.ParseEntry(s)
		require.NoError(t, err, s)
		out = append(out, p)
	}
	return out
}

func TestSet_Contains(t *testing.T) {
	s := egress.NewSet(prefixes(t, "183.192.202.0/25", "127.0.0.2", "10.1.0.0/16", "10.1.2.0/24",
		"2001:db8:1::/48", "2001:db8:2::7", "::ffff:192.0.2.0/120"))
	for _, tc := range []struct {
		addr string
		in   bool
	}{
		{"183.192.202.0", true},
		{"183.192.202.127", true},
		{"183.192.202.128", false},
		{"183.192.201.255", false},
		{"127.0.0.2", true},
		{"127.0.0.1", false},
		{"127.0.0.3", false},
		{"10.1.255.255", true},
		{"10.2.0.0", false},
		{"::ffff:183.192.202.5", true}, // a mapped peer matches as IPv4
		{"192.0.2.200", true},          // a mapped prefix became IPv4
		{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:db8:2::7", true},
		{"2001:db8:2::8", false},
		{"2001:db8::1", false},
		{"::ffff:127.0.0.1", false},
	} {
		assert.Equal(t, tc.in, s.Contains(netip.MustParseAddr(tc.addr)), tc.addr)
	}
	assert.False(t, s.Contains(netip.Addr{}), "the zero address never matches")
	assert.Equal(t, 7, s.Len())

	var empty *egress.Set
	assert.False(t, empty.Contains(netip.MustParseAddr("127.0.0.2")))
	assert.Zero(t, empty.Len())
	assert.False(t, egress.NewSet(nil).Contains(netip.MustParseAddr("0.0.0.0")))
}

func TestSet_CanonicalAndEqual(t *testing.T) {
	a := egress.NewSet([]netip.Prefix{netip.MustParsePrefix("10.0.0.7/24"), netip.MustParsePrefix("10.0.0.0/24"),
		netip.MustParsePrefix("::ffff:10.0.1.0/120")})
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.0/24")},
		a.Prefixes(), "masked, unmapped, deduplicated, sorted")
	b := egress.NewSet(prefixes(t, "10.0.1.0/24", "10.0.0.0/24"))
	assert.True(t, a.Equal(b))
	assert.False(t, a.Equal(egress.NewSet(prefixes(t, "10.0.1.0/24"))))
	assert.True(t, (*egress.Set)(nil).Equal(egress.NewSet(nil)))

	got := a.Prefixes()
	got[0] = netip.MustParsePrefix("1.2.3.4/32")
	assert.Equal(t, netip.MustParsePrefix("10.0.0.0/24"), a.Prefixes()[0], "Prefixes returns a copy")
}

// The merged range table agrees with checking every prefix in turn, on
// random prefixes (overlapping, adjacent and nested) and addresses near
// their edges.
func TestSet_AgreesWithLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var ps []netip.Prefix
		for range 1 + r.IntN(40) {
			if r.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
				ps = append(ps, netip.PrefixFrom(a, 16+r.IntN(17)).Masked())
			} else {
				var b [16]byte
				b[0], b[1], b[2] = 0x20, 0x01, byte(r.IntN(2))
				b[15] = byte(r.IntN(256))
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(b), 32+r.IntN(97)).Masked())
			}
		}
		s := egress.NewSet(ps)
		probe := func(a netip.Addr) {
			want := false
			for _, p := range ps {
				want = want || p.Contains(a)
			}
			if !assert.Equal(t, want, s.Contains(a), "round %d: %s in %v", round, a, ps) {
				t.FailNow()
			}
		}
		for _, p := range ps {
			first := p.Addr()
			probe(first)
			probe(first.Prev())
			last := lastAddr(p)
			probe(last)
			probe(last.Next())
		}
		for range 200 {
			probe(netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))}))
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestSet_ContainsAllocatesNothing(t *testing.T) {
	s := egress.NewSet(prefixes(t, "183.192.202.0/25", "2001:db8::/48", "10.0.0.0/24"))
	a, b := netip.MustParseAddr("183.192.202.9"), netip.MustParseAddr("2001:db9::1")
	allocs := testing.AllocsPerRun(1000, func() {
		_ = s.Contains(a)
		_ = s.Contains(b)
	})
	assert.Zero(t, allocs)
}

func TestParseEntry(t *testing.T) {
	for in, want := range map[string]string{
		"183.192.202.0/25":   "183.192.202.0/25",
		" 127.0.0.2 ":        "127.0.0.2/32",
		"10.1.2.3/16":        "10.1.0.0/16",
		"2001:db8::1":        "2001:db8::1/128",
		"2001:db8::/32":      "2001:db8::/32",
		"::ffff:1.2.3.0/120": "1.2.3.0/24",
	} {
		p, err := egress.ParseEntry(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, p.String(), in)
		}
	}
	for _, in := range []string{"", "garbage", "1.2.3.4/33", "1.2.3.256", "0.0.0.0/0", "10.0.0.0/15",
		"::/0", "2001:db8::/31", "fe80::1%eth0", "::ffff:0.0.0.0/80", "1.2.3.4/24/1",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb/128"} {
		_, err := egress.ParseEntry(in)
		assert.Error(t, err, "%q", in)
	}
}

func BenchmarkSet_Contains(b *testing.B) {
	var ps []netip.Prefix
	for i := range 256 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{43, byte(i), 7, 0}), 25))
	}
	s := egress.NewSet(ps)
	a := netip.MustParseAddr("43.100.7.77")
	for b.Loop() {
		if !s.Contains(a) {
			b.Fatal("not found")
		}
	}
}
