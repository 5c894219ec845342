package receiver

import (
	"bytes"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
)

// CommandFriendDelete is IM's "After a Friend Is Deleted" callback.
const CommandFriendDelete = "Sns.CallbackFriendDelete"

// verdict is the outcome of validating a body.
type verdict struct {
	reason audit.Reason // "" when the body is accepted
	detail string       // fixed text and a field path from the catalog, for the audit record
	empty  bool         // accepted but carries nothing to forward (an empty PairList)
}

// bodyRule is a command's catalog entry compiled for the scanner: the
// checked fields of the top-level object, the first of them the body's
// CallbackCommand.
type bodyRule struct {
	top objRule
}

// objRule lists the checked members of one object. An object has at most
// 64 checked fields (the catalog's tests hold it to that), so the fields
// seen fit in a uint64.
type objRule struct {
	fields []fieldRule
}

// fieldRule is one checked member, from a catalog.Field.
type fieldRule struct {
	name     string
	nameB    []byte // name, for bytes.EqualFold
	path     string // for the audit detail
	typ      catalog.Type
	required bool
	command  bool // the top-level CallbackCommand: equal to the query's
	account  bool // values are account ids: problems are bad_account
	id       bool // values are other ids: non-empty when required, bounded
	maxBytes int  // per string value; 0 means no bound
	minItems int
	maxItems int
	reason   audit.Reason // structural problems
	nothing  bool         // an empty array here means nothing to forward
	obj      *objRule     // members of an object, or of each element of an array of objects
}

// compileCommand compiles a catalog entry. maxAccount bounds account ids
// for which the catalog sets no bound of its own.
func compileCommand(cmd *catalog.Command, maxAccount int) *bodyRule {
	r := &bodyRule{}
	r.top.fields = append(r.top.fields, commandField(cmd.BodyCommand))
	r.top.fields = append(r.top.fields, compileFields(cmd.Fields, maxAccount).fields...)
	return r
}

// genericRule is what a command outside the catalog gets: a JSON object
// whose top-level CallbackCommand, where present, equals the query's.
func genericRule() *bodyRule {
	return &bodyRule{top: objRule{fields: []fieldRule{commandField(false)}}}
}

// commandField is the top-level CallbackCommand, required where the
// command's documented body carries one. Where it does not, a
// CallbackCommand that is present must still equal the query's.
func commandField(required bool) fieldRule {
	const name = "CallbackCommand"
	return fieldRule{name: name, nameB: []byte(name), path: name, typ: catalog.String,
		required: required, command: true, reason: audit.CommandMismatch}
}

func compileFields(fs []catalog.Field, maxAccount int) objRule {
	var o objRule
	for _, f := range fs {
		r := fieldRule{
			name: f.Name, nameB: []byte(f.Name), path: f.Path, typ: f.Type, required: f.Required,
			account: f.Account, id: f.ID, maxBytes: f.MaxBytes,
			minItems: f.MinItems, maxItems: f.MaxItems, reason: f.Reason, nothing: f.NothingIfEmpty,
		}
		if r.account && r.maxBytes == 0 {
			r.maxBytes = maxAccount
		}
		if len(f.Fields) > 0 {
			sub := compileFields(f.Fields, maxAccount)
			r.obj = &sub
		}
		o.fields = append(o.fields, r)
	}
	return o
}

// find returns the index of the field named key, or -1; folded reports a
// key that differs from a checked field's name only in case (Unicode
// simple folding, as bytes.EqualFold and Go's encoding/json compare).
func (o *objRule) find(key []byte) (i int, folded bool) {
	for i := range o.fields {
		if f := &o.fields[i]; len(f.name) == len(key) && string(key) == f.name {
			return i, false
		}
	}
	return -1, o.folds(key)
}

// folds reports whether key, which is no field's exact name, equals one
// ignoring case.
func (o *objRule) folds(key []byte) bool {
	for _, c := range key {
		if c >= 0x80 {
			// A non-ASCII key may fold onto an ASCII name (the Kelvin
			// sign folds to k), whatever its length in bytes.
			for i := range o.fields {
				if bytes.EqualFold(key, o.fields[i].nameB) {
					return true
				}
			}
			return false
		}
	}
	for i := range o.fields {
		if f := &o.fields[i]; len(f.name) == len(key) && equalFoldASCII(key, f.name) {
			return true
		}
	}
	return false
}

// validate checks body against rule in one pass. command is the query's
// CallbackCommand, which the body's must equal. A syntax error gives
// bad_json; otherwise the semantic error of highest priority is reported
// (command_mismatch, bad_pairlist, bad_account, bad_field).
func (s *scanner) validate(body []byte, rule *bodyRule, command string) verdict {
	s.reset(body)
	if s.peek() != '{' {
		if s.pos == len(s.data) {
			return verdict{reason: audit.BadJSON, detail: "empty body"}
		}
		s.value()
		if !s.failed() {
			return verdict{reason: audit.BadJSON, detail: "top level not an object"}
		}
		return verdict{reason: audit.BadJSON, detail: s.syntax}
	}
	empty := s.object(&rule.top, command)
	if !s.failed() {
		s.end()
	}
	if s.failed() {
		return verdict{reason: audit.BadJSON, detail: s.syntax}
	}
	if s.sem != "" {
		return verdict{reason: s.sem, detail: s.semPath + ": " + s.semProblem}
	}
	return verdict{empty: empty}
}

// object scans the object at the current position (which holds '{')
// against o, and reports whether one of its arrays marked nothing was
// empty.
func (s *scanner) object(o *objRule, command string) (empty bool) {
	if !s.openObject() {
		return false
	}
	var seen uint64
	for more := s.member(true); more; more = s.member(false) {
		i, folded := o.find(s.lastKey())
		switch {
		case i >= 0:
			seen |= 1 << i
			if s.field(&o.fields[i], command) {
				empty = true
			}
		case folded:
			s.fail("key differs from a checked key only in case")
		default:
			s.value()
		}
		if s.failed() {
			return false
		}
	}
	if s.failed() {
		return false
	}
	for i := range o.fields {
		if f := &o.fields[i]; f.required && seen&(1<<i) == 0 {
			problem := "missing"
			if f.command {
				problem = "missing from body"
			}
			s.semantic(f.reason, f.path, problem)
		}
	}
	return empty
}

// field scans the value of one checked member and reports whether it is an
// empty array marked nothing.
func (s *scanner) field(f *fieldRule, command string) bool {
	c := s.peek()
	if c == 'n' && !f.required {
		s.value() // null: as if absent
		return false
	}
	switch {
	case f.command:
		s.commandValue(command)
	case f.typ == catalog.String:
		s.stringValue(f, "not a string")
	case f.typ == catalog.Number:
		if c == '-' || '0' <= c && c <= '9' {
			s.number()
		} else {
			s.wrongType(f.reason, f, "not a number")
		}
	case f.typ == catalog.Time:
		s.timeValue(f)
	case f.typ == catalog.Object:
		switch {
		case c != '{':
			s.wrongType(f.reason, f, "not an object")
		case f.obj != nil:
			s.object(f.obj, "")
		default:
			s.value()
		}
	default: // Array, Strings, Objects
		if c != '[' {
			s.wrongType(f.reason, f, "not an array")
			return false
		}
		return s.array(f) == 0 && f.nothing
	}
	return false
}

// wrongType scans a value of the wrong type and records problem under
// reason, unless the value is not even JSON.
func (s *scanner) wrongType(reason audit.Reason, f *fieldRule, problem string) {
	if s.value() {
		s.semantic(reason, f.path, problem)
	}
}

// commandValue scans the value of the body's CallbackCommand and records a
// mismatch unless it is the string want.
func (s *scanner) commandValue(want string) {
	if s.peek() != '"' {
		if s.value() {
			s.semantic(audit.CommandMismatch, "CallbackCommand", "in body not a string")
		}
		return
	}
	st := s.str()
	switch {
	case st.bad:
		s.fail("malformed string")
	case st.badText:
		s.fail("invalid UTF-8 or lone surrogate in string")
	case string(s.text(st)) != want:
		s.semantic(audit.CommandMismatch, "CallbackCommand", "in body differs from query")
	}
}

// stringValue scans a string member or array element. A value of another
// type is recorded as problem: under bad_account for an account, under the
// field's reason otherwise.
func (s *scanner) stringValue(f *fieldRule, problem string) {
	if s.peek() != '"' {
		reason := f.reason
		if f.account {
			reason = audit.BadAccount
		}
		s.wrongType(reason, f, problem)
		return
	}
	st := s.str()
	if st.bad {
		s.fail("malformed string")
		return
	}
	if !f.account && !f.id {
		switch {
		case st.badText:
			s.fail("invalid UTF-8 or lone surrogate in string")
		case f.maxBytes > 0 && st.n > f.maxBytes:
			s.semantic(f.reason, f.path, "too long")
		}
		return
	}
	reason := f.reason
	if f.account {
		reason = audit.BadAccount
	}
	switch {
	case st.badText:
		s.semantic(reason, f.path, "not valid UTF-8")
	case st.n == 0 && f.required:
		s.semantic(reason, f.path, "empty")
	case f.maxBytes > 0 && st.n > f.maxBytes:
		s.semantic(reason, f.path, "too long")
	}
}

// timeValue scans a timestamp: a JSON number, or a string of 1 to
// catalog.MaxTimeDigits ASCII digits.
func (s *scanner) timeValue(f *fieldRule) {
	const problem = "not a number or a string of digits"
	switch c := s.peek(); {
	case c == '-' || '0' <= c && c <= '9':
		s.number()
	case c == '"':
		st := s.str()
		switch {
		case st.bad:
			s.fail("malformed string")
		case st.badText:
			s.fail("invalid UTF-8 or lone surrogate in string")
		case st.n == 0 || st.n > catalog.MaxTimeDigits || !isDecimalBytes(s.text(st)):
			s.semantic(f.reason, f.path, problem)
		}
	default:
		s.wrongType(f.reason, f, problem)
	}
}

// array scans the array at the current position (which holds '[') and
// returns its length.
func (s *scanner) array(f *fieldRule) int {
	if !s.openArray() {
		return 0
	}
	n := 0
	for more := s.element(true); more; more = s.element(false) {
		n++
		switch {
		case f.typ == catalog.Strings:
			s.stringValue(f, "element not a string")
		case f.typ == catalog.Objects && s.peek() != '{':
			s.wrongType(f.reason, f, "element not an object")
		case f.typ == catalog.Objects && f.obj != nil:
			s.object(f.obj, "")
		default:
			s.value()
		}
		if s.failed() {
			return n
		}
	}
	switch {
	case n < f.minItems:
		s.semantic(f.reason, f.path, "too few elements")
	case f.maxItems > 0 && n > f.maxItems:
		s.semantic(f.reason, f.path, "too many elements")
	}
	return n
}

// isDecimalBytes reports whether b is a non-empty run of ASCII digits.
func isDecimalBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
