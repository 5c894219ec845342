package egress

import (
	"errors"
	"fmt"
)

// ErrBadOption is wrapped by New's errors for a missing or invalid option.
var ErrBadOption = errors.New("egress: invalid option")

// ErrUnknownRegion is wrapped by RegionHost and New for a region name not in
// the table (see Regions).
var ErrUnknownRegion = errors.New("egress: unknown region")

// ErrBadResponse is wrapped by a fetch whose answer is not a GetIPList
// reply: a status other than 200, a body that is not the expected JSON, or
// an ActionStatus other than OK without an error code.
var ErrBadResponse = errors.New("egress: malformed GetIPList response")

// ErrResponseTooLarge is wrapped by a fetch whose answer exceeds
// MaxResponseBytes.
var ErrResponseTooLarge = errors.New("egress: GetIPList response too large")

// ErrTooManyEntries is wrapped by a fetch whose IPList has more than
// MaxEntries entries. The whole answer is refused rather than truncated:
// a truncated list would refuse some of IM's own addresses.
var ErrTooManyEntries = errors.New("egress: GetIPList response has too many entries")

// ErrBadUserSig is wrapped by ParseUserSig and VerifyUserSig for a UserSig
// that does not decode, does not match the key, or has expired.
var ErrBadUserSig = errors.New("egress: invalid UserSig")

// APIError is a GetIPList answer with a non-zero ErrorCode: IM understood
// the request and refused it (a bad UserSig, an unknown admin account, a
// rate limit). Callers match it with errors.As.
type APIError struct {
	Code int    // IM's ErrorCode; public codes are 60000–79999
	Info string // IM's ErrorInfo, truncated to a short printable text
}

// Error names the code and IM's text.
func (e *APIError) Error() string {
	return fmt.Sprintf("egress: IM answered ErrorCode %d: %s", e.Code, e.Info)
}

// ErrEmptyAnswer is returned by Source.Refresh when every list came back
// without a usable entry: the previous list is kept, and Run retries as
// after a failure.
var ErrEmptyAnswer = errors.New("egress: IM answered an empty list")
