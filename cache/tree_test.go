package cache_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/escalefs/escalefs/cache"
)

// treePaths is a tree with the tricky neighbours of "a/b": siblings that
// sort between it and its subtree in plain string order ("a/b-c", "a/b.d"
// and "a/b!" are below '/'), a sibling with a longer name ("a/bc"), and
// entries whose parent directory has no entry of its own ("x/y/z").
var treePaths = []string{
	"a", "a/b", "a/b/c", "a/b/c/d", "a/b/e", "a/b!", "a/b-c", "a/b.d", "a/bc", "a/bc/x",
	"a0", "a-", "b", "x/y/z", "\xff",
}

func putAll(t testing.TB, s *cache.Store, paths []string) {
	t.Helper()
	update(t, s, func(tx *cache.Tx) error {
		for _, p := range paths {
			if err := tx.Put(file(p)); err != nil {
				return err
			}
		}
		return nil
	})
}

func walk(t *testing.T, s *cache.Store, prefix string) []string {
	t.Helper()
	var got []string
	view(t, s, func(tx *cache.Tx) error {
		return tx.Walk(prefix, func(e cache.Entry) error {
			got = append(got, e.Path)
			return nil
		})
	})
	return got
}

func children(t testing.TB, s *cache.Store, dir string) []string {
	t.Helper()
	var got []string
	view(t, s, func(tx *cache.Tx) error {
		return tx.Children(dir, func(e cache.Entry) error {
			got = append(got, e.Path)
			return nil
		})
	})
	return got
}

func TestWalk(t *testing.T) {
	s, _ := newStore(t)
	putAll(t, s, treePaths)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b/e", "a/b!", "a/b-c", "a/b.d", "a/bc", "a/bc/x",
			"a-", "a0", "b", "x/y/z", "\xff"}},
		{"a", []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b/e", "a/b!", "a/b-c", "a/b.d", "a/bc", "a/bc/x"}},
		{"a/b", []string{"a/b", "a/b/c", "a/b/c/d", "a/b/e"}},
		{"a/b/c", []string{"a/b/c", "a/b/c/d"}},
		{"a/b/c/d", []string{"a/b/c/d"}},
		{"a/bc", []string{"a/bc", "a/bc/x"}},
		{"x", []string{"x/y/z"}}, // no entry for x itself
		{"x/y", []string{"x/y/z"}},
		{"a/b/", nil}, // invalid; checked below
		{"nothing", nil},
		{"a/b/c/d/e", nil},
		{"a/", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if cache.ValidPath(tt.prefix) != nil && tt.prefix != "" {
				err := s.View(func(tx *cache.Tx) error { return tx.Walk(tt.prefix, func(cache.Entry) error { return nil }) })
				if !errors.Is(err, cache.ErrInvalidPath) {
					t.Errorf("Walk(%q) = %v, want ErrInvalidPath", tt.prefix, err)
				}
				return
			}
			if got := walk(t, s, tt.prefix); !slices.Equal(got, tt.want) {
				t.Errorf("Walk(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestChildren(t *testing.T) {
	s, _ := newStore(t)
	putAll(t, s, treePaths)
	tests := []struct {
		dir  string
		want []string
	}{
		{"", []string{"a", "a-", "a0", "b", "\xff"}}, // "x" has no entry
		{"a", []string{"a/b", "a/b!", "a/b-c", "a/b.d", "a/bc"}},
		{"a/b", []string{"a/b/c", "a/b/e"}},
		{"a/b/c", []string{"a/b/c/d"}},
		{"a/b/c/d", nil},
		{"x", nil},
		{"x/y", []string{"x/y/z"}},
		{"missing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			if got := children(t, s, tt.dir); !slices.Equal(got, tt.want) {
				t.Errorf("Children(%q) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

func TestWalkIncludesTombstonesAndStopsOnError(t *testing.T) {
	s, _ := newStore(t)
	putAll(t, s, []string{"d/1", "d/2", "d/3"})
	tomb := file("d/2")
	tomb.Deleted = true
	if err := s.Put(tomb); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	view(t, s, func(tx *cache.Tx) error {
		return tx.Children("d", func(e cache.Entry) error {
			if e.Deleted {
				deleted = append(deleted, e.Path)
			}
			return nil
		})
	})
	if !slices.Equal(deleted, []string{"d/2"}) {
		t.Errorf("tombstones seen by Children = %q, want [d/2]", deleted)
	}

	stop := errors.New("stop")
	for name, iter := range map[string]func(tx *cache.Tx, fn func(cache.Entry) error) error{
		"Walk":     func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Walk("d", fn) },
		"Children": func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Children("d", fn) },
	} {
		n := 0
		err := s.View(func(tx *cache.Tx) error {
			return iter(tx, func(cache.Entry) error { n++; return stop })
		})
		if err != stop || n != 1 {
			t.Errorf("%s: returned %v after %d calls, want fn's error as is after 1", name, err, n)
		}
	}
}

func TestMutationDuringWalk(t *testing.T) {
	s, _ := newStore(t)
	putAll(t, s, []string{"d/1", "d/2"})
	for name, iter := range map[string]func(tx *cache.Tx, fn func(cache.Entry) error) error{
		"Walk":     func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Walk("", fn) },
		"Children": func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Children("d", fn) },
	} {
		t.Run(name, func(t *testing.T) {
			var putErr, delErr error
			update(t, s, func(tx *cache.Tx) error {
				err := iter(tx, func(e cache.Entry) error {
					putErr = tx.Put(file("d/new"))
					delErr = tx.Delete(e.Path)
					// Other buckets may change during a walk.
					_, err := tx.Enqueue(e.Path, nil)
					return err
				})
				if err != nil {
					return err
				}
				// After the walk, changes are allowed again.
				return tx.Put(file("d/after-" + name))
			})
			if !errors.Is(putErr, cache.ErrWalking) || !errors.Is(delErr, cache.ErrWalking) {
				t.Errorf("Put, Delete during %s = %v, %v; want ErrWalking", name, putErr, delErr)
			}
			if _, ok, _ := s.Get("d/new"); ok {
				t.Errorf("Put during %s stored its entry", name)
			}
			if _, ok, _ := s.Get("d/after-" + name); !ok {
				t.Errorf("Put after %s failed", name)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s, _ := newStore(t)
	putAll(t, s, []string{"a", "a/b", "a/b/c"})
	if err := s.Delete("a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a/b"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Delete("never/was"); err != nil {
		t.Fatalf("Delete of a missing path: %v", err)
	}
	if got, want := walk(t, s, ""), []string{"a", "a/b/c"}; !slices.Equal(got, want) {
		t.Errorf("after Delete(a/b): %q, want %q (Delete removes one entry, not its subtree)", got, want)
	}
}

const bigDir = 100_000

// bigTree stores bigDir files in "big", a subdirectory "big/sub" with its
// own files, and neighbours of "big" before and after it.
func bigTree(t testing.TB, s *cache.Store) {
	t.Helper()
	update(t, s, func(tx *cache.Tx) error {
		for _, p := range []string{"big", "big/sub", "bif", "big-x", "big0"} {
			if err := tx.Put(dir(p)); err != nil {
				return err
			}
		}
		for i := range bigDir {
			if err := tx.Put(file(fmt.Sprintf("big/f%06d", i))); err != nil {
				return err
			}
		}
		for i := range 1000 {
			for _, d := range []string{"big/sub", "big-x", "bif"} {
				if err := tx.Put(file(fmt.Sprintf("%s/g%04d", d, i))); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func TestChildrenLargeDirectory(t *testing.T) {
	s, _ := newStore(t)
	bigTree(t, s)
	tests := []struct {
		dir   string
		count int
	}{
		{"big", bigDir + 1}, // the files and big/sub, not sub's contents
		{"big/sub", 1000},   // not big's files, not big-x's
		{"", 4},             // big, big-x, big0, bif
		{"big/f000042", 0},  // a file has no children
		{"big-x", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			before := s.Decoded()
			got := children(t, s, tt.dir)
			if len(got) != tt.count {
				t.Fatalf("Children(%q) returned %d entries, want %d", tt.dir, len(got), tt.count)
			}
			if decoded := s.Decoded() - before; decoded != int64(tt.count) {
				t.Errorf("Children(%q) decoded %d entries for %d children", tt.dir, decoded, tt.count)
			}
			if !slices.IsSorted(got) {
				t.Errorf("Children(%q) not in name order", tt.dir)
			}
		})
	}
	if got := children(t, s, "big"); got[0] != "big/f000000" || got[bigDir] != "big/sub" {
		t.Errorf("Children(big) = %q … %q", got[0], got[bigDir])
	}
}

func BenchmarkChildren(b *testing.B) {
	s, _ := newStore(b)
	bigTree(b, s)
	for b.Loop() {
		n := 0
		err := s.View(func(tx *cache.Tx) error {
			return tx.Children("big", func(cache.Entry) error { n++; return nil })
		})
		if err != nil || n != bigDir+1 {
			b.Fatalf("Children: %d entries, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(bigDir+1), "ns/entry")
}
