package cache

import (
	"errors"
	"fmt"

	"github.com/escalefs/escalefs/cache/meta"
)

// Errors returned (wrapped, with details naming the path, node or file) by
// this package. Classify them with errors.Is.
var (
	// ErrInvalidPath (meta.ErrInvalidPath): a path is empty, absolute,
	// has a trailing slash, an empty, "." or ".." component, or a NUL
	// byte, or is too long.
	ErrInvalidPath = meta.ErrInvalidPath
	// ErrInvalidEntry: an Entry given to Put breaks a rule of Entry (unknown
	// kind, negative size, target on a non-symlink, bad access flag, empty
	// node ID in its version).
	ErrInvalidEntry = errors.New("invalid entry")
	// ErrInvalidKey: a node ID or metadata key is empty or longer than
	// MaxKeyLen bytes.
	ErrInvalidKey = errors.New("invalid key")
	// ErrCorrupt: a stored record cannot be decoded, or the file is not an
	// escalefs cache. The cache must be rebuilt; nothing in it was changed.
	ErrCorrupt = errors.New("cache is corrupt")
	// ErrInUse: another process (or another Store in this process) holds
	// the cache open.
	ErrInUse = errors.New("cache is in use")
	// ErrSchemaTooNew: the cache was written by a newer escalefs whose
	// schema this one does not know.
	ErrSchemaTooNew = errors.New("cache schema is newer than this escalefs supports")
	// ErrClosed: the Store was closed, or a Tx was used after the function
	// it was passed to returned.
	ErrClosed = errors.New("cache is closed")
	// ErrReadOnly: a write method was called on the Tx of View, or Update
	// on a Store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("read-only transaction")
	// ErrWalking: Put or Delete was called from the function of Walk or
	// Children, which would invalidate the iteration.
	ErrWalking = errors.New("entries changed during Walk or Children")
)

// InUseError is the error of Open when another process holds the cache: it
// wraps ErrInUse and names the holder.
type InUseError struct {
	Path string
	// PID is the holder's process ID, or 0 when it cannot be found.
	PID int
}

// Holder names the holding process: "pid N", or "pid unknown".
func (e *InUseError) Holder() string {
	if e.PID > 0 {
		return fmt.Sprintf("pid %d", e.PID)
	}
	return "pid unknown"
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("cache %s is in use by another escalefs process (%s): %v", e.Path, e.Holder(), ErrInUse)
}

// Unwrap returns ErrInUse.
func (e *InUseError) Unwrap() error { return ErrInUse }
