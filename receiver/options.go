package receiver

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
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
	// MaxAccountBytes caps each account id the catalog checks (the
	// *_Account fields, strings and string arrays) in bytes (not runes)
	// after JSON unescaping; zero means 32. Official_Account, an
	// app-defined id, has the catalog's id bound instead.
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
	// Catalog is the command table bodies are checked against; nil means
	// catalog.New().
	Catalog *catalog.Catalog
	// Commands are the patterns of the commands served: an exact command,
	// a family glob such as "Group.*", or "*" (see catalog.CheckPattern).
	// Empty means every After command of the catalog, plus its Before and
	// Reply commands when a Decider is set. A catalog command not served is
	// refused unsupported_command; so is every Before or Reply command
	// while Decider is nil, whatever the patterns. An exact pattern that
	// names no catalog command serves that command under UnknownCommands.
	Commands []string
	// UnknownCommands is what happens to an authenticated callback whose
	// command is not in the catalog (and matches Commands, when set):
	// UnknownForward ("" means it) checks only that the body is a JSON
	// object whose top-level CallbackCommand, if any, equals the query's,
	// forwards it, counts it in Stats.Unknown and logs a warning at most
	// once a minute per command; UnknownRefuse refuses it
	// unsupported_command.
	UnknownCommands UnknownPolicy
	// Validation is ValidateStrict ("" means it): a body that breaks its
	// command's catalog entry is refused (bad_field, bad_account,
	// bad_pairlist); or ValidateWarn: such a body is forwarded anyway,
	// counted in Stats.Nonconforming and logged at most once a minute per
	// command. Bodies that are not JSON (bad_json) or whose CallbackCommand
	// differs from the query's (command_mismatch) are refused in both
	// modes.
	Validation ValidationMode
	// Decider answers the Before and Reply commands; nil refuses them
	// unsupported_command (they are never stored and answered OK, since
	// for them OK means allow). Every refusal of such a command other than
	// an authentication failure is answered with the Decider's fallback
	// (HTTP 200) and audited with its reason.
	Decider Decider
	// DecideLimiter limits the Before and Reply callbacks per ClientIP, in
	// place of Limiter (which limits the others); nil means no limit. A
	// callback over it is answered with its command's fallback.
	DecideLimiter Limiter
	// Sink receives accepted events. Required.
	Sink Sink
	// Seen de-duplicates accepted events by event id; nil means none.
	Seen Seen
	// Limiter limits callbacks per ClientIP; nil means no limit. Callbacks
	// without a ClientIP (the Push, ContentCallback and Alert families,
	// which IM itself triggers) are not limited, nor are the Before and
	// Reply commands a Decider answers (DecideLimiter limits those).
	Limiter Limiter
	// Audit receives one record per refused request; nil discards.
	Audit *audit.Logger
	// Logger receives one Debug access line per request, a Warn line per
	// Sink failure, rate-limited Warn lines for unknown commands and (in
	// warn mode) nonconforming bodies, and an Error line per recovered
	// panic; nil discards.
	Logger *slog.Logger
	// AccessLog, when set, receives one Info record per callback: request
	// id, outcome (accepted, duplicate, empty, decided, observed, fallback
	// or refused), command,
	// remote address, ClientIP, status, audit reason, client identity and
	// latency. Nil writes none.
	AccessLog *slog.Logger
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
	if o.Catalog == nil {
		o.Catalog = catalog.New()
	}
	for _, p := range o.Commands {
		if err := catalog.CheckPattern(p); err != nil {
			return o, fmt.Errorf("checking Commands: %w", err)
		}
	}
	o.Commands = append([]string(nil), o.Commands...)
	switch o.UnknownCommands {
	case "":
		o.UnknownCommands = UnknownForward
	case UnknownForward, UnknownRefuse:
	default:
		return o, fmt.Errorf("checking UnknownCommands %q: %w", o.UnknownCommands, ErrBadMode)
	}
	switch o.Validation {
	case "":
		o.Validation = ValidateStrict
	case ValidateStrict, ValidateWarn:
	default:
		return o, fmt.Errorf("checking Validation %q: %w", o.Validation, ErrBadMode)
	}
	return o, nil
}

// UnknownPolicy says what happens to an authenticated callback whose
// command is not in the catalog.
type UnknownPolicy string

// The unknown-command policies.
const (
	// UnknownForward forwards it after generic checks (the default).
	UnknownForward UnknownPolicy = "forward"
	// UnknownRefuse refuses it unsupported_command.
	UnknownRefuse UnknownPolicy = "refuse"
)

// ValidationMode says what happens to a body that breaks its command's
// catalog entry.
type ValidationMode string

// The validation modes.
const (
	// ValidateStrict refuses it (the default).
	ValidateStrict ValidationMode = "strict"
	// ValidateWarn forwards it, counts and logs it.
	ValidateWarn ValidationMode = "warn"
)

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
