package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// TempPrefix starts the last component of every temporary object that a
// backend writes while a Put is in progress. Such names are reserved: they
// are refused by ValidName and never listed.
const TempPrefix = ".escalefs-tmp."

// ValidName checks an object name: non-empty, valid UTF-8, slash-separated
// components that are neither empty, "." nor "..", no leading or trailing
// slash, no NUL or other control character, no backslash, and no component
// starting with TempPrefix. The error wraps ErrInvalidName and quotes the
// offending name.
func ValidName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
	}
	switch {
	case name == "":
		return bad("empty")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("must be relative (no leading slash)")
	case strings.HasSuffix(name, "/"):
		return bad("must not end with a slash")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("contains a control character")
		}
		if r == '\\' {
			return bad("contains a backslash")
		}
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "":
			return bad("empty path component")
		case c == "." || c == "..":
			return bad("contains a . or .. component")
		case strings.HasPrefix(c, TempPrefix):
			return bad("uses the reserved prefix " + TempPrefix)
		}
	}
	return nil
}

// ValidDir checks a List directory: "" (the root) or a valid name.
func ValidDir(dir string) error {
	if dir == "" {
		return nil
	}
	return ValidName(dir)
}

// TempName returns a fresh temporary name in the same directory as name.
// It is short, so that it fits wherever name fits.
func TempName(name string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	t := TempPrefix + hex.EncodeToString(b[:])
	if dir := path.Dir(name); dir != "." {
		return dir + "/" + t
	}
	return t
}

// IsTempName reports whether the last component of name marks a temporary
// object of an in-progress Put.
func IsTempName(name string) bool {
	return strings.HasPrefix(path.Base(name), TempPrefix)
}

// Parents returns the ancestor directories of name, shortest first:
// "a/b/c" gives ["a", "a/b"].
func Parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}

// newObjectsKey marks a context whose Puts store new objects.
type newObjectsKey struct{}

// NewObjects returns ctx with its Puts marked as storing new objects:
// under names no reader looks for until the caller publishes them (a blob,
// which a record written after it names). A backend may then write such
// an object in place, in one request, rather than under a temporary name
// moved over it at the end. A failed Put still removes what it wrote, as
// far as it can; a crash may leave a partial object under the name, which
// the caller must tell from a whole one (by its size) and clear.
func NewObjects(ctx context.Context) context.Context {
	return context.WithValue(ctx, newObjectsKey{}, true)
}

// PutTarget returns the name a backend's Put writes the payload under
// before it is in place: name itself for a new object (NewObjects), else
// a fresh temporary name beside it (TempName).
func PutTarget(ctx context.Context, name string) string {
	if fresh, _ := ctx.Value(newObjectsKey{}).(bool); fresh {
		return name
	}
	return TempName(name)
}
