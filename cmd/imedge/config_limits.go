package main

import (
	"net/netip"

	"github.com/imedge/imedge/receiver"
)

// limitConfig is the per-ClientIP rate limit (package receiver, or
// redisstate when shared).
type limitConfig struct {
	Rate       float64        // --rate; 0 disables
	Burst      int            // --burst
	IPv6Prefix int            // --rate-ipv6-prefix
	MaxKeys    int            // --rate-max-keys
	Exempt     []netip.Prefix // --rate-limit-exempt
}

func (l *limitConfig) register(fs *flagSet) {
	fs.group(groupLimits, func() {
		fs.Float64Var(&l.Rate, "rate", float64(receiver.DefaultLimiterRate), "callbacks per second allowed per ClientIP (0 disables)")
		fs.IntVar(&l.Burst, "burst", receiver.DefaultLimiterBurst, "burst allowed per ClientIP")
		fs.IntVar(&l.IPv6Prefix, "rate-ipv6-prefix", receiver.DefaultLimiterIPv6Prefix, "IPv6 ClientIPs share a limit per prefix of this length")
		fs.IntVar(&l.MaxKeys, "rate-max-keys", receiver.DefaultLimiterMaxKeys, "largest number of ClientIP limiters kept")
		fs.Var(prefixFlag{&l.Exempt}, "rate-limit-exempt", "ClientIP CIDR exempt from the rate limit, e.g. your REST API callers (repeatable)")
	})
}

func (l limitConfig) validate(Config) []error {
	var p problems
	if l.Rate < 0 {
		p.add("--rate must not be negative")
	}
	if l.Rate > 0 && l.Burst < 1 {
		p.add("--burst must be positive")
	}
	if l.IPv6Prefix < 1 || l.IPv6Prefix > 128 {
		p.add("--rate-ipv6-prefix must be 1..128")
	}
	if l.MaxKeys < 1 {
		p.add("--rate-max-keys must be positive")
	}
	return p
}

// options are the in-process limiter's options.
func (l limitConfig) options() receiver.LimiterOptions {
	return receiver.LimiterOptions{Rate: l.Rate, Burst: l.Burst, IPv6Prefix: l.IPv6Prefix, MaxKeys: l.MaxKeys, Exempt: l.Exempt}
}
