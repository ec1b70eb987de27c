package control

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes of admin replies ({"success":false,"error":{"code":...}}).
const (
	CodeBadRequest    = "bad_request"    // 400: the body is not the JSON the endpoint takes
	CodeUnknownAction = "unknown_action" // 400: action is not one of the valid ones
	CodeInvalidField  = "invalid_field"  // 422: a field is missing, of the wrong type or out of range
	CodeUnauthorized  = "unauthorized"   // 401: missing, invalid or expired token
	CodeForbidden     = "forbidden"      // 403: a valid token without the admin claims
	CodeNotFound      = "not_found"      // 404: the socket, breaker... does not exist
	CodeConflict      = "conflict"       // 409: the change conflicts with the configuration (a rule of the alerts file)
	CodeTooLarge      = "too_large"      // 413: body over Config.MaxBodyBytes
	CodeRateLimited   = "rate_limited"   // 429: too many failed authentications from this IP
	CodeAdminDisabled = "admin_disabled" // 503: no admin secret configured
	CodeUnavailable   = "unavailable"    // 503: the server is shutting down
	CodeInternal      = "internal"       // 500: the store failed
	CodeMethod        = "method_not_allowed"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("control: server closed")

// Error is a refused or failed admin request: the HTTP status, the code of
// the JSON reply and, for CodeInvalidField, the field at fault (a path such
// as "data.limit").
type Error struct {
	Status  int
	Code    string
	Field   string
	Message string
	// Err is the underlying cause, if any; it is logged, never sent.
	Err error
	// RetryAfter, when positive, is how long a 429 asks the caller to
	// wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("control: %s (%s): %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("control: %s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so that
// errors.Is(err, &Error{Code: CodeNotFound}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Field == "" || t.Field == e.Field)
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

func invalidField(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalidField, Field: field,
		Message: field + ": " + fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

func internalError(what string, err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: what, Err: err}
}

// asError turns any error into an *Error (500 for those that are not one).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internalError("internal error", err)
}
