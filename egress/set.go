package egress

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Bounds on what an answer may list. An entry broader than the minimum
// prefix length is skipped as malformed: IM's egress ranges are small
// (a /25 in its documentation), and a bug or a bad answer that listed
// 0.0.0.0/0 would otherwise turn the allow-list off without a trace.
const (
	MinIPv4Bits = 16 // IPv4 entries broader than a /16 are skipped
	MinIPv6Bits = 32 // IPv6 entries broader than a /32 are skipped
)

// maxEntryLen bounds an IPList entry: the longest IPv6 CIDR is 43 bytes.
const maxEntryLen = 64

// Set is an immutable set of IP networks: IM's egress list as published
// by a [Source]. Lookups cost a binary search over merged address ranges
// and allocate nothing. The zero value and a nil *Set are empty. Safe for
// concurrent use.
type Set struct {
	prefixes []netip.Prefix // canonical (masked, IPv4 unmapped), sorted, no duplicates
	spans    []span         // the prefixes' address ranges, merged and sorted
}

// u128 is an IP address as a 128-bit number; IPv4 addresses are
// IPv4-mapped (::ffff:a.b.c.d) so that one table holds both families.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// next returns a+1 and whether it did not overflow.
func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// span is an inclusive address range.
type span struct{ lo, hi u128 }

// NewSet returns the set of the given networks. Prefixes are masked,
// IPv4-mapped IPv6 prefixes of /96 or longer become IPv4, duplicates are
// dropped; invalid prefixes are ignored (ParseEntry validates input).
func NewSet(prefixes []netip.Prefix) *Set {
	s := &Set{prefixes: make([]netip.Prefix, 0, len(prefixes))}
	for _, p := range prefixes {
		if p, ok := canonical(p); ok {
			s.prefixes = append(s.prefixes, p)
		}
	}
	slices.SortFunc(s.prefixes, netip.Prefix.Compare)
	s.prefixes = slices.Compact(s.prefixes)

	spans := make([]span, 0, len(s.prefixes))
	for _, p := range s.prefixes {
		spans = append(spans, prefixSpan(p))
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	for _, sp := range spans {
		if n := len(s.spans); n > 0 {
			last := &s.spans[n-1]
			// Merge overlapping and adjacent ranges.
			if after, ok := last.hi.next(); !ok || !after.less(sp.lo) {
				if last.hi.less(sp.hi) {
					last.hi = sp.hi
				}
				continue
			}
		}
		s.spans = append(s.spans, sp)
	}
	return s
}

// canonical masks p and unmaps an IPv4-mapped prefix.
func canonical(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// prefixSpan is the address range of a canonical prefix.
func prefixSpan(p netip.Prefix) span {
	lo := toU128(p.Addr())
	host := 128 - p.Bits()
	if p.Addr().Is4() {
		host = 32 - p.Bits()
	}
	hi := lo
	switch {
	case host >= 64:
		hi.lo = ^uint64(0)
		hi.hi |= ^uint64(0) >> (128 - host)
	case host > 0:
		hi.lo |= ^uint64(0) >> (64 - host)
	}
	return span{lo, hi}
}

// Contains reports whether a is in one of the set's networks. An
// IPv4-mapped IPv6 address matches as IPv4; an invalid address never
// matches.
func (s *Set) Contains(a netip.Addr) bool {
	if s == nil || !a.IsValid() {
		return false
	}
	x := toU128(a.Unmap())
	// The first span starting after x; x is inside the one before it.
	i, _ := slices.BinarySearchFunc(s.spans, x, func(sp span, x u128) int {
		if x.less(sp.lo) {
			return 1
		}
		return -1
	})
	return i > 0 && !s.spans[i-1].hi.less(x)
}

// Len returns the number of distinct networks in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.prefixes)
}

// Prefixes returns a copy of the set's networks, sorted.
func (s *Set) Prefixes() []netip.Prefix {
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes)
}

// Equal reports whether s and t hold the same networks.
func (s *Set) Equal(t *Set) bool {
	return slices.Equal(s.sorted(), t.sorted())
}

func (s *Set) sorted() []netip.Prefix {
	if s == nil {
		return nil
	}
	return s.prefixes
}

// diff returns the networks in next but not in prev, and those in prev but
// not in next, each sorted.
func diff(prev, next *Set) (added, removed []netip.Prefix) {
	a, b := prev.sorted(), next.sorted()
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(a) == 0:
			added, b = append(added, b[0]), b[1:]
		case len(b) == 0:
			removed, a = append(removed, a[0]), a[1:]
		default:
			switch c := a[0].Compare(b[0]); {
			case c < 0:
				removed, a = append(removed, a[0]), a[1:]
			case c > 0:
				added, b = append(added, b[0]), b[1:]
			default:
				a, b = a[1:], b[1:]
			}
		}
	}
	return added, removed
}

// ParseEntry parses one IPList entry: an address (a single-address
// network) or a CIDR range, IPv4 or IPv6. It refuses zones and ranges
// broader than MinIPv4Bits or MinIPv6Bits. The result is canonical
// (masked, IPv4-mapped unmapped).
func ParseEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxEntryLen {
		return netip.Prefix{}, fmt.Errorf("parsing entry %q…: longer than %d bytes", s[:maxEntryLen], maxEntryLen)
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("parsing entry %q: %w", s, err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parsing entry %q: %w", s, err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("parsing entry %q: an address with a zone", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p, ok := canonical(p)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("parsing entry %q: not a plain network", s)
	}
	if least := minBits(p.Addr()); p.Bits() < least {
		return netip.Prefix{}, fmt.Errorf("parsing entry %q: broader than /%d", s, least)
	}
	return p, nil
}

func minBits(a netip.Addr) int {
	if a.Is4() {
		return MinIPv4Bits
	}
	return MinIPv6Bits
}
