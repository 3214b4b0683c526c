package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/versions"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// TestMountVersionsTree: .escalefs/versions in the mount's root shows the
// kept versions as name~DATE-TIME.ext, readable, never listed in the root,
// and read-only.
func TestMountVersionsTree(t *testing.T) {
	fuseUsable(t)
	at := time.Date(2026, 12, 6, 10, 10, 10, 0, time.Local)
	store, err := versions.Open(filepath.Join(t.TempDir(), "versions"), versions.Options{Clock: fixedClock{at}})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(src, []byte("old content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Keep(src, "docs/report.txt", versions.PulledEdit, ""); err != nil {
		t.Fatal(err)
	}
	mnt, backing := t.TempDir(), t.TempDir()
	srv, err := Mount(context.Background(), mnt, backing, Options{Versions: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		srv.Wait()
	})
	if err := os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("now"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(names, func(e os.DirEntry) bool { return e.Name() == ControlDir }) {
		t.Errorf("the root lists %s", ControlDir)
	}
	p := filepath.Join(mnt, ControlDir, "versions", "docs", "report~20261206-101010.txt")
	if b, err := os.ReadFile(p); err != nil || string(b) != "old content\n" {
		t.Fatalf("reading %s: %q, %v", p, b, err)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, ControlDir, "versions"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "docs" || !ents[0].IsDir() {
		t.Errorf("versions/ lists %v (%v), want docs/", ents, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm()&0o222 != 0 || fi.Size() != 12 {
		t.Errorf("stat %s: %v, %v; want read-only, 12 bytes", p, fi, err)
	}
	for what, err := range map[string]error{
		"write":  os.WriteFile(p, []byte("x"), 0o644),
		"create": os.WriteFile(filepath.Join(mnt, ControlDir, "versions", "new.txt"), []byte("x"), 0o644),
		"remove": os.Remove(p),
		"mkdir":  os.Mkdir(filepath.Join(mnt, ControlDir, "versions", "d"), 0o755),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in the versions tree: %v, want EROFS", what, err)
		}
	}
	if _, err := os.Stat(filepath.Join(backing, ControlDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the backing directory holds %s: %v", ControlDir, err)
	}
}

// keptLocal records what the mount hands to its LocalVersions.
type keptLocal struct {
	mu   sync.Mutex
	kept []string // "rel how content"
}

func (k *keptLocal) Keep(rel string, f *os.File, how Replaced) {
	b, err := io.ReadAll(f)
	if err != nil {
		b = []byte(err.Error())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept = append(k.kept, fmt.Sprintf("%s %d %s", rel, how, b))
}

func (k *keptLocal) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.kept
	k.kept = nil
	return out
}

// TestMountKeepsLocalVersions: with LocalVersions, what a write, a
// truncate, a rename over a file and an unlink through the mount replace
// is handed over before it goes; an append, a new file and an empty file
// are not.
func TestMountKeepsLocalVersions(t *testing.T) {
	fuseUsable(t)
	k := &keptLocal{}
	_, mnt, _ := mount(t, Options{LocalVersions: k})
	p := func(name string) string { return filepath.Join(mnt, name) }
	steps := []struct {
		what string
		do   func() error
		want []string
	}{
		{"create", func() error { return os.WriteFile(p("a.txt"), []byte("one"), 0o644) }, nil},
		{"overwrite", func() error { return os.WriteFile(p("a.txt"), []byte("two"), 0o644) }, []string{"a.txt 1 one"}},
		{"append", func() error {
			f, err := os.OpenFile(p("a.txt"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteString("+")
			return errors.Join(err, f.Close())
		}, nil},
		{"truncate", func() error { return os.Truncate(p("a.txt"), 1) }, []string{"a.txt 1 two+"}},
		{"empty", func() error { return os.WriteFile(p("e.txt"), nil, 0o644) }, nil},
		{"write empty", func() error { return os.WriteFile(p("e.txt"), []byte("x"), 0o644) }, nil},
		{"new b", func() error { return os.WriteFile(p("b.txt"), []byte("bee"), 0o644) }, nil},
		{"tmp", func() error { return os.WriteFile(p("b.tmp"), []byte("new bee"), 0o644) }, nil},
		{"rename over", func() error { return os.Rename(p("b.tmp"), p("b.txt")) }, []string{"b.txt 2 bee"}},
		{"rename to new", func() error { return os.Rename(p("b.txt"), p("c.txt")) }, nil},
		{"unlink", func() error { return os.Remove(p("c.txt")) }, []string{"c.txt 3 new bee"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if got := k.take(); !slices.Equal(got, s.want) {
			t.Errorf("%s: kept %q, want %q", s.what, got, s.want)
		}
	}
}
