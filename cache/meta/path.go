package meta

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPath: a path is empty, absolute, has a trailing slash, an
// empty, "." or ".." component, or a NUL byte, or is too long.
var ErrInvalidPath = errors.New("invalid path")

// MaxPathLen is the longest path, in bytes, that the cache stores. It is
// bbolt's key size limit; real trees stay far below it.
const MaxPathLen = 32768

// ValidPath reports whether p can name an entry: a relative, slash-separated
// path with no empty, "." or ".." component, no leading or trailing slash,
// no NUL byte and at most MaxPathLen bytes. The error wraps ErrInvalidPath
// and names p. Paths are bytes: any other byte, including invalid UTF-8, is
// allowed, as it is in Linux file names.
func ValidPath(p string) error {
	why := ""
	switch {
	case p == "":
		why = "empty"
	case len(p) > MaxPathLen:
		why = fmt.Sprintf("longer than %d bytes", MaxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		why = "contains a NUL byte"
	case p[0] == '/':
		why = "absolute"
	case p[len(p)-1] == '/':
		why = "trailing slash"
	default:
		for c := range strings.SplitSeq(p, "/") {
			switch c {
			case "":
				why = "empty component"
			case ".", "..":
				why = fmt.Sprintf("%q component", c)
			}
			if why != "" {
				break
			}
		}
	}
	if why != "" {
		return fmt.Errorf("path %q: %s: %w", p, why, ErrInvalidPath)
	}
	return nil
}

// Entries are keyed by their path with every '/' replaced by a NUL byte.
// NUL cannot occur in a valid path, so the mapping is one to one, and since
// NUL sorts below every other byte a directory's key is followed directly by
// the keys of its whole subtree ("a", "a\x00b", "a\x00b\x00c", "a-b"): Walk
// reads one contiguous key range and Children can seek past each subtree.
