package egress

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode"
)

// NetType selects one of the lists GetIPList returns. Only the two callback
// egress lists are accepted; 0–4 name IM's SDK access addresses, which are
// not where callbacks come from.
type NetType int

// The callback egress lists.
const (
	NetTypeChina   NetType = 5 // IM's callback egress addresses in the Chinese mainland and Hong Kong
	NetTypeOutside NetType = 6 // IM's callback egress addresses outside China
)

// String returns the decimal nettype.
func (n NetType) String() string { return strconv.Itoa(int(n)) }

// Defaults applied to zero Options fields, and bounds on IM's answer.
const (
	// DefaultInterval is the time between two fetches after a success. The
	// list changes rarely (expansions, data-centre moves), and IM allows
	// 200 calls a second, so ten minutes costs nothing and bounds how long
	// a new egress address is refused.
	DefaultInterval = 10 * time.Minute
	// DefaultStaleAfter is how many intervals may pass without a successful
	// fetch before the list is reported stale: one lost fetch is noise,
	// three in a row (30 minutes at the default interval) is an outage the
	// operator should see.
	DefaultStaleAfter = 3
	// DefaultFetchTimeout bounds one GetIPList call: connect, TLS, request
	// and the whole answer.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultRetryMin is the first delay after a failed or empty fetch; it
	// doubles per failure up to DefaultRetryMax (or the interval, if
	// shorter). Each delay is jittered to between half and all of itself.
	DefaultRetryMin = 5 * time.Second
	// DefaultRetryMax caps the retry delay.
	DefaultRetryMax = 5 * time.Minute
	// DefaultUserSigLifetime is the validity of the UserSig made for each
	// call. It is a fresh admin credential per call, so it only has to
	// outlive the call and a small clock difference with IM.
	DefaultUserSigLifetime = 10 * time.Minute
	// DefaultStartWait is how long a caller should wait for the first list
	// before it starts listening without one (see Source.WaitReady): one
	// fetch timeout and a first retry.
	DefaultStartWait = 15 * time.Second

	// MaxResponseBytes bounds a GetIPList answer; a larger one is refused.
	MaxResponseBytes = 1 << 20
	// MaxEntries bounds the IPList of one answer; a longer one is refused
	// whole.
	MaxEntries = 4096
)

// maxIdentifierLen bounds Options.Identifier (IM's account IDs are at most
// 32 bytes).
const maxIdentifierLen = 128

// Options configures a Client and a Source. AppID, Identifier, SecretKey
// and one of Region or BaseURL are required; zero durations take the
// defaults above. New copies the Options (and the key).
type Options struct {
	// AppID is the IM app's SDKAppID.
	AppID uint64
	// Identifier is an admin account of the app (not secret).
	Identifier string
	// SecretKey is the app's secret key, the UserSig's HMAC key. It is
	// never logged and never appears in an error or a Status.
	SecretKey []byte
	// Region names the app's data-centre region (see Regions), which picks
	// the REST host.
	Region string
	// BaseURL, when set, replaces the region's host: "https://host[:port]",
	// with no path or query. For tests and for a forward proxy in front of
	// IM; it must be https, since the query carries an admin UserSig.
	BaseURL string
	// NetTypes lists the egress lists to take, merged. Empty means both
	// NetTypeChina and NetTypeOutside: where IM sends from depends on its
	// routing, not on where the receiver is, and both lists are IM's.
	NetTypes []NetType
	// RootCAs verifies the REST host's certificate; nil means the system
	// roots.
	RootCAs *x509.CertPool
	// Interval is the time between fetches after a success. Zero means
	// DefaultInterval.
	Interval time.Duration
	// StaleAfter is the number of intervals without a successful fetch
	// after which Status reports the list stale. Zero means
	// DefaultStaleAfter.
	StaleAfter int
	// FetchTimeout bounds one call. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RetryMin and RetryMax bound the jittered, doubling delay after a
	// failed or empty fetch. Zero means DefaultRetryMin, DefaultRetryMax;
	// neither exceeds Interval.
	RetryMin, RetryMax time.Duration
	// UserSigLifetime is the validity of each call's UserSig. Zero means
	// DefaultUserSigLifetime.
	UserSigLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// After waits for Run's next fetch, like time.After; nil means
	// time.After. Tests pass a function they fire by hand.
	After func(time.Duration) <-chan time.Time
	// Logger receives list changes and fetch failures; nil discards.
	Logger *slog.Logger
}

// normalise validates o, fills in defaults and returns the REST base URL.
func (o *Options) normalise() (string, error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("checking options: %w: %s", ErrBadOption, fmt.Sprintf(format, a...))
	}
	if o.AppID == 0 {
		return bad("AppID (the SDKAppID) is required")
	}
	if o.Identifier == "" || len(o.Identifier) > maxIdentifierLen {
		return bad("Identifier (an admin account) must be 1..%d bytes", maxIdentifierLen)
	}
	for _, r := range o.Identifier {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return bad("Identifier must be printable UTF-8")
		}
	}
	if len(o.SecretKey) == 0 {
		return bad("SecretKey is required")
	}
	o.SecretKey = slices.Clone(o.SecretKey)
	base, err := o.baseURL()
	if err != nil {
		return "", err
	}
	if len(o.NetTypes) == 0 {
		o.NetTypes = []NetType{NetTypeChina, NetTypeOutside}
	}
	o.NetTypes = slices.Clone(o.NetTypes)
	slices.Sort(o.NetTypes)
	o.NetTypes = slices.Compact(o.NetTypes)
	for _, n := range o.NetTypes {
		if n != NetTypeChina && n != NetTypeOutside {
			return bad("nettype %d is not a callback egress list (want 5 or 6)", n)
		}
	}
	if o.Interval < 0 || o.StaleAfter < 0 || o.FetchTimeout < 0 || o.RetryMin < 0 || o.RetryMax < 0 || o.UserSigLifetime < 0 {
		return bad("negative duration or count")
	}
	if o.UserSigLifetime != 0 && o.UserSigLifetime < time.Second {
		return bad("UserSigLifetime must be at least 1s")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Interval, DefaultInterval)
	def(&o.FetchTimeout, DefaultFetchTimeout)
	def(&o.RetryMin, DefaultRetryMin)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.UserSigLifetime, DefaultUserSigLifetime)
	o.RetryMax = min(o.RetryMax, o.Interval)
	o.RetryMin = min(o.RetryMin, o.RetryMax)
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return base, nil
}

// baseURL is "https://host[:port]" from BaseURL or Region.
func (o *Options) baseURL() (string, error) {
	if o.BaseURL == "" {
		if o.Region == "" {
			return "", fmt.Errorf("checking options: %w: Region or BaseURL is required", ErrBadOption)
		}
		host, err := RegionHost(o.Region)
		if err != nil {
			return "", fmt.Errorf("checking options: %w", err)
		}
		return "https://" + host, nil
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil {
		return "", fmt.Errorf("checking options: %w: BaseURL: %w", ErrBadOption, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("checking options: %w: BaseURL %q must be https://host[:port]", ErrBadOption, o.BaseURL)
	}
	return "https://" + u.Host, nil
}
