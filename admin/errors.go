package admin

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrInvalidOptions is returned (wrapped, with the reason) by [New] when its
// options cannot work.
var ErrInvalidOptions = errors.New("admin: invalid options")

// ErrBadRequest is returned (wrapped, with the reason) by the outbox
// operations for a request they cannot run: an unknown action, a bad
// filter, too many refs, a limit out of range. The admin API answers it
// with 400.
var ErrBadRequest = errors.New("admin: bad request")

// ErrUnreachable is returned (wrapped, with the cause) by [Client] when no
// admin listener answers at its address: the connection was refused or
// could not be made. imedge outbox then opens the outbox directly.
var ErrUnreachable = errors.New("admin: no admin listener answers")

// ErrNoCredential is returned (wrapped, with the cause) by [Client] when it
// needs the local credential and cannot read it.
var ErrNoCredential = errors.New("admin: local credential unavailable")

// APIError is an admin listener's answer other than 2xx, as [Client]
// returns it: the status and the error text of the JSON body.
type APIError struct {
	Status  int    // HTTP status
	Message string // the answer's "error" member, or its status text
}

func (e *APIError) Error() string {
	return fmt.Sprintf("admin listener answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}
