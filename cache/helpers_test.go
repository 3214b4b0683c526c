package cache_test

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// openAt opens the cache at path and closes it at the end of the test.
func openAt(t testing.TB, path string, opts cache.Options) *cache.Store {
	t.Helper()
	s, err := cache.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a fresh cache in a temporary directory.
func newStore(t testing.TB) (*cache.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	return openAt(t, path, cache.Options{}), path
}

func update(t testing.TB, s *cache.Store, fn func(tx *cache.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, s *cache.Store, fn func(tx *cache.Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// file returns a minimal valid file entry.
func file(path string) cache.Entry {
	return cache.Entry{Path: path, Kind: cache.KindFile, Mode: 0o644, Version: cache.VersionVector{"n1": 1}}
}

func dir(path string) cache.Entry {
	return cache.Entry{Path: path, Kind: cache.KindDir, Mode: fs.ModeDir | 0o755, Version: cache.VersionVector{"n1": 1}}
}

// fakeClock is an injected clock that tests advance by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }

type vv = cache.VersionVector
