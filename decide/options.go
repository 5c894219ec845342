package decide

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/receiver"
)

// Defaults of the decision path, defined here once: imedge serve's flags,
// its example config and its reference docs take them from these
// constants.
const (
	// DefaultTimeout bounds one decision, from the validated callback to
	// the decision service's checked reply (--decide-timeout). IM waits 2 s
	// for its answer, network time included.
	DefaultTimeout = 1500 * time.Millisecond
	// MaxTimeout is the largest Timeout accepted: 100 ms of IM's 2 s stay
	// for the network between IM and imedge.
	MaxTimeout = 1900 * time.Millisecond
	// DefaultMaxConns is the number of connections kept per decision
	// service, in use and idle together. Calls beyond it wait for a
	// connection within their budget. At 2 ms per decision it carries more
	// than 100 000 decisions a second; needing more means the service is
	// slow, and then the budget and the circuit breaker answer instead.
	DefaultMaxConns = 256
	// DefaultIdleTimeout is how long an idle connection to a decision
	// service is kept open for the next call.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultCacheEntries bounds the decisions remembered for repeated
	// callbacks (see [Options.CacheTTL]).
	DefaultCacheEntries = 10_000
	// DefaultCacheBytes bounds their relayed bodies, key and bookkeeping
	// included (about 150 bytes per entry besides the body).
	DefaultCacheBytes = 16 << 20
	// DefaultBreakerFailures is the number of consecutive failed calls
	// (time-out, connection error, non-2xx) after which a decision
	// service's circuit opens.
	DefaultBreakerFailures = 5
	// DefaultBreakerCoolDown is how long an open circuit answers every
	// callback with its fallback before one trial call is let through.
	DefaultBreakerCoolDown = time.Second
	// MaxReplyBytes bounds a decision service's reply; a longer one is a
	// bad reply. IM caps a message at 12 KB, so no valid rewrite comes
	// near it.
	MaxReplyBytes = 64 << 10
)

// Options configures [New]. The zero value is usable: every Before and
// Reply command is then answered in observe mode with the allow fallback.
// New copies what it needs.
type Options struct {
	// Catalog is the command table; nil means catalog.New().
	Catalog *catalog.Catalog
	// Targets are the decision services, the first whose Pattern matches
	// a command answering it. A Before or Reply command no Target matches
	// is in observe mode: answered with its fallback at once, and handed
	// on to be stored when Observe says so (see receiver.Decision.Observe).
	Targets []Target
	// Observe reports whether a command in observe mode is also stored:
	// its Decision then asks the receiver to hand the event to the Sink
	// after answering. imedge serve passes "a --route names the command".
	// Nil stores none. It is called at New only.
	Observe func(command string) bool
	// Fallbacks choose each command's fallback, the first whose Pattern
	// matches deciding; a command none matches falls back to allow (IM's
	// own default).
	Fallbacks []FallbackRule
	// Timeout bounds one decision: waiting for a connection, the request
	// and the reply. Zero means [DefaultTimeout]; above [MaxTimeout] is an
	// error.
	Timeout time.Duration
	// CAFile is a PEM bundle of CAs for https decision services; empty
	// means the system roots. CertFile and KeyFile are a client
	// certificate for services that require mutual TLS: both or neither.
	// imedge serve passes the delivery settings (--forward-ca, --forward-cert,
	// --forward-key).
	CAFile, CertFile, KeyFile string
	// SigningSecret signs every call as deliveries are signed (Standard
	// Webhooks; "whsec_" base64 or raw bytes); empty means unsigned. It is
	// never logged.
	SigningSecret []byte
	// MaxConns bounds the connections per decision service; zero means
	// [DefaultMaxConns].
	MaxConns int
	// CacheTTL is how long a decision answers an identical callback (same
	// event id, ClientIP and OptPlatform) without a second call: imedge
	// serve passes --sign-window, the time IM's signature stays valid, since
	// a decision can go stale. Zero means receiver.DefaultSignWindow;
	// negative turns the cache off.
	CacheTTL time.Duration
	// CacheEntries and CacheBytes bound the cache; zero means
	// [DefaultCacheEntries] and [DefaultCacheBytes].
	CacheEntries int
	CacheBytes   int64
	// BreakerFailures and BreakerCoolDown tune the circuit breaker (see
	// the package documentation); zero means [DefaultBreakerFailures] and
	// [DefaultBreakerCoolDown].
	BreakerFailures int
	BreakerCoolDown time.Duration
	// Logger receives circuit changes (Warn when one opens, Info when it
	// closes), observe mode at start (Info, once per command) and one Debug
	// line per failed call; nil discards.
	Logger *slog.Logger
	// Now is the clock of the cache, the circuit breaker, the latency
	// histogram and the signature timestamp; nil means time.Now. The call
	// itself is bounded by real time.
	Now func() time.Time
}

// Target is one decision service: the commands it answers and its URL.
type Target struct {
	// Pattern is a command pattern (see catalog.CheckPattern): an exact
	// command, a family such as "Group.*", or "*".
	Pattern string
	// URL is the service's http or https URL. IM's query string, without
	// Sign and RequestTime, is appended to it.
	URL string
}

// ParseTarget reads "PATTERN=URL", the form of --decide.
func ParseTarget(s string) (Target, error) {
	p, u, ok := strings.Cut(s, "=")
	if !ok {
		return Target{}, fmt.Errorf("parsing %q: %w: want PATTERN=URL", redact(s), ErrInvalidOptions)
	}
	t := Target{Pattern: strings.TrimSpace(p), URL: strings.TrimSpace(u)}
	if err := catalog.CheckPattern(t.Pattern); err != nil {
		return Target{}, fmt.Errorf("parsing decision target: %w", err)
	}
	if _, err := parseURL(t.URL); err != nil {
		return Target{}, err
	}
	return t, nil
}

// String returns "PATTERN=URL" with the URL's credentials and query left
// out.
func (t Target) String() string { return t.Pattern + "=" + redactURL(t.URL) }

// FallbackRule chooses the fallback of the commands its Pattern matches.
type FallbackRule struct {
	// Pattern is a command pattern (see catalog.CheckPattern).
	Pattern string
	// Deny refuses; false allows.
	Deny bool
	// Code is the deny code; zero means the command's default
	// (catalog.Command.DefaultDenyCode).
	Code int
}

// ParseFallback reads "PATTERN=allow", "PATTERN=deny" or
// "PATTERN=deny:CODE", the form of --decide-fallback.
func ParseFallback(s string) (FallbackRule, error) {
	p, v, ok := strings.Cut(s, "=")
	if !ok {
		return FallbackRule{}, fmt.Errorf("parsing %q: %w: want PATTERN=allow, PATTERN=deny or PATTERN=deny:CODE", s, ErrInvalidOptions)
	}
	r := FallbackRule{Pattern: strings.TrimSpace(p)}
	if err := catalog.CheckPattern(r.Pattern); err != nil {
		return FallbackRule{}, fmt.Errorf("parsing fallback: %w", err)
	}
	switch v = strings.TrimSpace(v); {
	case v == "allow":
	case v == "deny":
		r.Deny = true
	case strings.HasPrefix(v, "deny:"):
		code, err := strconv.Atoi(v[len("deny:"):])
		if err != nil || code <= 0 {
			return FallbackRule{}, fmt.Errorf("parsing fallback %q: %w: the deny code must be a positive integer", s, ErrInvalidOptions)
		}
		r.Deny, r.Code = true, code
	default:
		return FallbackRule{}, fmt.Errorf("parsing fallback %q: %w: want allow, deny or deny:CODE", s, ErrInvalidOptions)
	}
	return r, nil
}

// String returns the rule's value as written: "allow", "deny" or
// "deny:CODE".
func (r FallbackRule) String() string {
	switch {
	case !r.Deny:
		return "allow"
	case r.Code == 0:
		return "deny"
	}
	return "deny:" + strconv.Itoa(r.Code)
}

// withDefaults checks o and returns a copy with defaults filled in.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, a ...any) (Options, error) {
		return o, fmt.Errorf("configuring the decision path: %w: %s", ErrInvalidOptions, fmt.Sprintf(format, a...))
	}
	switch {
	case o.Timeout < 0, o.MaxConns < 0, o.CacheEntries < 0, o.CacheBytes < 0, o.BreakerFailures < 0, o.BreakerCoolDown < 0:
		return bad("negative limit")
	case o.Timeout > MaxTimeout:
		return o, fmt.Errorf("configuring the decision path: timeout %s above %s: %w", o.Timeout, MaxTimeout, ErrTimeoutTooLong)
	case (o.CertFile == "") != (o.KeyFile == ""):
		return bad("CertFile and KeyFile go together")
	}
	if o.Catalog == nil {
		o.Catalog = catalog.New()
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = receiver.DefaultSignWindow
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	if o.BreakerCoolDown == 0 {
		o.BreakerCoolDown = DefaultBreakerCoolDown
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Targets = append([]Target(nil), o.Targets...)
	o.Fallbacks = append([]FallbackRule(nil), o.Fallbacks...)
	return o, nil
}

// parseURL checks a decision service URL: absolute http or https with a
// host. Errors never repeat the URL's credentials.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return nil, fmt.Errorf("parsing decision URL: %w: %w", ErrInvalidOptions, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("checking decision URL %q: %w: want an absolute http:// or https:// URL", redactURL(s), ErrInvalidOptions)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("checking decision URL %q: %w: no #fragment", redactURL(s), ErrInvalidOptions)
	}
	return u, nil
}

// redactURL drops userinfo and query from a URL for logs, errors and
// /status.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("…")
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

// redact returns "PATTERN=URL" with the URL redacted, or a placeholder.
func redact(s string) string {
	if p, u, ok := strings.Cut(s, "="); ok {
		return p + "=" + redactURL(u)
	}
	if strings.Contains(s, "://") {
		return redactURL(s)
	}
	return s
}
