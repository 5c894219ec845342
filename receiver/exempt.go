package receiver

import (
	"fmt"
	"net/netip"
)

// ExemptList is a set of networks whose ClientIPs are never rate-limited
// (--rate-limit-exempt). Both the in-process [ClientLimiter] and the shared
// limiter on Redis use it, so that an address is exempt in one exactly when
// it is in the other: IPv4-mapped IPv6 prefixes are stored as IPv4, and an
// address is unmapped (and its zone dropped) before it is looked up. The
// zero value exempts nothing. It is immutable and safe for concurrent use.
type ExemptList struct {
	prefixes []netip.Prefix
}

// NewExemptList returns the list of ps. An invalid prefix is an error
// wrapping [ErrBadLimiterOptions].
func NewExemptList(ps []netip.Prefix) (ExemptList, error) {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			return ExemptList{}, fmt.Errorf("exempt prefix %q is not valid: %w", p.String(), ErrBadLimiterOptions)
		}
		out = append(out, unmapPrefix(p))
	}
	return ExemptList{prefixes: out}, nil
}

// Contains reports whether a falls inside one of the networks.
func (e ExemptList) Contains(a netip.Addr) bool {
	if len(e.prefixes) == 0 {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range e.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Len returns the number of networks.
func (e ExemptList) Len() int { return len(e.prefixes) }

// unmapPrefix turns an IPv4-mapped IPv6 prefix into the IPv4 prefix it
// covers (::ffff:10.0.0.0/104 is 10.0.0.0/8), and masks any prefix.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() {
		bits := max(p.Bits()-96, 0)
		return netip.PrefixFrom(a.Unmap(), bits).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}
