package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/forward"
)

// deliveryConfig is where accepted events go and how (package forward).
type deliveryConfig struct {
	URL         string        // --forward-url
	CAFile      string        // --forward-ca
	CertFile    string        // --forward-cert
	KeyFile     string        // --forward-key
	Timeout     time.Duration // --forward-timeout
	SecretFile  string        // --forward-secret-file
	Secret      []byte        // from SecretFile or IMEDGE_FORWARD_SECRET
	Concurrency int           // --forward-concurrency
	Batch       int           // --forward-batch: events per request; 0 or 1: one
	BatchWait   time.Duration // --forward-batch-wait
	RetryBase   time.Duration // --retry-base
	RetryMax    time.Duration // --retry-max
	MaxAttempts int           // --max-attempts; 0: no limit
	MaxAge      time.Duration // --max-age
	Routes      []route       // --route PATTERN=URL, first match wins
	Permanent   []int         // --permanent-status: statuses dead-lettered at once
	Retain      time.Duration // --retain-delivered; 0 keeps none
}

// route sends the events of the commands matching Pattern to URL. The
// pattern is the destination's stable name: the outbox stores events under
// it, never under the URL (which may carry a secret), so a changed URL
// redirects the events waiting for it.
type route struct {
	Pattern string
	URL     string
}

func (d *deliveryConfig) register(fs *flagSet) {
	fs.group(groupRequired, func() {
		fs.StringVar(&d.URL, "forward-url", "", "internal URL that receives accepted events (http or https)")
	})
	fs.group(groupRouting, func() {
		fs.Var(pathFlag{&d.CAFile}, "forward-ca", "CA bundle trusted for an https forward URL (replaces the system roots)")
		fs.Var(pathFlag{&d.CertFile}, "forward-cert", "client certificate to present to the forward URL")
		fs.Var(pathFlag{&d.KeyFile}, "forward-key", "private key for --forward-cert")
		fs.DurationVar(&d.Timeout, "forward-timeout", forward.DefaultTimeout, "timeout of one delivery attempt")
		fs.Var(pathFlag{&d.SecretFile}, "forward-secret-file", "file holding the Standard Webhooks signing secret (or set IMEDGE_FORWARD_SECRET)")
		fs.IntVar(&d.Concurrency, "forward-concurrency", forward.DefaultConcurrency, "delivery workers (and most connections to the forward URL)")
		fs.IntVar(&d.Batch, "forward-batch", 0, "deliver up to N events per request as a JSON array (0: one event per request)")
		fs.DurationVar(&d.BatchWait, "forward-batch-wait", forward.DefaultBatchWait, "with --forward-batch: how long a batch that is not full waits for more events (0: send at once)")
		fs.DurationVar(&d.RetryBase, "retry-base", forward.DefaultBackoffBase, "first retry backoff (doubles, full jitter)")
		fs.DurationVar(&d.RetryMax, "retry-max", forward.DefaultBackoffMax, "largest retry backoff")
		fs.IntVar(&d.MaxAttempts, "max-attempts", 0, "delivery attempts before dead-lettering (0: no limit, see --max-age)")
		fs.DurationVar(&d.MaxAge, "max-age", forward.DefaultMaxAge, "an event not delivered after this long is dead-lettered")
		fs.Var(routeFlag{&d.Routes}, "route", "PATTERN=URL: deliver the events of the commands matching PATTERN (a CallbackCommand, a family such as Group.*, or *) to URL instead of --forward-url (repeatable; the first match wins; each route has its own queue, workers and share of the outbox)")
		fs.Var(statusListFlag{&d.Permanent}, "permanent-status", "HTTP statuses (400..599) the internal service answers for events it will never take: dead-lettered at once instead of retried (repeatable; default: every non-2xx is retried until --max-age or --max-attempts)")
		fs.DurationVar(&d.Retain, "retain-delivered", forward.DefaultRetainDelivered, "keep delivered events this long so they can be replayed (within the outbox limits, oldest dropped first, never at the cost of a new callback; 0 keeps none)")
	})
}

func (d deliveryConfig) validate(Config) []error {
	var p problems
	if d.URL == "" {
		p.add("--forward-url is required")
	} else if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("--forward-url %q: want an absolute http:// or https:// URL", redactURL(d.URL))
	}
	p.readable("forward-ca", d.CAFile, false)
	if (d.CertFile == "") != (d.KeyFile == "") {
		p.add("--forward-cert and --forward-key go together")
	}
	p.readable("forward-cert", d.CertFile, false)
	p.readable("forward-key", d.KeyFile, false)
	p.positive("forward-timeout", d.Timeout)
	p.positive("retry-base", d.RetryBase)
	p.positive("retry-max", d.RetryMax)
	p.positive("max-age", d.MaxAge)
	if d.RetryMax < d.RetryBase {
		p.add("--retry-max must be at least --retry-base")
	}
	if d.BatchWait < 0 || d.BatchWait > time.Second {
		p.add("--forward-batch-wait %s: want 0 to 1s", d.BatchWait)
	}
	if d.Batch < 0 || d.Batch > forward.MaxBatch {
		p.add("--forward-batch must be 0..%d", forward.MaxBatch)
	}
	if d.Concurrency < 1 || d.Concurrency > 1024 {
		p.add("--forward-concurrency must be 1..1024")
	}
	if d.MaxAttempts < 0 {
		p.add("--max-attempts must not be negative")
	}
	if d.Retain < 0 {
		p.add("--retain-delivered must not be negative")
	}
	seen := map[string]bool{}
	for _, r := range d.Routes {
		if err := catalog.CheckPattern(r.Pattern); err != nil {
			p.add("--route %q: %w", r.Pattern, err)
		}
		if r.Pattern == forward.DefaultDestination || seen[r.Pattern] {
			p.add("--route %q: each route needs its own pattern (and %q names --forward-url's events)", r.Pattern, forward.DefaultDestination)
		}
		seen[r.Pattern] = true
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("--route %s: want an absolute http:// or https:// URL, got %q", r.Pattern, redactURL(r.URL))
		}
	}
	if len(p) == 0 {
		// Load the TLS files and parse the secret as serve will.
		if c, err := forward.NewClient(d.clientOptions(d.URL)); err != nil {
			p = append(p, err)
		} else {
			c.Close()
		}
	}
	return p
}

// destinations lists the outbox's destinations besides the default one:
// the routes' patterns, in order.
func (d deliveryConfig) destinations() []string {
	out := make([]string, len(d.Routes))
	for i, r := range d.Routes {
		out[i] = r.Pattern
	}
	return out
}

// destinationOf is the destination of a command's events: the first
// route whose pattern matches it, else the default one.
func (d deliveryConfig) destinationOf(command string) string {
	for _, r := range d.Routes {
		if catalog.Match(r.Pattern, command) {
			return r.Pattern
		}
	}
	return forward.DefaultDestination
}

// urlOf is a destination's URL.
func (d deliveryConfig) urlOf(dest string) string {
	for _, r := range d.Routes {
		if r.Pattern == dest {
			return r.URL
		}
	}
	return d.URL
}

// retain is the outbox's RetainDelivered for --retain-delivered: its zero
// means the default, so "keep none" is negative.
func (d deliveryConfig) retain() time.Duration {
	if d.Retain == 0 {
		return -1
	}
	return d.Retain
}

// routeFlag is --route PATTERN=URL, repeatable.
type routeFlag struct{ p *[]route }

func (f routeFlag) String() string {
	if f.p == nil {
		return ""
	}
	s := make([]string, len(*f.p))
	for i, r := range *f.p {
		s[i] = r.Pattern + "=" + r.URL
	}
	return strings.Join(s, ",")
}

func (f routeFlag) reset() { *f.p = nil }

// Set takes one PATTERN=URL, or several separated by commas; a URL cannot
// hold a comma.
func (f routeFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		pat, u, ok := strings.Cut(item, "=")
		if !ok || pat == "" || u == "" {
			return fmt.Errorf("%q: want PATTERN=URL, e.g. Group.*=http://groups.internal/im", item)
		}
		*f.p = append(*f.p, route{Pattern: strings.TrimSpace(pat), URL: strings.TrimSpace(u)})
	}
	return nil
}

// statusListFlag collects HTTP status codes.
type statusListFlag struct{ p *[]int }

func (f statusListFlag) String() string {
	if f.p == nil {
		return ""
	}
	s := make([]string, len(*f.p))
	for i, n := range *f.p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (f statusListFlag) reset() { *f.p = nil }

func (f statusListFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		n, err := strconv.Atoi(item)
		if err != nil || n < 400 || n > 599 {
			return fmt.Errorf("%q: want an HTTP status from 400 to 599", item)
		}
		*f.p = append(*f.p, n)
	}
	return nil
}

// clientOptions are the delivery client's options for one destination URL.
func (d deliveryConfig) clientOptions(u string) forward.ClientOptions {
	return forward.ClientOptions{
		URL: u, CAFile: d.CAFile, CertFile: d.CertFile, KeyFile: d.KeyFile,
		Timeout: d.Timeout, SigningSecret: d.Secret, MaxConns: d.Concurrency,
	}
}

// redactURL drops userinfo and query from u for logs and errors: they may
// carry a secret.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	out := p.Scheme + "://"
	if p.User != nil {
		out += "…@"
	}
	out += p.Host + p.EscapedPath()
	if p.RawQuery != "" {
		out += "?…"
	}
	return out
}
