package receiver

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/imedge/imedge/audit"
)

// Event is one accepted callback, handed to the Sink (or, for a command
// whose reply IM acts on, to the Decider). Body is the exact bytes IM sent,
// one valid JSON object (a Push.* batch is one event); the Sink must not
// modify it.
type Event struct {
	ID          string    // hex SHA-256 of SdkAppid, 0x00, CallbackCommand, 0x00, body (see EventID)
	AppID       string    // SdkAppid
	Command     string    // CallbackCommand, as in the query; routes the event
	Known       bool      // Command is in the catalog (false: forwarded under UnknownForward)
	ClientIP    string    // ClientIP query parameter, canonical form; empty when IM sent none
	OptPlatform string    // OptPlatform as sent (may be empty or an undocumented value)
	Identity    string    // verified client-certificate identity (see IdentityOf); empty in token-only mode
	CertSHA256  string    // SHA-256 of the client certificate (DER), hex; empty in token-only mode
	RequestID   string    // imedge's request id
	ReceivedAt  time.Time // when the request arrived
	Query       string    // for a Before or Reply command: IM's raw query string without Sign and RequestTime; empty otherwise
	Observe     bool      // a Before or Reply callback answered with its fallback in observe mode (see Decision.Observe)
	Body        []byte
}

// Sink takes accepted events. Accept must return only once the event is safe
// (durably stored, or delivered); a nil error means imedge answers OK.
// An event with Observe set was already answered (with its command's
// fallback): the Sink stores it where a route names its command, or
// declines it with a nil error; its error changes no answer, it is only
// counted and logged. Implementations are safe for concurrent use.
type Sink interface {
	Accept(ctx context.Context, ev Event) error
}

// ErrSinkFull is returned (wrapped) by a Sink that is at capacity; the
// receiver answers 503 with reason outbox_full. Any other Sink error is
// answered 503 with reason outbox_error.
var ErrSinkFull = errors.New("receiver: sink full")

// Decider answers the callbacks whose reply IM acts on (the Before and
// Reply commands of the catalog). *decide.Service implements it.
// Implementations are safe for concurrent use.
type Decider interface {
	// Decide answers ev after the receiver has authenticated it, checked
	// its query and validated its body. It returns within IM's budget; the
	// receiver answers IM with HTTP 200 and Decision.Body. The receiver
	// neither de-duplicates nor stores these callbacks itself (but see
	// Decision.Observe).
	Decide(ctx context.Context, ev Event) Decision
	// Fallback returns the command's fallback for a callback the receiver
	// refused for reason before any decision (over a rate limit, a body
	// that fails validation, shared state unavailable, an internal error):
	// refusing at the edge is not a decision, so IM gets HTTP 200 and the
	// fallback the operator chose. body is what was read of the request, nil
	// when nothing was, and may be malformed. It never does I/O.
	Fallback(command string, body []byte, reason audit.Reason) Decision
}

// Decision is a [Decider]'s answer, relayed to IM with HTTP 200.
type Decision struct {
	// Body is the reply: the command's well-formed reply, which is its
	// fallback when no decision could be had.
	Body []byte
	// Reason is empty for a decision (the decision service's, fresh or
	// cached, and the observe-mode answer); for a fallback the decision
	// service failed to replace, why (decide_timeout, decide_error,
	// decide_bad_reply). The receiver writes one audit record, with
	// status 200, for every answer with a Reason.
	Reason audit.Reason
	// Detail is fixed text for the audit record of a fallback.
	Detail string
	// Fallback names the fallback Body is, "allow", "deny" or "deny:CODE",
	// when it is one (a fallback, or the observe-mode answer); empty for a
	// decision.
	Fallback string
	// Observe asks the receiver to hand the event to the Sink after
	// answering (observe mode: no decision service for the command). A Sink
	// error changes nothing in the answer; it is counted and logged.
	Observe bool
}

// Seen de-duplicates accepted events by key (the event id). The receiver
// calls Claim after authentication and validation; when Claim returns true
// the caller owns the key and must call Settle with the outcome of Sink.Accept.
// *dedupe.Set implements it.
type Seen interface {
	// Claim returns true when key is new and now held by the caller, false
	// when key was already accepted within the window (a duplicate). If
	// another request holds key, Claim waits for its outcome: accepted gives
	// false, failed gives an error, as does ctx ending.
	Claim(ctx context.Context, key string) (bool, error)
	// Settle releases a key returned by Claim: accepted marks it seen for
	// the window; not accepted forgets it so a retry goes through.
	Settle(key string, accepted bool)
}

// Limiter decides whether a callback for clientIP may pass now. When it may
// not, it returns how long until it could. *ClientLimiter implements it.
type Limiter interface {
	Allow(clientIP netip.Addr) (ok bool, retryAfter time.Duration)
}

// LimiterWithErr is a [Limiter] that can fail, such as one that keeps its
// buckets in Redis. When the Limiter passed in [Options] implements it, the
// receiver calls AllowContext instead of Allow; an error wrapping
// [ErrStateUnavailable] is answered 503 with reason redis_unavailable, any
// other error 500.
type LimiterWithErr interface {
	Limiter
	AllowContext(ctx context.Context, clientIP netip.Addr) (ok bool, retryAfter time.Duration, err error)
}

// allow asks l, through AllowContext when l can fail.
func allow(ctx context.Context, l Limiter, clientIP netip.Addr) (bool, time.Duration, error) {
	if le, ok := l.(LimiterWithErr); ok {
		return le.AllowContext(ctx, clientIP)
	}
	ok, wait := l.Allow(clientIP)
	return ok, wait, nil
}
