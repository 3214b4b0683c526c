package cache_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/cache"
)

func TestValidPath(t *testing.T) {
	tests := []struct {
		path string
		why  string // "" if valid
	}{
		{"a", ""},
		{"a/b/c", ""},
		{".hidden", ""},
		{"a/..b/c..", ""},
		{"...", ""},
		{"with space/ü/\xff", ""},
		{strings.Repeat("x", cache.MaxPathLen), ""},
		{"", "empty"},
		{"/", "absolute"},
		{"/a", "absolute"},
		{"a/", "trailing slash"},
		{"a//b", "empty component"},
		{".", `"." component`},
		{"..", `".." component`},
		{"a/./b", `"." component`},
		{"a/../b", `".." component`},
		{"a/..", `".." component`},
		{"../a", `".." component`},
		{"a\x00b", "NUL"},
		{strings.Repeat("x", cache.MaxPathLen+1), "longer than"},
	}
	for _, tt := range tests {
		name := tt.path
		if len(name) > 20 {
			name = fmt.Sprintf("%d bytes", len(name))
		}
		t.Run(name, func(t *testing.T) {
			err := cache.ValidPath(tt.path)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("ValidPath(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if !errors.Is(err, cache.ErrInvalidPath) {
				t.Fatalf("ValidPath(%q) = %v, want ErrInvalidPath", tt.path, err)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", tt.path)) || !strings.Contains(msg, tt.why) {
				t.Errorf("error %q does not name %q and say %q", msg, tt.path, tt.why)
			}
		})
	}
}

// TestInvalidPathEverywhere checks that every method taking a path refuses
// a bad one, naming it, before touching the database.
func TestInvalidPathEverywhere(t *testing.T) {
	s, _ := newStore(t)
	const bad = "a/../etc/passwd"
	nop := func(cache.Entry) error { return nil }
	calls := map[string]func(tx *cache.Tx) error{
		"Get":      func(tx *cache.Tx) error { _, _, err := tx.Get(bad); return err },
		"Put":      func(tx *cache.Tx) error { return tx.Put(file(bad)) },
		"Delete":   func(tx *cache.Tx) error { return tx.Delete(bad) },
		"Walk":     func(tx *cache.Tx) error { return tx.Walk(bad, nop) },
		"Children": func(tx *cache.Tx) error { return tx.Children(bad, nop) },
		"Enqueue":  func(tx *cache.Tx) error { _, err := tx.Enqueue(bad, nil); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := s.Update(call)
			if !errors.Is(err, cache.ErrInvalidPath) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
				t.Errorf("%s: %v, want ErrInvalidPath naming %q", name, err, bad)
			}
		})
	}
}

func TestInvalidKeys(t *testing.T) {
	s, _ := newStore(t)
	long := strings.Repeat("k", cache.MaxKeyLen+1)
	calls := map[string]func(tx *cache.Tx, k string) error{
		"PeerSeq":       func(tx *cache.Tx, k string) error { _, _, err := tx.PeerSeq(k); return err },
		"SetPeerSeq":    func(tx *cache.Tx, k string) error { return tx.SetPeerSeq(k, 1) },
		"PeerState":     func(tx *cache.Tx, k string) error { _, _, err := tx.PeerState(k); return err },
		"SetPeerState":  func(tx *cache.Tx, k string) error { return tx.SetPeerState(k, nil) },
		"DeletePeer":    func(tx *cache.Tx, k string) error { return tx.DeletePeer(k) },
		"Meta":          func(tx *cache.Tx, k string) error { _, _, err := tx.Meta(k); return err },
		"SetMeta":       func(tx *cache.Tx, k string) error { return tx.SetMeta(k, nil) },
		"DeleteMeta":    func(tx *cache.Tx, k string) error { return tx.DeleteMeta(k) },
		"MetaUint64":    func(tx *cache.Tx, k string) error { _, _, err := tx.MetaUint64(k); return err },
		"SetMetaUint64": func(tx *cache.Tx, k string) error { return tx.SetMetaUint64(k, 1) },
	}
	for name, call := range calls {
		for _, k := range []string{"", long} {
			err := s.Update(func(tx *cache.Tx) error { return call(tx, k) })
			if !errors.Is(err, cache.ErrInvalidKey) {
				t.Errorf("%s(%d-byte key) = %v, want ErrInvalidKey", name, len(k), err)
			}
		}
	}
}
