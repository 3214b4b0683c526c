package cache_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// A cache opened read-only reads what was written, refuses writes, waits
// for a writer like any Open, shares the lock with other readers and
// creates nothing.
func TestOpenReadOnly(t *testing.T) {
	s, path := newStore(t)
	update(t, s, func(tx *cache.Tx) error {
		_, err := tx.Enqueue("a.txt", nil)
		return err
	})
	if _, err := cache.Open(path, cache.Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, cache.ErrInUse) {
		t.Fatalf("read-only Open while open for writing = %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ro := openAt(t, path, cache.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if n, err := ro.QueueLen(); err != nil || n != 1 {
		t.Fatalf("QueueLen = %d, %v; want 1", n, err)
	}
	if err := ro.Update(func(tx *cache.Tx) error { return nil }); !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("Update of a read-only cache = %v, want ErrReadOnly", err)
	}
	openAt(t, path, cache.Options{ReadOnly: true, Timeout: 100 * time.Millisecond}) // a second reader
	if _, err := cache.Open(path, cache.Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, cache.ErrInUse) {
		t.Errorf("Open for writing while open read-only = %v, want ErrInUse", err)
	}

	missing := filepath.Join(t.TempDir(), "cache.db")
	if _, err := cache.Open(missing, cache.Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open of a missing cache = %v, want ErrNotExist", err)
	}
}
