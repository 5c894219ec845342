package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ReplySchema is what IM reads in the reply to a Before or Reply command
// (im-callbacks.md §1.4). The top-level ErrorCode is the decision unless
// Targets is set.
type ReplySchema struct {
	// Deny reports that ErrorCode 1 refuses.
	Deny bool
	// Drop reports that ErrorCode 2 drops the message silently (the sender
	// sees success).
	Drop bool
	// Custom is the documented range of custom refusal codes, passed on to
	// the client with ErrorInfo; zero means none.
	Custom CodeRange
	// DefaultDeny is the code a deny fallback uses when none is
	// configured: the ErrorCode (1), or the per-target ResultCode when
	// Targets is set; 0 when the command refuses only through Refusals.
	DefaultDeny int
	// Targets, when set, carries the decision per target in
	// ResultItem[].ResultCode (the friend-request commands).
	Targets *Targets
	// Refusals, when set, refuses some of the request's members while
	// ErrorCode is 0.
	Refusals *Refusals
	// Rewrite reports that a reply with ErrorCode 0 may replace MsgBody and
	// CloudCustomData.
	Rewrite bool
	// RspData reports that the reply carries RspData, a string, required
	// with ErrorCode 0 (the chatbot's answer).
	RspData bool
}

// CodeRange is an inclusive range of codes; the zero value is empty.
type CodeRange struct{ Min, Max int }

// Contains reports whether code lies in r.
func (r CodeRange) Contains(code int) bool {
	return r != (CodeRange{}) && r.Min <= code && code <= r.Max
}

// Targets names where the friend-request commands list their targets: each
// element of the request's List carries one target in Account, and the
// reply's ResultItem must answer each of them once.
type Targets struct {
	List    string    // request array, e.g. "FriendItem"
	Account string    // account key in each element and in ResultItem, "To_Account"
	Custom  CodeRange // refusal ResultCodes; 0 allows
}

// Refusals names a partial refusal: the reply's Field lists accounts taken
// from the request's List (the Account of each element).
type Refusals struct {
	Field   string // reply field, e.g. "RefusedMembers_Account"
	List    string // request array, e.g. "DestinationMembers"
	Account string // account key in each request element, e.g. "Member_Account"
}

// Outcome is what a relayed reply tells IM to do.
type Outcome uint8

// The outcomes. The zero Outcome is invalid.
const (
	// Allow lets the event happen unchanged.
	Allow Outcome = iota + 1
	// Deny refuses the event (ErrorCode 1 or a custom code, every target
	// refused, every member refused).
	Deny
	// Rewrite lets the message through with MsgBody or CloudCustomData
	// replaced.
	Rewrite
	// Drop discards the message silently (ErrorCode 2).
	Drop
	// Partial refuses some targets or members and lets the others through.
	Partial
)

// String returns the outcome's metric label.
func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Rewrite:
		return "rewrite"
	case Drop:
		return "drop"
	case Partial:
		return "partial"
	}
	return "invalid"
}

// maxErrorInfo bounds the ErrorInfo relayed to IM (and from IM to the client).
const maxErrorInfo = 1024

// CheckReply checks a decision service's reply to request against the
// command's reply schema and returns the body to relay to IM: a fresh JSON
// object with ActionStatus "OK", ErrorCode, ErrorInfo and only the fields
// the schema allows, whatever else the reply held. It fails, wrapping
// [ErrBadReply], when the reply is not a JSON object in UTF-8, ErrorCode is
// missing or not allowed for the command, a per-target or refusal list does
// not match the request's targets, a rewrite is malformed or comes with a
// refusal, or RspData is missing; and, wrapping [ErrNotDecided], for a
// command whose reply IM ignores. The caller answers IM with the command's
// [Command.Fallback] then.
func (c *Command) CheckReply(request, reply []byte) (relay []byte, outcome Outcome, err error) {
	s := c.Reply
	if s == nil {
		return nil, 0, fmt.Errorf("checking reply to %s: %w", c.Name, ErrNotDecided)
	}
	bad := func(format string, args ...any) ([]byte, Outcome, error) {
		return nil, 0, fmt.Errorf("checking reply to %s: %s: %w", c.Name, fmt.Sprintf(format, args...), ErrBadReply)
	}
	if !utf8.Valid(reply) {
		return bad("not UTF-8")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(reply, &m); err != nil || m == nil {
		return bad("not a JSON object")
	}
	code, ok := intValue(m["ErrorCode"])
	if !ok {
		return bad("ErrorCode missing or not an integer")
	}
	var info string
	if raw, ok := m["ErrorInfo"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &info) != nil {
			return bad("ErrorInfo not a string")
		}
		if len(info) > maxErrorInfo {
			return bad("ErrorInfo longer than %d bytes", maxErrorInfo)
		}
	}
	w := newReplyWriter(code, info)

	switch {
	case s.Targets != nil:
		if code != 0 {
			return bad("ErrorCode %d: the decision is per target, ErrorCode must be 0", code)
		}
		targets, ok := requestAccounts(request, s.Targets.List, s.Targets.Account)
		if !ok {
			return bad("request targets unreadable")
		}
		items, refused, distinct, err := checkResultItems(m["ResultItem"], targets, s.Targets)
		if err != nil {
			return bad("%s", err.Error())
		}
		w.raw("ResultItem", items)
		switch {
		case refused == 0:
			outcome = Allow
		case refused == distinct:
			outcome = Deny
		default:
			outcome = Partial
		}
		return w.bytes(), outcome, nil
	case code == 0:
		outcome = Allow
	case code == 1 && s.Deny, s.Custom.Contains(code):
		outcome = Deny
	case code == 2 && s.Drop:
		outcome = Drop
	default:
		return bad("ErrorCode %d not allowed", code)
	}

	if s.Refusals != nil && code == 0 {
		if raw, ok := m[s.Refusals.Field]; ok && string(raw) != "null" {
			members, ok := requestAccounts(request, s.Refusals.List, s.Refusals.Account)
			if !ok {
				return bad("request members unreadable")
			}
			list, err := checkSubset(raw, members)
			if err != nil {
				return bad("%s: %s", s.Refusals.Field, err.Error())
			}
			if len(list) > 0 {
				w.value(s.Refusals.Field, list)
				outcome = Partial
				if len(list) == len(members) {
					outcome = Deny
				}
			}
		}
	}
	if s.Rewrite {
		body, hasBody := m["MsgBody"]
		data, hasData := m["CloudCustomData"]
		hasBody = hasBody && string(body) != "null"
		hasData = hasData && string(data) != "null"
		if (hasBody || hasData) && code != 0 {
			return bad("MsgBody or CloudCustomData with ErrorCode %d: rewrites need 0", code)
		}
		if hasBody {
			compact, err := checkMsgBody(body)
			if err != nil {
				return bad("MsgBody: %s", err.Error())
			}
			w.raw("MsgBody", compact)
			outcome = Rewrite
		}
		if hasData {
			var s string
			if json.Unmarshal(data, &s) != nil {
				return bad("CloudCustomData not a string")
			}
			w.value("CloudCustomData", s)
			outcome = Rewrite
		}
	}
	if s.RspData {
		var rsp string
		raw, has := m["RspData"]
		switch {
		case has && json.Unmarshal(raw, &rsp) == nil && string(raw) != "null":
			if code == 0 {
				w.value("RspData", rsp)
			}
		case code == 0:
			return bad("RspData missing or not a string")
		}
	}
	return w.bytes(), outcome, nil
}

// Fallback returns the body imedge answers IM (with HTTP 200) when it
// decides for the command itself: allow, or deny with code (0 means
// [Command.DefaultDenyCode]; the caller checked any other code with
// [Command.CheckDenyCode]). The body is well formed for the command:
// per-target ResultCodes for every target of a friend request, the list of
// every requested member or subscriber for a deny of an invitation or
// subscription, RspData for the chatbot. When the request cannot be read,
// the per-target and member lists are left out: the friend-request commands
// then answer with ErrorCode 0 and no ResultItem for allow, and with
// ErrorCode 1 for deny (which IM documents as "the app failed" and may
// ignore), the invitation with ErrorCode alone, and the subscription (which
// has no refusal code) with an empty refusal list. For a command whose
// reply IM ignores, it is the plain OK body.
func (c *Command) Fallback(request []byte, deny bool, code int) []byte {
	s := c.Reply
	if s == nil || !deny {
		w := newReplyWriter(0, "")
		if s != nil && s.Targets != nil {
			if targets, ok := requestAccounts(request, s.Targets.List, s.Targets.Account); ok {
				w.value("ResultItem", resultItems(targets, 0))
			}
		}
		if s != nil && s.RspData {
			w.value("RspData", "")
		}
		return w.bytes()
	}
	if code == 0 {
		code = s.DefaultDeny
	}
	switch {
	case s.Targets != nil:
		targets, ok := requestAccounts(request, s.Targets.List, s.Targets.Account)
		if !ok {
			return newReplyWriter(1, "").bytes()
		}
		w := newReplyWriter(0, "")
		w.value("ResultItem", resultItems(targets, code))
		return w.bytes()
	case s.Refusals != nil:
		w := newReplyWriter(code, "")
		members, ok := requestAccounts(request, s.Refusals.List, s.Refusals.Account)
		if !ok {
			members = []string{}
		}
		if ok || code == 0 {
			w.value(s.Refusals.Field, members)
		}
		return w.bytes()
	}
	w := newReplyWriter(code, "")
	if s.RspData {
		w.value("RspData", "")
	}
	return w.bytes()
}

// DefaultDenyCode returns the code a deny fallback uses when none is
// configured (see [ReplySchema.DefaultDeny]); 0 for a command whose reply
// IM ignores.
func (c *Command) DefaultDenyCode() int {
	if c.Reply == nil {
		return 0
	}
	return c.Reply.DefaultDeny
}

// CheckDenyCode checks a configured deny code for the command: ErrorCode 1
// where it refuses, or a code in the documented custom range; for the
// friend-request commands a ResultCode in their range; for a command that
// refuses only per member (OfficialAccount.CallbackBeforeAddSubscriber),
// only 0. Errors wrap [ErrBadCode], or [ErrNotDecided] for a command whose
// reply IM ignores.
func (c *Command) CheckDenyCode(code int) error {
	s := c.Reply
	switch {
	case s == nil:
		return fmt.Errorf("deny code for %s: %w", c.Name, ErrNotDecided)
	case s.Targets != nil:
		if s.Targets.Custom.Contains(code) {
			return nil
		}
		return fmt.Errorf("deny code %d for %s: want a ResultCode in [%d,%d]: %w",
			code, c.Name, s.Targets.Custom.Min, s.Targets.Custom.Max, ErrBadCode)
	case code == 1 && s.Deny, s.Custom.Contains(code):
		return nil
	case code == 0 && !s.Deny && s.Refusals != nil:
		return nil
	}
	return fmt.Errorf("deny code %d for %s: want %s: %w", code, c.Name, c.denyCodes(), ErrBadCode)
}

// denyCodes describes the codes CheckDenyCode accepts, for its error.
func (c *Command) denyCodes() string {
	s := c.Reply
	var parts []string
	if s.Deny {
		parts = append(parts, "1")
	}
	if s.Custom != (CodeRange{}) {
		parts = append(parts, fmt.Sprintf("a code in [%d,%d]", s.Custom.Min, s.Custom.Max))
	}
	if len(parts) == 0 {
		return "0 (refusal by list only)"
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[0] + " or " + parts[1]
}

// replyWriter builds a reply object in a fixed member order.
type replyWriter struct{ b bytes.Buffer }

func newReplyWriter(code int, info string) *replyWriter {
	w := &replyWriter{}
	w.b.WriteString(`{"ActionStatus":"OK","ErrorCode":`)
	w.b.WriteString(strconv.Itoa(code))
	w.b.WriteString(`,"ErrorInfo":`)
	w.b.Write(mustJSON(info))
	return w
}

func (w *replyWriter) raw(name string, v []byte) {
	w.b.WriteString(`,"`)
	w.b.WriteString(name)
	w.b.WriteString(`":`)
	w.b.Write(v)
}

func (w *replyWriter) value(name string, v any) { w.raw(name, mustJSON(v)) }

func (w *replyWriter) bytes() []byte {
	w.b.WriteByte('}')
	return w.b.Bytes()
}

// mustJSON encodes a value that cannot fail to encode (strings, slices of
// strings, resultItem slices).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("catalog: encoding a reply value: " + err.Error())
	}
	return b
}

// intValue decodes an integer JSON number (no fraction, no exponent, within
// int32, so no platform or float question arises).
func intValue(raw json.RawMessage) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// requestAccounts reads the accounts of a request list: the string under key
// in each element of the array list. It reports false when the body is not
// a JSON object, the list is missing or not an array of objects, or an
// element lacks a non-empty string account.
func requestAccounts(request []byte, list, key string) ([]string, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(request, &top) != nil {
		return nil, false
	}
	var elems []map[string]json.RawMessage
	if json.Unmarshal(top[list], &elems) != nil || elems == nil {
		return nil, false
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		var a string
		if e == nil || json.Unmarshal(e[key], &a) != nil || a == "" {
			return nil, false
		}
		out = append(out, a)
	}
	return out, true
}

// resultItem is one element of a friend-request reply's ResultItem.
type resultItem struct {
	ToAccount  string `json:"To_Account"`
	ResultCode int    `json:"ResultCode"`
	ResultInfo string `json:"ResultInfo"`
}

// resultItems answers every target with code.
func resultItems(targets []string, code int) []resultItem {
	out := make([]resultItem, 0, len(targets))
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, resultItem{ToAccount: t, ResultCode: code})
	}
	return out
}

// checkResultItems checks a reply's ResultItem against the request's
// targets: one item per distinct target, no other, each ResultCode 0 or in
// the custom range. It returns the re-encoded list, how many targets were
// refused and how many distinct targets the request has.
func checkResultItems(raw json.RawMessage, targets []string, t *Targets) (items []byte, refused, distinct int, err error) {
	var elems []map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &elems) != nil || elems == nil {
		return nil, 0, 0, fmt.Errorf("ResultItem missing or not an array of objects")
	}
	want := make(map[string]bool, len(targets))
	for _, a := range targets {
		want[a] = true
	}
	distinct = len(want)
	out := make([]resultItem, 0, len(elems))
	for _, it := range elems {
		var r resultItem
		if it == nil || json.Unmarshal(it[t.Account], &r.ToAccount) != nil {
			return nil, 0, 0, fmt.Errorf("ResultItem element without a %s string", t.Account)
		}
		if !want[r.ToAccount] {
			return nil, 0, 0, fmt.Errorf("ResultItem answers a target not in the request, or one twice")
		}
		delete(want, r.ToAccount)
		code, ok := intValue(it["ResultCode"])
		switch {
		case !ok:
			return nil, 0, 0, fmt.Errorf("ResultCode missing or not an integer")
		case code == 0:
		case t.Custom.Contains(code):
			refused++
		default:
			return nil, 0, 0, fmt.Errorf("ResultCode %d not 0 nor in [%d,%d]", code, t.Custom.Min, t.Custom.Max)
		}
		r.ResultCode = code
		if info, ok := it["ResultInfo"]; ok && string(info) != "null" {
			if json.Unmarshal(info, &r.ResultInfo) != nil || len(r.ResultInfo) > maxErrorInfo {
				return nil, 0, 0, fmt.Errorf("ResultInfo not a string of at most %d bytes", maxErrorInfo)
			}
		}
		out = append(out, r)
	}
	if len(want) > 0 {
		return nil, 0, 0, fmt.Errorf("ResultItem leaves %d target(s) of the request unanswered", len(want))
	}
	return mustJSON(out), refused, distinct, nil
}

// checkSubset checks that raw is an array of distinct strings, each one of
// members, and returns it.
func checkSubset(raw json.RawMessage, members []string) ([]string, error) {
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return nil, fmt.Errorf("not an array of strings")
	}
	in := make(map[string]bool, len(members))
	for _, m := range members {
		in[m] = true
	}
	seen := make(map[string]bool, len(list))
	for _, a := range list {
		if !in[a] {
			return nil, fmt.Errorf("names an account the request does not")
		}
		if seen[a] {
			return nil, fmt.Errorf("names an account twice")
		}
		seen[a] = true
	}
	if list == nil {
		list = []string{}
	}
	return list, nil
}

// checkMsgBody checks a rewritten MsgBody: a non-empty array of TIMMessage
// elements, each an object with a non-empty string MsgType and an object
// MsgContent. It returns the array compacted.
func checkMsgBody(raw json.RawMessage) ([]byte, error) {
	var elems []map[string]json.RawMessage
	if json.Unmarshal(raw, &elems) != nil || len(elems) == 0 {
		return nil, fmt.Errorf("not a non-empty array of objects")
	}
	for _, e := range elems {
		var typ string
		if e == nil || json.Unmarshal(e["MsgType"], &typ) != nil || typ == "" {
			return nil, fmt.Errorf("element without a MsgType string")
		}
		content := bytes.TrimSpace(e["MsgContent"])
		if len(content) == 0 || content[0] != '{' {
			return nil, fmt.Errorf("element without a MsgContent object")
		}
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, fmt.Errorf("compacting: %w", err)
	}
	return out.Bytes(), nil
}
