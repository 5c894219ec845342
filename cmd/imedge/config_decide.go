package main

import (
	"fmt"
	"time"

	"github.com/imedge/imedge/decide"
	"github.com/imedge/imedge/receiver"
)

// groupDecide is the help section of the decision path's flags.
const groupDecide = "Before-callbacks (decisions)"

// decideConfig is the decision path for the callbacks whose reply IM acts
// on (package decide): where each is decided, its fallback, its budget and
// its own rate limit. The TLS files and signing secret are the delivery's.
type decideConfig struct {
	Targets   []string      // --decide PATTERN=URL, repeatable, first match wins
	Fallbacks []string      // --decide-fallback PATTERN=allow|deny[:CODE], repeatable, first match wins
	Timeout   time.Duration // --decide-timeout
	Rate      float64       // --decide-rate: before-callbacks per second per ClientIP; 0 disables
	Burst     int           // --decide-burst
}

func (d *decideConfig) register(fs *flagSet) {
	fs.group(groupDecide, func() {
		fs.Var(listFlag{&d.Targets}, "decide", "PATTERN=URL: before-callbacks matching PATTERN (a command, Family.* or *) are decided by the service at URL, synchronously, its checked reply relayed to IM (repeatable, first match wins); a before-callback no --decide matches is in observe mode: answered with its fallback, and stored for a --route that names it")
		fs.Var(listFlag{&d.Fallbacks}, "decide-fallback", "PATTERN=allow|deny[:CODE]: the answer when no decision can be had (time-out, error, bad reply, circuit open, or a refusal that is not an authentication failure) and in observe mode (repeatable, first match wins; default allow, IM's own default)")
		fs.DurationVar(&d.Timeout, "decide-timeout", decide.DefaultTimeout, "bound of one decision, waiting for a connection included (at most "+decide.MaxTimeout.String()+": IM waits 2s)")
		fs.Float64Var(&d.Rate, "decide-rate", 0, "before-callbacks per second allowed per ClientIP, answered with their fallback beyond it (0 disables; --rate does not apply to them)")
		fs.IntVar(&d.Burst, "decide-burst", receiver.DefaultLimiterBurst, "burst allowed per ClientIP by --decide-rate")
	})
}

func (d decideConfig) validate(c Config) []error {
	var p problems
	if d.Timeout <= 0 || d.Timeout > decide.MaxTimeout {
		p.add("--decide-timeout %s: want more than 0 and at most %s (IM waits 2s for its answer)", d.Timeout, decide.MaxTimeout)
	}
	if d.Rate < 0 {
		p.add("--decide-rate must not be negative")
	}
	if d.Rate > 0 && d.Burst < 1 {
		p.add("--decide-burst must be positive")
	}
	o, errs := d.options(c)
	p = append(p, errs...)
	if len(p) == 0 {
		// Check the patterns against the catalog, the deny codes per
		// command and the TLS files, as serve will.
		svc, err := decide.New(o)
		if err != nil {
			return []error{fmt.Errorf("--decide, --decide-fallback: %w", err)}
		}
		svc.Close()
	}
	return p
}

// options are the decision path's options; errs lists the flag values that
// do not parse.
func (d decideConfig) options(c Config) (decide.Options, []error) {
	o := decide.Options{
		Timeout: d.Timeout, CacheTTL: c.IM.SignWindow, SigningSecret: c.Delivery.Secret,
		CAFile: c.Delivery.CAFile, CertFile: c.Delivery.CertFile, KeyFile: c.Delivery.KeyFile,
	}
	var errs []error
	for _, s := range d.Targets {
		t, err := decide.ParseTarget(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--decide: %w", err))
			continue
		}
		o.Targets = append(o.Targets, t)
	}
	for _, s := range d.Fallbacks {
		r, err := decide.ParseFallback(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--decide-fallback: %w", err))
			continue
		}
		o.Fallbacks = append(o.Fallbacks, r)
	}
	return o, errs
}

// limiterOptions are the options of the before-callbacks' own limiter; the
// IPv6 grouping, table size and exempt networks are --rate's.
func (d decideConfig) limiterOptions(l limitConfig) receiver.LimiterOptions {
	return receiver.LimiterOptions{Rate: d.Rate, Burst: d.Burst, IPv6Prefix: l.IPv6Prefix, MaxKeys: l.MaxKeys, Exempt: l.Exempt}
}
