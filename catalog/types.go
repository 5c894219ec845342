package catalog

import (
	"strings"

	"github.com/imedge/imedge/audit"
)

// Kind says how IM treats the reply to a command.
type Kind uint8

// The kinds of command. The zero Kind is invalid.
const (
	// After callbacks notify the app of something that happened; IM
	// ignores the reply.
	After Kind = iota + 1
	// Before callbacks ask the app for a decision; IM waits for the reply
	// and acts on it (allow, refuse, rewrite).
	Before
	// Reply callbacks ask the app for data that IM passes on
	// (Chatbot.OnC2CSignalMessage's RspData).
	Reply
)

// String returns "after", "before" or "reply".
func (k Kind) String() string {
	switch k {
	case After:
		return "after"
	case Before:
		return "before"
	case Reply:
		return "reply"
	}
	return "invalid"
}

// Decides reports whether IM acts on the reply: true for Before and Reply.
func (k Kind) Decides() bool { return k == Before || k == Reply }

// Type is the JSON type a checked field must have.
type Type uint8

// The field types. The zero Type is invalid.
const (
	// String is a JSON string.
	String Type = iota + 1
	// Number is a JSON number.
	Number
	// Time is a timestamp: a JSON number, or a string of 1 to
	// [MaxTimeDigits] ASCII digits (IM's examples write EventTime both
	// ways).
	Time
	// Object is a JSON object; the Field's Fields are checked inside it.
	Object
	// Array is a JSON array of any values.
	Array
	// Strings is a JSON array of strings.
	Strings
	// Objects is a JSON array of objects; the Field's Fields are checked
	// inside each.
	Objects
)

// String returns the type's name as the audit detail and the docs write it.
func (t Type) String() string {
	switch t {
	case String:
		return "string"
	case Number:
		return "number"
	case Time:
		return "timestamp"
	case Object:
		return "object"
	case Array:
		return "array"
	case Strings:
		return "array of strings"
	case Objects:
		return "array of objects"
	}
	return "invalid"
}

// Bounds applied to checked fields.
const (
	// MaxIDBytes bounds every identifier that is not a user account
	// (GroupId, TopicId, MsgKey, MsgId, Official_Account, …), in bytes
	// after unescaping. IM's own ids are far shorter (a group id is at most
	// 48 bytes, a topic id a group id plus a suffix); the bound only stops
	// a value no IM id could be.
	MaxIDBytes = 256
	// MaxItems bounds an array whose Field sets no MaxItems. A 1 MiB body
	// cannot hold many more elements than this; it matters when the body
	// cap is raised.
	MaxItems = 10000
	// MaxTimeDigits bounds a timestamp written as a string of digits.
	MaxTimeDigits = 20
)

// Field is one body field imedge checks. Fields not listed for a command
// are not checked and are forwarded untouched.
//
// Only the fields that identify the event (the account, group or message
// ids) and that every documented example carries are Required: IM does not
// retry an after-callback, so a body refused for a field the docs forgot to
// mention would be lost for good. An optional field is checked only when
// present, and a JSON null counts as absent.
type Field struct {
	// Name is the JSON key, matched exactly. A key that differs from Name
	// only in case is refused as bad_json: a downstream parser that folds
	// case (Go's encoding/json does) must never read a value that was not
	// checked.
	Name string
	// Path names the field in audit details: Name, prefixed by its
	// parents ("PairList[].From_Account", "Info.To_Account"). Set by New.
	Path string
	// Type is the JSON type the value must have.
	Type Type
	// Required fields must be present (and not null). Required string
	// identifiers must also be non-empty; optional ones may be empty (IM
	// sends "Admin_Account":"" when no admin acted).
	Required bool
	// Account marks an account id (a *_Account field, a string or an
	// array of strings). Its problems are audited as bad_account. Each
	// value is bounded by the receiver's configured maximum account bytes
	// unless MaxBytes is set.
	Account bool
	// ID marks another identifier (GroupId, MsgKey, …). Each value is at
	// most MaxBytes ([MaxIDBytes] unless the table says otherwise).
	ID bool
	// MaxBytes bounds each string value in bytes after unescaping. Zero
	// means: the configured account bound for an Account, MaxIDBytes for an
	// ID, no bound (beyond the body cap) for other strings. Set by New for
	// IDs.
	MaxBytes int
	// MinItems and MaxItems bound an array's length. A zero MaxItems means
	// [MaxItems]; New fills it in.
	MinItems, MaxItems int
	// Fields are the checked members of an Object, or of each element of
	// Objects.
	Fields []Field
	// Reason is the audit reason of a structural problem (missing, wrong
	// type, wrong length). Zero in the table means bad_field; New fills it
	// in. Problems with an Account's values are always bad_account.
	Reason audit.Reason
	// NothingIfEmpty marks an array whose emptiness means the callback
	// carries nothing (an empty PairList): the receiver answers OK and does
	// not forward it.
	NothingIfEmpty bool
}

// Command is one IM callback command. A Command is read-only once New has
// returned it: callers must not modify it, its Fields or its Reply.
type Command struct {
	// Name is the CallbackCommand, e.g. "Group.CallbackAfterSendMsg".
	Name string
	// Family is the part of Name before the dot ("Group").
	Family string
	// Kind says whether IM acts on the reply.
	Kind Kind
	// ClientIP reports whether IM sends the ClientIP query parameter.
	ClientIP bool
	// OptPlatform reports whether IM sends the OptPlatform query parameter.
	OptPlatform bool
	// BodyCommand reports whether the documented body carries a top-level
	// CallbackCommand (then required, and equal to the query's). Push.*
	// bodies carry it inside each event, ContentCallback.ResultNotify
	// bodies not at all.
	BodyCommand bool
	// Source is the URL of the Tencent page the entry is typed from.
	Source string
	// Fields are the top-level body fields imedge checks.
	Fields []Field
	// Reply is the schema of the reply IM acts on; nil for After commands.
	Reply *ReplySchema
}

// ServedByDefault reports whether imedge serves the command when no
// --commands pattern is given: every After command. Before and Reply
// commands need a decision path.
func (c *Command) ServedByDefault() bool { return c.Kind == After }

// Required returns the paths of the required fields, top level first, in
// table order.
func (c *Command) Required() []string {
	var out []string
	var walk func(fs []Field)
	walk = func(fs []Field) {
		for i := range fs {
			if fs[i].Required {
				out = append(out, fs[i].Path)
			}
		}
		for i := range fs {
			if fs[i].Required {
				walk(fs[i].Fields)
			}
		}
	}
	walk(c.Fields)
	return out
}

// family returns the part of name before its first dot, or "" when there is
// none.
func family(name string) string {
	f, _, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	return f
}
