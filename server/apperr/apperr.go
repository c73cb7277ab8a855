// Package apperr defines eventgate's domain errors. Each carries a public code (the GraphQL
// `extensions.code` and the REST `error.code`), a message safe to show, and for bad input the
// offending field. Anything that is not an *Error is internal: logged, never shown.
package apperr

import (
	"errors"
	"fmt"
)

// Public error codes of the contract (DESIGN.md §3).
const (
	Unauthenticated = "UNAUTHENTICATED"
	Forbidden       = "FORBIDDEN"
	BadUserInput    = "BAD_USER_INPUT"
	NotFound        = "NOT_FOUND"
	CursorExpired   = "CURSOR_EXPIRED"
	RateLimited     = "RATE_LIMITED"
	SlowConsumer    = "SLOW_CONSUMER"
	Internal        = "INTERNAL_SERVER_ERROR"
)

// Error is a domain error that may be shown to the client.
type Error struct {
	Code    string
	Message string
	// Field names the offending input, such as "input.url" or "payload.amount_kopeks".
	Field string
	// Extra holds additional extensions, such as a resume cursor.
	Extra map[string]any
	// HTTPStatus, when set, is the status a REST endpoint answers with (e.g. 413, 429).
	HTTPStatus int
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// BadInput reports invalid input in field.
func BadInput(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// New makes an error with a code and message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// As returns the domain error inside err, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// WithPrefix returns a copy of err whose field is prefixed, e.g. "input." + "url".
func WithPrefix(err error, prefix string) error {
	e, ok := As(err)
	if !ok || e.Field == "" {
		return err
	}
	c := *e
	c.Field = prefix + e.Field
	return &c
}
