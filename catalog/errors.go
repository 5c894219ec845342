package catalog

import "errors"

// ErrBadPattern reports a command pattern that is none of "*",
// "Family.*" or "Family.Command".
var ErrBadPattern = errors.New("catalog: bad command pattern")

// ErrBadReply reports a decision service's reply that breaks the command's
// reply schema; the caller answers IM with the command's fallback.
var ErrBadReply = errors.New("catalog: reply breaks the command's schema")

// ErrBadCode reports a deny code the command does not accept.
var ErrBadCode = errors.New("catalog: deny code not allowed for the command")

// ErrNotDecided reports a reply question about a command whose reply IM
// ignores (an After command).
var ErrNotDecided = errors.New("catalog: IM ignores the reply to this command")
