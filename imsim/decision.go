package imsim

import (
	"encoding/json"
	"strconv"
)

// Decision is IM's reading of the reply to a callback whose reply it acts
// on (a before-callback, or Chatbot.OnC2CSignalMessage), following the
// reply fields of IM's documentation: ErrorCode, per-target ResultCodes of
// the friend requests, refused members or subscribers, a rewritten message.
type Decision struct {
	// Outcome is allow, deny, rewrite (the message goes through with
	// MsgBody or CloudCustomData replaced), drop (ErrorCode 2: the sender
	// sees success, nobody gets the message) or partial (some targets of a
	// friend request refused; or, with ErrorCode 0, a list of refused
	// members or subscribers, which may be all of them: the reply alone
	// does not say how many were asked for); empty when the reply is not
	// IM's reply JSON.
	Outcome string
	// ErrorCode and ErrorInfo are the reply's.
	ErrorCode int
	ErrorInfo string
	// Refused lists the targets (ResultItem with a non-zero ResultCode) or
	// members (RefusedMembers_Account, RefusedSubscribers_Account) refused.
	Refused []string
}

// String returns the outcome with its code, e.g. "deny (ErrorCode 10016)",
// and the refused accounts.
func (d Decision) String() string {
	s := d.Outcome
	if s == "" {
		return "none (not IM's reply JSON)"
	}
	if d.ErrorCode != 0 {
		s += " (ErrorCode " + strconv.Itoa(d.ErrorCode) + ")"
	}
	if len(d.Refused) > 0 {
		b, _ := json.Marshal(d.Refused) // cannot fail: strings
		s += " refused " + string(b)
	}
	return s
}

// The replies imedge sends most, read without decoding.
const (
	allowReply = `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`
	denyReply  = `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`
)

// ReadDecision reads a reply body as IM would.
func ReadDecision(body []byte) Decision {
	switch string(body) {
	case allowReply:
		return Decision{Outcome: "allow"}
	case denyReply:
		return Decision{Outcome: "deny", ErrorCode: 1}
	}
	var r struct {
		ActionStatus               string
		ErrorCode                  *int
		ErrorInfo                  string
		MsgBody                    json.RawMessage
		CloudCustomData            *string
		RefusedMembers_Account     []string //nolint:revive // IM's field name
		RefusedSubscribers_Account []string //nolint:revive // IM's field name
		ResultItem                 []struct {
			To_Account string //nolint:revive // IM's field name
			ResultCode int
		}
	}
	if json.Unmarshal(body, &r) != nil || r.ErrorCode == nil {
		return Decision{}
	}
	d := Decision{ErrorCode: *r.ErrorCode, ErrorInfo: r.ErrorInfo}
	switch {
	case r.ResultItem != nil:
		for _, it := range r.ResultItem {
			if it.ResultCode != 0 {
				d.Refused = append(d.Refused, it.To_Account)
			}
		}
		d.Outcome = "partial"
		switch len(d.Refused) {
		case 0:
			d.Outcome = "allow"
		case len(r.ResultItem):
			d.Outcome = "deny"
		}
	case d.ErrorCode == 2:
		d.Outcome = "drop"
	case d.ErrorCode != 0:
		d.Outcome = "deny"
	case len(r.RefusedMembers_Account) > 0 || len(r.RefusedSubscribers_Account) > 0:
		d.Outcome = "partial"
		d.Refused = append(r.RefusedMembers_Account, r.RefusedSubscribers_Account...)
	case len(r.MsgBody) > 0 && string(r.MsgBody) != "null" || r.CloudCustomData != nil:
		d.Outcome = "rewrite"
	default:
		d.Outcome = "allow"
	}
	return d
}
