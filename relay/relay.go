// Package relay defines the dumb blob store that escalefs nodes share.
//
// A Relay stores opaque bytes under slash-separated names and knows nothing
// of the sync protocol built on top of it. Backends (one sub-package each)
// translate their native errors into the sentinels of this package and of
// io/fs at their boundary, so that nothing above them parses server strings.
// Wrappers (retry, limit, logging) are sub-packages too and are composed in
// one place, relay/all.
package relay

import (
	"context"
	"io"
	"time"
)

// Relay is a blob store addressed by object names (see ValidName).
//
// All methods are safe for concurrent use. Every method honours ctx: when it
// is cancelled the call returns promptly with an error wrapping ctx.Err() and
// leaves no partial object visible.
type Relay interface {
	// Stat returns the object's size and modification time. A missing object
	// yields an error wrapping fs.ErrNotExist.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object stored under dir, recursively, in no
	// particular order. dir is "" for the whole relay or a directory name
	// without a trailing slash. A dir that does not exist lists nothing and
	// is not an error. Temporary objects of in-progress puts are never listed.
	// An error returned by fn stops the listing and is returned as is.
	List(ctx context.Context, dir string, fn func(ObjectInfo) error) error

	// Get calls fn with a reader over length bytes of the object starting at
	// offset; length < 0 means up to the end. A range that reaches past the
	// end of the object is cut at the end; an offset at or past the end gives
	// an empty reader. The reader is valid only during fn. Wrappers may call
	// fn more than once (each time with a fresh reader from offset), so fn
	// must start over on each call. A missing object yields an error wrapping
	// fs.ErrNotExist and fn is not called.
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error

	// Put stores the payload under name, replacing any existing object and
	// creating parent directories as needed. Where Properties().AtomicPut is
	// true, readers see either the old or the complete new object, never a
	// partial one, and a failed or cancelled Put leaves nothing behind.
	Put(ctx context.Context, name string, p Payload) error

	// Delete removes the object. Deleting a missing object succeeds, so a
	// retried Delete is harmless.
	Delete(ctx context.Context, name string) error

	// Properties describes the backend. It does no I/O.
	Properties() Properties

	// Close releases connections. The Relay must not be used afterwards.
	Close() error
}

// Wrapper is implemented by the relays that wrap another one (retries,
// logging, limits, a lazy opening): Unwrap returns the wrapped relay, or
// nil when it is not known yet (a relay not opened yet).
type Wrapper interface {
	Unwrap() Relay
}

// As returns r as the optional interface T (Renamer, Creator,
// TempRemover, Quotaer) when the relay at the bottom of its wrappers
// implements it: a wrapper implements every optional interface and
// forwards the call, so a type check of the wrapper alone would always
// succeed. The T returned is r itself, so that the call still goes
// through the wrappers. A wrapper that does not know its relay yet (not
// opened) defers the answer to the call, which then fails with an error
// wrapping ErrUnsupported if the relay lacks the feature.
func As[T any](r any) (T, bool) {
	t, ok := r.(T)
	if !ok {
		return t, false
	}
	for inner := r; ; {
		w, ok := inner.(Wrapper)
		if !ok {
			_, has := inner.(T)
			return t, has
		}
		next := w.Unwrap()
		if next == nil {
			return t, true
		}
		inner = next
	}
}

// Renamer is implemented by relays that can move an object. Rename replaces
// an existing object at to and creates its parent directories. A missing
// source yields an error wrapping fs.ErrNotExist.
type Renamer interface {
	Rename(ctx context.Context, from, to string) error
}

// Creator is implemented by relays that can store an object only if none
// is there (an exclusive create): Create fails with an error wrapping
// fs.ErrExist when name exists, and two Creates of one name that race
// leave exactly one of them stored, the other failing. It is what two
// nodes that start a repository at the same moment rely on. A backend
// that cannot do it returns an error wrapping ErrUnsupported.
type Creator interface {
	Create(ctx context.Context, name string, p Payload) error
}

// TempRemover is implemented by relays whose temporary objects (TempPrefix
// names, hidden from List) can be found: RemoveTemp deletes those under dir
// (recursively; "" for the whole relay) last modified before before, and
// returns how many it deleted. A Put killed halfway leaves one behind.
type TempRemover interface {
	RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error)
}

// Quotaer is implemented by relays that can report their storage usage.
type Quotaer interface {
	Quota(ctx context.Context) (Usage, error)
}

// Usage is a storage account's consumption in bytes. Total is -1 when the
// account reports no limit; Used is -1 when it reports no usage.
type Usage struct {
	Used  int64
	Total int64
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string    // full object name, as given to Put
	Size    int64     // in bytes
	ModTime time.Time // as reported by the server; precision varies
}

// Properties are the facts about a backend that callers may rely on.
type Properties struct {
	// Scheme is the URL scheme that opened the relay, e.g. "ftps".
	Scheme string
	// Location is the relay's URL without credentials, fit for logs.
	Location string
	// AtomicPut is true when Put is all-or-nothing for readers.
	AtomicPut bool
	// MaxNameComponent is the longest name component in bytes that the
	// backend accepts (0: no known limit).
	MaxNameComponent int
}

// Payload is the content of a Put. It can be rewound so that a retried Put
// sends it again from the start.
type Payload interface {
	io.Reader
	// Length is the payload's total size in bytes.
	Length() int64
	// Rewind starts the payload over from its first byte.
	Rewind() error
}
