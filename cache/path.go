package cache

import (
	"bytes"
	"fmt"

	"github.com/escalefs/escalefs/cache/meta"
)

// pathKey returns the bbolt key of a valid path.
func pathKey(p string) []byte {
	k := []byte(p)
	for i, c := range k {
		if c == '/' {
			k[i] = 0
		}
	}
	return k
}

// keyPath returns the path of a key and checks that it is valid, so that a
// damaged key is reported rather than handed to the caller.
func keyPath(k []byte) (string, error) {
	p := string(bytes.ReplaceAll(k, []byte{0}, []byte{'/'}))
	if bytes.IndexByte(k, '/') >= 0 {
		// A '/' in a key cannot come from pathKey.
		return p, fmt.Errorf("entry key %q: contains '/': %w", k, ErrCorrupt)
	}
	if err := ValidPath(p); err != nil {
		return p, fmt.Errorf("entry key %q: %w: %w", k, err, ErrCorrupt)
	}
	return p, nil
}

// MaxPathLen is meta.MaxPathLen: bbolt's key size limit.
const MaxPathLen = meta.MaxPathLen

// ValidPath is meta.ValidPath.
func ValidPath(p string) error { return meta.ValidPath(p) }
