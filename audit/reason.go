package audit

// Reason is an audit reason code. The set is closed: every code imedge
// writes is one of the constants below and is documented in
// docs/reference.md.
type Reason string

// TLS handshake refusals.
const (
	TLSNoCert      Reason = "tls_no_cert"       // no client certificate presented
	TLSUnknownCA   Reason = "tls_unknown_ca"    // chain does not lead to the client-CA bundle
	TLSExpired     Reason = "tls_expired"       // client certificate (or chain) past NotAfter
	TLSNotYetValid Reason = "tls_not_yet_valid" // client certificate before NotBefore
	TLSBadEKU      Reason = "tls_bad_eku"       // certificate not allowed for client authentication
	TLSNotAllowed  Reason = "tls_not_allowed"   // chain fine, identity not on the allow-list
	TLSRevoked     Reason = "tls_revoked"       // serial listed in a client CRL
	TLSCRLStale    Reason = "tls_crl_stale"     // issuer's CRL past NextUpdate and stale CRLs fail closed
	TLSVersion     Reason = "tls_version"       // client offered nothing newer than TLS 1.1
	TLSBadCert     Reason = "tls_bad_cert"      // certificate unparsable or otherwise invalid
)

// Connection-level refusals, before or around TLS and HTTP parsing.
const (
	SourceDenied Reason = "source_denied" // peer address not on the source allow-list; closed before the handshake
	ConnLimit    Reason = "conn_limit"    // per-address connection cap reached, or oldest pending handshake closed at the global cap
	TLSTimeout   Reason = "tls_timeout"   // TLS handshake not complete within the handshake timeout
	SlowRequest  Reason = "slow_request"  // request headers not complete within the read-header timeout; connection closed
	BadRequest   Reason = "bad_request"   // request refused by the HTTP parser before the handler (malformed, headers too large)
	ProxyRefused Reason = "proxy_refused" // PROXY protocol header from an untrusted peer, or missing/invalid from a trusted balancer
)

// HTTP-level refusals of a callback.
const (
	BadMethod          Reason = "bad_method"          // 405: not POST
	BadPath            Reason = "bad_path"            // 404: not the configured path
	NoIdentity         Reason = "no_identity"         // 403: no verified client certificate and no token
	BadQuery           Reason = "bad_query"           // 400: query unparsable or a parameter repeated
	BadAppID           Reason = "bad_sdkappid"        // 403: SdkAppid missing or not ours
	UnsupportedCommand Reason = "unsupported_command" // 400: CallbackCommand missing or not served
	BadContentType     Reason = "bad_contenttype"     // 415: contenttype present and not json
	BadClientIP        Reason = "bad_clientip"        // 400: ClientIP missing or not an IP address
	MissingSign        Reason = "missing_sign"        // 401: token configured, Sign/RequestTime absent
	BadSign            Reason = "bad_sign"            // 401: Sign does not match
	StaleSign          Reason = "stale_sign"          // 401: RequestTime outside the allowed window
	BodyTooLarge       Reason = "body_too_large"      // 413: body over the cap
	BadJSON            Reason = "bad_json"            // 400: body not a JSON object, or duplicate keys
	CommandMismatch    Reason = "command_mismatch"    // 400: body CallbackCommand differs from the query's
	BadPairList        Reason = "bad_pairlist"        // 400: PairList missing or malformed
	BadAccount         Reason = "bad_account"         // 400: an account id (a *_Account field) empty, too long or not UTF-8
	BadField           Reason = "bad_field"           // 400: a field the command's catalog entry checks is missing, of the wrong type or too long (detail names it)
	RateLimited        Reason = "rate_limited"        // 429: ClientIP over its rate
	OutboxFull         Reason = "outbox_full"         // 503: outbox at its event or byte limit
	OutboxError        Reason = "outbox_error"        // 503: outbox write failed (disk full, read-only)
	Internal           Reason = "internal_error"      // 500: a bug; see the operational log
	RedisUnavailable   Reason = "redis_unavailable"   // 503: shared state (Redis) unreachable and --redis-policy fail-closed
)

// Decision fallbacks: a before-callback answered with the command's
// configured fallback (HTTP 200) because the decision service did not give
// a usable answer.
const (
	DecideTimeout  Reason = "decide_timeout"   // the decision service did not answer within --decide-timeout (or its circuit is open)
	DecideError    Reason = "decide_error"     // connection error or non-2xx status from the decision service
	DecideBadReply Reason = "decide_bad_reply" // the decision service's reply broke the command's reply schema
)

// Reasons lists every reason code, in documentation order.
func Reasons() []Reason {
	return []Reason{
		TLSNoCert, TLSUnknownCA, TLSExpired, TLSNotYetValid, TLSBadEKU, TLSNotAllowed, TLSRevoked, TLSCRLStale, TLSVersion, TLSBadCert,
		SourceDenied, ConnLimit, TLSTimeout, SlowRequest, BadRequest, ProxyRefused,
		BadMethod, BadPath, NoIdentity, BadQuery, BadAppID, UnsupportedCommand, BadContentType, BadClientIP,
		MissingSign, BadSign, StaleSign, BodyTooLarge, BadJSON, CommandMismatch, BadPairList, BadAccount, BadField,
		RateLimited, OutboxFull, OutboxError, Internal, RedisUnavailable,
		DecideTimeout, DecideError, DecideBadReply,
	}
}
