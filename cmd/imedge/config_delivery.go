package main

import (
	"net/url"
	"time"

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

// clientOptions are the delivery client's options for one destination URL.
func (d deliveryConfig) clientOptions(u string) forward.ClientOptions {
	return forward.ClientOptions{
		URL: u, CAFile: d.CAFile, CertFile: d.CertFile, KeyFile: d.KeyFile,
		Timeout: d.Timeout, SigningSecret: d.Secret, MaxConns: d.Concurrency,
	}
}

// redactURL drops userinfo and query from u for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	if p.User != nil {
		p.User = url.User("…")
	}
	if p.RawQuery != "" {
		p.RawQuery = "…"
	}
	p.Fragment = ""
	return p.String()
}
