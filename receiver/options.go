package receiver

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/imedge/imedge/audit"
)

// Defaults applied to zero Options fields.
const (
	DefaultPath            = "/"
	DefaultMaxBody         = 1 << 20 // 1 MiB
	DefaultMaxAccountBytes = 32      // IM's UserID limit, in bytes
	DefaultSignWindow      = 60 * time.Second
)

// Options configures a [Handler]. AppID and Sink are required; every other
// zero field means its documented default. New copies what it needs, so the
// caller may reuse the struct afterwards.
type Options struct {
	// AppID is the SdkAppid this receiver serves, as a decimal string.
	// Required.
	AppID string
	// Path is the exact request path served; "" means "/".
	Path string
	// MaxBody caps the request body in bytes; zero means 1 MiB.
	MaxBody int64
	// MaxAccountBytes caps each From_Account/To_Account in bytes (not
	// runes) after JSON unescaping; zero means 32.
	MaxAccountBytes int
	// Token is IM's callback authentication token. Nil or empty turns token
	// authentication off; otherwise Sign and RequestTime are required. It
	// is never logged nor audited.
	Token []byte
	// SignWindow is the largest accepted |now - RequestTime|; zero means 60 s.
	SignWindow time.Duration
	// RequireClientCert refuses (403 no_identity) requests that arrived
	// without a peer certificate. The TLS layer has already verified the
	// certificate; the receiver only reads r.TLS.PeerCertificates[0].
	// Independently of this switch, a request with neither a certificate nor
	// a configured token is always refused: something must authenticate IM.
	RequireClientCert bool
	// Sink receives accepted events. Required.
	Sink Sink
	// Seen de-duplicates accepted events by event id; nil means none.
	Seen Seen
	// Limiter limits callbacks per ClientIP; nil means no limit.
	Limiter Limiter
	// Audit receives one record per refused request; nil discards.
	Audit *audit.Logger
	// Logger receives one Debug access line per request, a Warn line per
	// Sink failure and an Error line per recovered panic; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// withDefaults checks o and returns a copy with defaults filled in.
func (o Options) withDefaults() (Options, error) {
	if o.AppID == "" {
		return o, ErrNoAppID
	}
	if !isDecimal(o.AppID) {
		return o, fmt.Errorf("checking AppID: %w", ErrBadAppID)
	}
	if o.Sink == nil {
		return o, ErrNoSink
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Path[0] != '/' {
		return o, fmt.Errorf("checking Path: %w", ErrBadPath)
	}
	if o.MaxBody < 0 || o.MaxAccountBytes < 0 || o.SignWindow < 0 {
		return o, fmt.Errorf("checking limits: %w", ErrNegativeLimit)
	}
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxAccountBytes == 0 {
		o.MaxAccountBytes = DefaultMaxAccountBytes
	}
	if o.SignWindow == 0 {
		o.SignWindow = DefaultSignWindow
	}
	if len(o.Token) > 0 {
		o.Token = append([]byte(nil), o.Token...)
	} else {
		o.Token = nil
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// isDecimal reports whether s is a non-empty run of ASCII digits.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
