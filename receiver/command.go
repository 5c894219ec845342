package receiver

import (
	"bytes"

	"github.com/imedge/imedge/audit"
)

// CommandFriendDelete is IM's "After a Friend Is Deleted" callback.
const CommandFriendDelete = "Sns.CallbackFriendDelete"

// verdict is the outcome of validating a body.
type verdict struct {
	reason audit.Reason // "" when the body is accepted
	detail string       // fixed text for the audit record
	empty  bool         // accepted but carries nothing to forward
}

// commandSpec is what the receiver knows about one CallbackCommand. To serve
// another command, write its body validator and add it to commandFor.
type commandSpec struct {
	// name is the CallbackCommand.
	name string
	// validate checks body in one pass with the pooled scanner s.
	validate func(s *scanner, body []byte, lim limits) verdict
}

// limits are the configurable bounds a validator applies.
type limits struct {
	maxAccount int // bytes per account id after unescaping
}

// commandFor returns the spec of a served command. The table is a switch
// rather than a package-level map so that nothing can mutate it.
func commandFor(name string) (commandSpec, bool) {
	switch name {
	case CommandFriendDelete:
		return commandSpec{name: CommandFriendDelete, validate: validateFriendDelete}, true
	}
	return commandSpec{}, false
}

// validateFriendDelete checks a Sns.CallbackFriendDelete body:
//
//	{"CallbackCommand":"Sns.CallbackFriendDelete",
//	 "PairList":[{"From_Account":"id","To_Account":"id1"}, ...]}
//
// CallbackCommand must be the string Sns.CallbackFriendDelete; PairList an
// array of objects each with non-empty From_Account and To_Account strings
// of valid UTF-8, at most lim.maxAccount bytes each. Other fields are
// ignored (and forwarded untouched). A key that differs from a known one
// only in case is refused: Go's encoding/json, among others, would read it
// as the known field, and a downstream parser must never see a value that
// was not checked here.
func validateFriendDelete(s *scanner, body []byte, lim limits) verdict {
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
	var sawCommand, sawPairs bool
	pairs := 0
	if s.openObject() {
		for more := s.member(true); more; more = s.member(false) {
			key := s.lastKey()
			switch {
			case string(key) == "CallbackCommand":
				sawCommand = true
				s.commandValue(CommandFriendDelete)
			case string(key) == "PairList":
				sawPairs = true
				pairs = s.pairList(lim)
			case bytes.EqualFold(key, []byte("CallbackCommand")) || bytes.EqualFold(key, []byte("PairList")):
				s.fail("key differs from a known key only in case")
			default:
				s.value()
			}
			if s.failed() {
				break
			}
		}
	}
	if !s.failed() {
		s.end()
	}
	if s.failed() {
		return verdict{reason: audit.BadJSON, detail: s.syntax}
	}
	if !sawCommand {
		s.semantic(audit.CommandMismatch, "CallbackCommand missing from body")
	}
	if !sawPairs {
		s.semantic(audit.BadPairList, "PairList missing")
	}
	if s.sem != "" {
		return verdict{reason: s.sem, detail: s.semDetail}
	}
	return verdict{empty: pairs == 0}
}

// commandValue scans the value of the body's CallbackCommand and records a
// mismatch unless it is the string want.
func (s *scanner) commandValue(want string) {
	if s.peek() != '"' {
		if s.value() {
			s.semantic(audit.CommandMismatch, "CallbackCommand in body not a string")
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
		s.semantic(audit.CommandMismatch, "CallbackCommand in body differs from query")
	}
}

// pairList scans the value of PairList and returns its element count.
func (s *scanner) pairList(lim limits) int {
	if s.peek() != '[' {
		if s.value() {
			s.semantic(audit.BadPairList, "PairList not an array")
		}
		return 0
	}
	n := 0
	if !s.openArray() {
		return 0
	}
	for more := s.element(true); more; more = s.element(false) {
		n++
		if s.peek() == '{' {
			s.pair(lim)
		} else if s.value() {
			s.semantic(audit.BadPairList, "PairList element not an object")
		}
		if s.failed() {
			return n
		}
	}
	return n
}

// pair scans one PairList element, an object.
func (s *scanner) pair(lim limits) {
	if !s.openObject() {
		return
	}
	var from, to bool
	for more := s.member(true); more; more = s.member(false) {
		key := s.lastKey()
		switch {
		case string(key) == "From_Account":
			from = true
			s.account(lim)
		case string(key) == "To_Account":
			to = true
			s.account(lim)
		case bytes.EqualFold(key, []byte("From_Account")) || bytes.EqualFold(key, []byte("To_Account")):
			s.fail("key differs from a known key only in case")
		default:
			s.value()
		}
		if s.failed() {
			return
		}
	}
	if !s.failed() && (!from || !to) {
		s.semantic(audit.BadPairList, "pair lacks From_Account or To_Account")
	}
}

// account scans a From_Account or To_Account value.
func (s *scanner) account(lim limits) {
	if s.peek() != '"' {
		if s.value() {
			s.semantic(audit.BadAccount, "account not a string")
		}
		return
	}
	st := s.str()
	switch {
	case st.bad:
		s.fail("malformed string")
	case st.badText:
		s.semantic(audit.BadAccount, "account not valid UTF-8")
	case st.n == 0:
		s.semantic(audit.BadAccount, "account empty")
	case st.n > lim.maxAccount:
		s.semantic(audit.BadAccount, "account too long")
	}
}
