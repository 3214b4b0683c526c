package relay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors that backends return (wrapped) besides fs.ErrNotExist,
// fs.ErrExist and fs.ErrPermission. Each of ErrAuth, ErrUnreachable and ErrTLS
// also tells what probably went wrong, so that a user-facing command can say
// so without parsing server text.
var (
	// ErrQuota: the relay refused to store more data (storage full, account
	// quota, or the repository's disk quota).
	ErrQuota = errors.New("relay storage quota exceeded")
	// ErrAuth: the server rejected the credentials. It matches
	// fs.ErrPermission too.
	ErrAuth = fmt.Errorf("authentication failed: %w", fs.ErrPermission)
	// ErrUnreachable: the host could not be resolved or connected to.
	ErrUnreachable = errors.New("relay host unreachable")
	// ErrTLS: the TLS handshake failed or the server's certificate was not
	// trusted.
	ErrTLS = errors.New("TLS handshake or certificate verification failed")
	// ErrInvalidName: an object name that ValidName rejects.
	ErrInvalidName = errors.New("invalid object name")
	// ErrUnsupported: the URL or an option asks for something the backend
	// cannot do.
	ErrUnsupported = errors.New("not supported")
	// ErrBadURL: a relay URL that does not parse, or whose scheme no
	// backend serves.
	ErrBadURL = errors.New("bad relay URL")
)

// markedError carries an explicit permanent/transient classification.
type markedError struct {
	err       error
	permanent bool
}

func (e *markedError) Error() string { return e.err.Error() }
func (e *markedError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying the same call cannot succeed.
// It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, permanent: true}
}

// Transient marks err as transient: the same call may succeed if retried
// (a dropped connection, a server busy answer, a rate limit).
// It returns nil for a nil err.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, permanent: false}
}

// IsPermanent reports whether retrying the call that returned err is
// pointless. An explicit mark (the outermost one) decides; otherwise the
// sentinels of this package and io/fs, invalid names and context ends are
// permanent, and any other error (typically a network failure) is transient.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var m *markedError
	if errors.As(err, &m) {
		return m.permanent
	}
	for _, target := range []error{
		fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrInvalid,
		ErrQuota, ErrAuth, ErrTLS, ErrInvalidName, ErrUnsupported,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// OpError records the operation and object name of a failed relay call.
// Backends return their errors wrapped in it so that messages name what
// failed; it never holds credentials.
type OpError struct {
	Op   string // "stat", "list", "get", "put", "delete", "rename", "quota", "connect"
	Name string // object name, or the relay location for "connect"
	Err  error
}

func (e *OpError) Error() string {
	if e.Name == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %q: %v", e.Op, e.Name, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// WrapOp returns err wrapped in an OpError, or nil for a nil err.
func WrapOp(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Name: name, Err: err}
}
