package pigp

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. They are stable identifiers that each edge (SFTP, HTTP, CLI)
// maps once to its own status; they never change meaning.
const (
	EINTERNAL     = "internal"     // unexpected failure; details only in the logs
	EINVALID      = "invalid"      // the input breaks a rule
	ENOTFOUND     = "not_found"    // the object does not exist (or is not visible to the caller)
	ECONFLICT     = "conflict"     // the object already exists or is in the wrong state
	EFORBIDDEN    = "forbidden"    // the caller may not do this
	EUNAUTHORIZED = "unauthorized" // authentication failed
	ETOOLARGE     = "too_large"    // a size limit was reached
	EUNAVAILABLE  = "unavailable"  // the service is shutting down or a dependency is down
	EEXPIRED      = "expired"      // a credential or object has expired
	ELIMIT        = "limit"        // a per-session or per-account limit was reached; retry later
)

// Error is the one domain error type of pigp. Message is written for the
// person on the other side (in French when a département user reads it);
// Err carries the internal cause and is never shown to a client.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	default:
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted user message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with the given code and user message that keeps
// err as its internal cause.
func WrapError(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err. Internal errors give a
// generic French message so that their text never reaches a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) && e.Code != EINTERNAL && e.Message != "" {
		return e.Message
	}
	return "Erreur interne du serveur. Réessayez plus tard ou contactez l'assistance."
}

// Throttled is the cause of a login refused without being looked at
// (ELIMIT): too many failures from the client's address, or for its login
// from that address. Wait is how long until an attempt is looked at again.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return fmt.Sprintf("login throttled for %s", t.Wait) }

// RetryAfter returns the wait of a throttled login in err's chain, 0 when
// err is no such refusal.
func RetryAfter(err error) time.Duration {
	var t *Throttled
	if errors.As(err, &t) {
		return t.Wait
	}
	return 0
}
