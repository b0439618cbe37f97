package turnover

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status at the API's edge.
const (
	EINVALID       = "invalid_request"   // the request is malformed
	EUNAUTHORIZED  = "unauthorized"      // no verified identity
	EFORBIDDEN     = "forbidden"         // the identity may not do this
	ENOTFOUND      = "not_found"         // no such thing in this domain
	ECONFLICT      = "conflict"          // the state does not allow it now
	EUNPROCESSABLE = "unprocessable"     // well-formed but refused by a rule
	ETOOLARGE      = "payload_too_large" // the body is over the limit
	EINTERNAL      = "internal"          // our fault; details go to the log only
)

// Error is an application error: a code for programs and a message for people. Its
// message is safe to show to the caller.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an application error with the given code and message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode is the code of an application error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage is the message of an application error in err's chain, or a generic one
// that says nothing of the internals.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong on our side. Nothing more was changed; try again later."
}
