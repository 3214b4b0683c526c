package localdir_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
)

func TestScanDetectsChanges(t *testing.T) {
	old := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	tests := []struct {
		name   string
		before func(f *fixture) // state recorded in the cache
		change func(f *fixture) // what happens on disk afterwards
		want   []string
	}{
		{
			name:   "nothing changed",
			before: func(f *fixture) { f.write("a", "x"); f.mkdir("d"); f.symlink("a", "l") },
			change: func(f *fixture) {},
			want:   nil,
		},
		{
			name:   "file created",
			before: func(f *fixture) {},
			change: func(f *fixture) { f.write("a", "x") },
			want:   []string{"create a"},
		},
		{
			name:   "file modified, size changed",
			before: func(f *fixture) { f.write("a", "x") },
			change: func(f *fixture) { f.write("a", "xy") },
			want:   []string{"modify a"},
		},
		{
			name:   "file modified, same size, mtime put back",
			before: func(f *fixture) { f.write("a", "xxxx"); f.chtimes("a", old) },
			change: func(f *fixture) { f.write("a", "yyyy"); f.chtimes("a", old) },
			want:   []string{"modify a"},
		},
		{
			name:   "file deleted",
			before: func(f *fixture) { f.write("a", "x"); f.write("b", "y") },
			change: func(f *fixture) { f.remove("a") },
			want:   []string{"delete a"},
		},
		{
			name:   "directory made, with contents",
			before: func(f *fixture) {},
			change: func(f *fixture) { f.write("d/e/f", "x"); f.symlink("../f", "d/l") },
			want:   []string{"mkdir d", "mkdir d/e", "create d/e/f", "symlink d/l"},
		},
		{
			name:   "directory removed, with contents",
			before: func(f *fixture) { f.write("d/e/f", "x"); f.write("d/g", "y"); f.write("z", "z") },
			change: func(f *fixture) { f.remove("d") },
			want:   []string{"delete d/g", "delete d/e/f", "rmdir d/e", "rmdir d"},
		},
		{
			name:   "file mode changed",
			before: func(f *fixture) { f.write("a", "x") },
			change: func(f *fixture) { f.chmod("a", 0o600) },
			want:   []string{"chmod a"},
		},
		{
			name:   "setuid and sticky bits count",
			before: func(f *fixture) { f.write("a", "x"); f.mkdir("d") },
			change: func(f *fixture) { f.chmod("a", fs.ModeSetuid|0o644); f.chmod("d", fs.ModeSticky|0o755) },
			want:   []string{"chmod a", "chmod d"},
		},
		{
			name:   "directory mode changed",
			before: func(f *fixture) { f.mkdir("d") },
			change: func(f *fixture) { f.chmod("d", 0o700) },
			want:   []string{"chmod d"},
		},
		{
			name:   "mtime only",
			before: func(f *fixture) { f.write("a", "x"); f.chtimes("a", old) },
			change: func(f *fixture) { f.chtimes("a", old.Add(time.Nanosecond)) },
			want:   []string{"touch a"},
		},
		{
			name:   "identical copy saved over the file",
			before: func(f *fixture) { f.write("a", "x"); f.chtimes("a", old) },
			change: func(f *fixture) { f.write("tmp", "x"); f.chtimes("tmp", old); f.rename("tmp", "a") },
			want:   []string{"restat a"},
		},
		{
			name:   "symlink created",
			before: func(f *fixture) {},
			change: func(f *fixture) { f.symlink("nowhere", "l") },
			want:   []string{"symlink l"},
		},
		{
			name:   "symlink retargeted",
			before: func(f *fixture) { f.symlink("one", "l") },
			change: func(f *fixture) { f.remove("l"); f.symlink("two", "l") },
			want:   []string{"retarget l"},
		},
		{
			name:   "symlink deleted",
			before: func(f *fixture) { f.symlink("one", "l") },
			change: func(f *fixture) { f.remove("l") },
			want:   []string{"delete l"},
		},
		{
			name:   "file replaced by a directory",
			before: func(f *fixture) { f.write("p", "x") },
			change: func(f *fixture) { f.remove("p"); f.write("p/q", "y") },
			want:   []string{"delete p", "mkdir p", "create p/q"},
		},
		{
			name:   "directory replaced by a file",
			before: func(f *fixture) { f.write("p/q", "x") },
			change: func(f *fixture) { f.remove("p"); f.write("p", "y") },
			want:   []string{"delete p/q", "rmdir p", "create p"},
		},
		{
			name:   "file renamed",
			before: func(f *fixture) { f.write("a", "content"); f.write("b", "other") },
			change: func(f *fixture) { f.rename("a", "c") },
			want:   []string{"rename a -> c"},
		},
		{
			name:   "file moved into a new directory",
			before: func(f *fixture) { f.write("a", "content") },
			change: func(f *fixture) { f.mkdir("n/m"); f.rename("a", "n/m/a") },
			want:   []string{"mkdir n", "mkdir n/m", "rename a -> n/m/a"},
		},
		{
			name:   "file moved out of a directory that is then removed",
			before: func(f *fixture) { f.write("d/a", "content") },
			change: func(f *fixture) { f.rename("d/a", "a"); f.remove("d") },
			want:   []string{"rename d/a -> a", "rmdir d"},
		},
		{
			name:   "empty file renamed (paired by inode)",
			before: func(f *fixture) { f.write("a", ""); f.write("b", "") },
			change: func(f *fixture) { f.rename("b", "c") },
			want:   []string{"rename b -> c"},
		},
		{
			name:   "symlink renamed",
			before: func(f *fixture) { f.symlink("t", "l") },
			change: func(f *fixture) { f.rename("l", "m") },
			want:   []string{"rename l -> m"},
		},
		{
			name:   "copy and delete is not a rename",
			before: func(f *fixture) { f.write("a", "content") },
			change: func(f *fixture) { f.write("c", "content"); f.remove("a") },
			want:   []string{"create c", "delete a"},
		},
		{
			name:   "renamed and modified is not a rename",
			before: func(f *fixture) { f.write("a", "content") },
			change: func(f *fixture) { f.rename("a", "c"); f.write("c", "changed") },
			want:   []string{"create c", "delete a"},
		},
		{
			name: "directory renamed with its subtree",
			before: func(f *fixture) {
				f.write("d/a", "1")
				f.write("d/e/b", "2")
				f.write("d/e/g/c", "3")
				f.write("d/e/empty", "")
				f.mkdir("d/e/h")
				f.symlink("../a", "d/e/l")
				f.write("other", "4")
			},
			change: func(f *fixture) { f.rename("d", "x") },
			want:   []string{"rename d -> x"},
		},
		{
			name:   "empty directory renamed (by inode)",
			before: func(f *fixture) { f.mkdir("d"); f.mkdir("e") },
			change: func(f *fixture) { f.rename("d", "x") },
			want:   []string{"rename d -> x"},
		},
		{
			name:   "nested directory renamed",
			before: func(f *fixture) { f.write("p/d/a", "1"); f.write("p/d/s/b", "2"); f.write("p/z", "3") },
			change: func(f *fixture) { f.rename("p/d", "p/y") },
			want:   []string{"rename p/d -> p/y"},
		},
		{
			name:   "directory renamed into a new directory",
			before: func(f *fixture) { f.write("d/a", "1") },
			change: func(f *fixture) { f.mkdir("n"); f.rename("d", "n/d") },
			want:   []string{"mkdir n", "rename d -> n/d"},
		},
		{
			name:   "directory renamed, then changed inside",
			before: func(f *fixture) { f.write("d/a", "1"); f.write("d/b", "2"); f.write("d/s/c", "3") },
			change: func(f *fixture) {
				f.rename("d", "x")
				f.chmod("x/a", 0o600)
				f.chmod("x/s", 0o700)
				f.write("x/new", "5")
			},
			want: []string{"rename d -> x", "chmod x/a", "create x/new", "chmod x/s"},
		},
		{
			name:   "directory renamed, then a file inside it modified",
			before: func(f *fixture) { f.write("d/a", "1"); f.write("d/b", "2") },
			change: func(f *fixture) { f.rename("d", "x"); f.write("x/a", "changed") },
			want:   []string{"mkdir x", "create x/a", "rename d/b -> x/b", "delete d/a", "rmdir d"},
		},
		{
			name:   "directory renamed and replaced by a file",
			before: func(f *fixture) { f.write("d/a", "1") },
			change: func(f *fixture) { f.rename("d", "x"); f.write("d", "now a file") },
			want:   []string{"rename d -> x", "create d"},
		},
		{
			name:   "temporary files are ignored",
			before: func(f *fixture) {},
			change: func(f *fixture) { f.write(localdir.TempPrefix+"123", "x"); f.write("d/"+localdir.TempPrefix+"x", "y") },
			want:   []string{"mkdir d"},
		},
		{
			name:   "a FIFO is not reported, and replacing a file counts as its deletion",
			before: func(f *fixture) { f.write("a", "x") },
			change: func(f *fixture) {
				f.remove("a")
				for _, p := range []string{"a", "fifo"} {
					if err := syscall.Mkfifo(f.abs(p), 0o644); err != nil {
						f.t.Fatal(err)
					}
				}
			},
			want: []string{"delete a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.before(f)
			f.sync()
			tc.change(f)
			res := f.scan(localdir.ScanOptions{})
			if got := summaries(res.Changes); !slices.Equal(got, tc.want) {
				t.Fatalf("changes:\n%swant:\n%s", describe(res.Changes), strings.Join(tc.want, "\n"))
			}
			if len(res.Unstable) != 0 || len(res.Failed) != 0 {
				t.Errorf("unstable %v, failed %v", res.Unstable, res.Failed)
			}
			// Applying the changes brings the cache in line with the disk.
			f.apply(res.Changes)
			again := f.scan(localdir.ScanOptions{})
			if len(again.Changes) != 0 {
				t.Fatalf("after applying, a new scan finds:\n%s", describe(again.Changes))
			}
		})
	}
}

func TestScanChangeFields(t *testing.T) {
	f := newFixture(t)
	mt := time.Date(2021, 5, 6, 7, 8, 9, 987654321, time.UTC)
	f.write("a", "hello")
	f.chmod("a", 0o640)
	f.chtimes("a", mt)
	f.mkdir("d")
	f.chmod("d", 0o750)
	f.symlink("a", "l")
	res := f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 3 {
		t.Fatalf("changes:\n%s", describe(res.Changes))
	}
	a, d, l := res.Changes[0], res.Changes[1], res.Changes[2]
	if a.Op != localdir.OpCreate || a.Kind != cache.KindFile || a.Size != 5 || a.Hash != sum("hello") ||
		!a.ModTime.Equal(mt) || a.ModTime.Location() != time.UTC || a.Mode != 0o640 || a.Target != "" {
		t.Errorf("file change %+v", a)
	}
	if a.Local != diskStat(t, f.abs("a")) {
		t.Errorf("file Local %+v, disk %+v", a.Local, diskStat(t, f.abs("a")))
	}
	if d.Op != localdir.OpMkdir || d.Kind != cache.KindDir || d.Mode != 0o750 || d.Size != 0 || d.Hash != ([32]byte{}) {
		t.Errorf("dir change %+v", d)
	}
	if d.Local.Inode != diskStat(t, f.abs("d")).Inode {
		t.Errorf("dir Local %+v", d.Local)
	}
	if l.Op != localdir.OpSymlink || l.Kind != cache.KindSymlink || l.Target != "a" || l.Mode != 0 || l.Local != diskStat(t, f.abs("l")) {
		t.Errorf("symlink change %+v", l)
	}
	f.apply(res.Changes)
	f.remove("a")
	res = f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 1 || !reflect.DeepEqual(res.Changes[0], localdir.Change{Op: localdir.OpDelete, Path: "a", Kind: cache.KindFile}) {
		t.Errorf("deletion: %+v", res.Changes)
	}
}

func TestScanHashesOnlyCandidates(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.write("d/f"+string(rune('a'+i)), strings.Repeat("x", i))
	}
	res := f.sync() // sync itself checks that the rescan hashed nothing
	if res.HashedFiles != 20 {
		t.Errorf("first scan hashed %d files, want 20", res.HashedFiles)
	}
	f.chmod("d/fa", 0o600) // ctime moves, content does not: hashed, reported as chmod
	f.write("d/fb", "y")
	f.chtimes("d/fc", time.Unix(1, 0))
	res = f.scan(localdir.ScanOptions{})
	if res.HashedFiles != 3 || res.HashedBytes != 0+1+2 {
		t.Errorf("hashed %d files, %d bytes; want 3 files, 3 bytes", res.HashedFiles, res.HashedBytes)
	}
	want := []string{"chmod d/fa", "modify d/fb", "touch d/fc"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
}

func TestScanUnstable(t *testing.T) {
	f := newFixture(t)
	f.write("a", "version 1")
	f.write("b", "steady")
	f.sync()
	f.write("a", "version 2")
	f.write("new", "growing")
	grow := func(rel string) {
		if rel != "a" && rel != "new" {
			return
		}
		fh, err := os.OpenFile(f.abs(rel), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer fh.Close()
		if _, err := fh.WriteString(" and more"); err != nil {
			t.Error(err)
		}
	}
	localdir.SetHashHook(f.d, grow)
	res := f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 0 {
		t.Errorf("changes for files that changed while hashed:\n%s", describe(res.Changes))
	}
	if !slices.Equal(res.Unstable, []string{"a", "new"}) {
		t.Errorf("unstable %v, want [a new]", res.Unstable)
	}
	// Once the files settle, a scan of just those paths reports them.
	localdir.SetHashHook(f.d, nil)
	res = f.scan(localdir.ScanOptions{Paths: res.Unstable})
	want := []string{"modify a", "create new"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
	if h := res.Changes[0].Hash; h != sum("version 2 and more") {
		t.Errorf("hash of a is %x", h)
	}
}

func TestScanRenameNeedsSameInode(t *testing.T) {
	f := newFixture(t)
	f.write("a", "same")
	f.write("b", "same")
	f.sync()
	// Both go, one comes back under a new name: the one whose inode it
	// has is the source.
	f.rename("b", "c")
	f.remove("a")
	res := f.scan(localdir.ScanOptions{})
	want := []string{"rename b -> c", "delete a"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
}

func TestScanSymlinksNotFollowed(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.write("real/inner", "y")
	f.sync()
	f.symlink(outside, "out")
	f.symlink("real", "in")
	f.symlink("/etc/passwd", "abs")
	res := f.scan(localdir.ScanOptions{})
	want := []string{"symlink abs", "symlink in", "symlink out"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Fatalf("changes:\n%s", describe(res.Changes))
	}
	f.apply(res.Changes)
	// A scan of a path through a symlink sees nothing there: not the file
	// the link leads to, and no deletion of the link's own entry.
	res = f.scan(localdir.ScanOptions{Paths: []string{"in/inner", "out/secret"}})
	if len(res.Changes) != 0 {
		t.Errorf("scan through symlinks:\n%s", describe(res.Changes))
	}
	// A directory of the cache replaced by a symlink to a directory with
	// the same contents is a deletion of the directory, not followed.
	f.write("d/x", "z")
	f.sync()
	f.rename("d", "d2")
	f.symlink("d2", "d")
	res = f.scan(localdir.ScanOptions{})
	want = []string{"rename d -> d2", "symlink d"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
}

func TestScanInvalidNamesSkipped(t *testing.T) {
	f := newFixture(t)
	// Build a path longer than cache.MaxPathLen through relative opens:
	// the kernel refuses such long absolute names.
	r, err := os.OpenRoot(f.root)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("n", 250)
	depth := 0
	for total := 0; total <= cache.MaxPathLen; total += len(name) + 1 {
		if err := r.Mkdir(name, 0o755); err != nil {
			t.Fatal(err)
		}
		sub, err := r.OpenRoot(name)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		r = sub
		depth++
	}
	if err := r.WriteFile("deep", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Close()
	f.write("ok", "fine")
	res := f.scan(localdir.ScanOptions{})
	if len(res.Failed) != 0 || len(res.Unstable) != 0 {
		t.Errorf("failed %v, unstable %v", res.Failed, res.Unstable)
	}
	var mkdirs int
	for _, ch := range res.Changes {
		if err := cache.ValidPath(ch.Path); err != nil {
			t.Errorf("invalid path reported: %v", err)
		}
		switch {
		case ch.Op == localdir.OpMkdir:
			mkdirs++
		case ch.Path != "ok":
			t.Errorf("unexpected change %s", summary(ch))
		}
	}
	if mkdirs != depth-1 {
		t.Errorf("%d directories reported, want the %d whose paths are valid", mkdirs, depth-1)
	}
	if !strings.Contains(f.logs.String(), "skipping a name that cannot be synced") {
		t.Errorf("no warning logged; logs:\n%s", f.logs)
	}
	// The cache has it all now; the skipped name is not a deletion.
	f.apply(res.Changes)
	if again := f.scan(localdir.ScanOptions{}); len(again.Changes) != 0 {
		t.Errorf("rescan:\n%s", describe(again.Changes))
	}
}

func TestScanSkip(t *testing.T) {
	f := newFixture(t)
	f.write("keep", "1")
	f.write("ignored/a", "2")
	f.write("x.tmp", "3")
	f.sync()
	f.skip = func(rel string, isDir bool) bool {
		return rel == "ignored" && isDir || strings.HasSuffix(rel, ".tmp")
	}
	// Skipped paths are neither created nor deleted, on disk or in the cache.
	f.remove("ignored")
	f.remove("x.tmp")
	f.write("ignored/b", "4")
	f.write("new.tmp", "5")
	f.write("keep2", "6")
	res := f.scan(localdir.ScanOptions{})
	if got := summaries(res.Changes); !slices.Equal(got, []string{"create keep2"}) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
	res = f.scan(localdir.ScanOptions{Paths: []string{"ignored/a", "ignored/b", "x.tmp"}})
	if len(res.Changes) != 0 {
		t.Errorf("scoped changes:\n%s", describe(res.Changes))
	}
}

func TestScanScoped(t *testing.T) {
	f := newFixture(t)
	f.write("a/1", "1")
	f.write("a/2", "2")
	f.write("b/3", "3")
	f.write("c/4", "4")
	f.sync()
	f.write("a/new", "n")
	f.remove("a/1")
	f.rename("b/3", "c/3")
	f.write("outside", "o")
	f.remove("c/4")
	res := f.scan(localdir.ScanOptions{Paths: []string{"c/3", "a", "b/3", "a/new", "missing/x"}})
	want := []string{"create a/new", "rename b/3 -> c/3", "delete a/1"}
	if got := summaries(res.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
	// A scope whose parent is gone reports the deletions below it.
	f.sync()
	f.remove("a")
	res = f.scan(localdir.ScanOptions{Paths: []string{"a/2"}})
	if got := summaries(res.Changes); !slices.Equal(got, []string{"delete a/2"}) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
	if _, err := f.d.Scan(context.Background(), f.store, localdir.ScanOptions{Paths: []string{"../x"}}); !errors.Is(err, cache.ErrInvalidPath) {
		t.Errorf("invalid scope: %v", err)
	}
}

func TestScanNeverSeenNotDeleted(t *testing.T) {
	f := newFixture(t)
	// A pulled entry not installed yet (Local zero) and a tombstone.
	err := f.store.Update(func(tx *cache.Tx) error {
		if err := tx.Put(cache.Entry{Path: "pending", Kind: cache.KindFile, Size: 3}); err != nil {
			return err
		}
		return tx.Put(cache.Entry{Path: "gone", Kind: cache.KindFile, Deleted: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	res := f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 0 {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
	f.write("gone", "back")
	res = f.scan(localdir.ScanOptions{})
	if got := summaries(res.Changes); !slices.Equal(got, []string{"create gone"}) {
		t.Errorf("changes:\n%s", describe(res.Changes))
	}
}

func TestScanRacyFingerprintSmudged(t *testing.T) {
	f := newFixture(t)
	f.write("a", "x")
	ctime := diskStat(t, f.abs("a")).CTimeNs
	// Scan as if just after the write: the fingerprint is not trusted.
	f.clock.Set(time.Unix(0, ctime).Add(50 * time.Millisecond))
	res := f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 1 || res.Changes[0].Local.CTimeNs != 0 || res.Changes[0].Local.Inode == 0 {
		t.Fatalf("changes: %+v", res.Changes)
	}
	f.apply(res.Changes)
	// Later, the file is hashed again and its full fingerprint reported.
	f.clock.Advance(time.Minute)
	res = f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 1 || res.Changes[0].Op != localdir.OpRestat || res.Changes[0].Local != diskStat(t, f.abs("a")) {
		t.Fatalf("changes: %+v", res.Changes)
	}
	f.apply(res.Changes)
	if res := f.scan(localdir.ScanOptions{}); len(res.Changes) != 0 || res.HashedFiles != 0 {
		t.Errorf("third scan: %d changes, %d hashed", len(res.Changes), res.HashedFiles)
	}
}

// TestRacyWindow: a file's fingerprint is not trusted within 100 ms of its
// last change where the ctime has a part below the second (the kernel
// stamps it from a clock of 1–10 ms ticks), within a second where it is in
// whole seconds (a file system that may count in seconds).
func TestRacyWindow(t *testing.T) {
	sec := int64(time.Second)
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		changed, now int64
		racy         bool
	}{
		{1000*sec + 123456789, 1000*sec + 123456789 + 99*ms, true},
		{1000*sec + 123456789, 1000*sec + 123456789 + 100*ms, false},
		{1000*sec + 1, 1000*sec + 1 + 150*ms, false},
		{1000 * sec, 1000*sec + 150*ms, true},
		{1000 * sec, 1000*sec + 999*ms, true},
		{1000 * sec, 1001 * sec, false},
	} {
		if got := localdir.Racy(c.changed, c.now); got != c.racy {
			t.Errorf("changed %d, now %d: racy %v, want %v", c.changed, c.now, got, c.racy)
		}
	}
}

func TestScanErrors(t *testing.T) {
	f := newFixture(t)
	f.write("a", "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.d.Scan(ctx, f.store, localdir.ScanOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v", err)
	}
	if err := os.RemoveAll(f.root); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Scan(context.Background(), f.store, localdir.ScanOptions{}); err == nil {
		t.Error("scan of a missing root succeeded")
	}
	if _, err := localdir.New(filepath.Join(t.TempDir(), "missing"), localdir.Options{}); err == nil {
		t.Error("New of a missing directory succeeded")
	}
}

func TestScanOrderInvariants(t *testing.T) {
	f := newFixture(t)
	f.write("k/a", "1")
	f.write("k/b/c", "2")
	f.write("m", "3")
	f.write("p/q/r", "4")
	f.sync()
	f.remove("k")
	f.write("k", "file now")
	f.remove("m")
	f.write("m/n/o", "dir now")
	f.mkdir("z/y")
	f.rename("p/q/r", "z/y/r")
	f.remove("p")
	res := f.scan(localdir.ScanOptions{})
	pos := make(map[string]int)
	for i, ch := range res.Changes {
		pos[summary(ch)] = i
	}
	before := func(a, b string) {
		t.Helper()
		i, ok1 := pos[a]
		j, ok2 := pos[b]
		if !ok1 || !ok2 || i >= j {
			t.Errorf("want %q before %q in:\n%s", a, b, describe(res.Changes))
		}
	}
	before("delete k/b/c", "rmdir k/b")
	before("rmdir k/b", "rmdir k")
	before("delete k/a", "rmdir k")
	before("rmdir k", "create k")
	before("delete m", "mkdir m")
	before("mkdir m", "mkdir m/n")
	before("mkdir m/n", "create m/n/o")
	before("mkdir z/y", "rename p/q/r -> z/y/r")
	before("rename p/q/r -> z/y/r", "rmdir p/q")
	before("rmdir p/q", "rmdir p")
	f.apply(res.Changes)
	if again := f.scan(localdir.ScanOptions{}); len(again.Changes) != 0 {
		t.Errorf("rescan:\n%s", describe(again.Changes))
	}
}

func TestScanLargeFileConstantMemory(t *testing.T) {
	f := newFixture(t)
	fh, err := os.Create(f.abs("big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	res := f.scan(localdir.ScanOptions{})
	runtime.ReadMemStats(&m1)
	if len(res.Changes) != 1 || res.HashedBytes != 1<<30 {
		t.Fatalf("changes %+v, hashed %d bytes", res.Changes, res.HashedBytes)
	}
	const zeros1GiB = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
	if got := hex.EncodeToString(res.Changes[0].Hash[:]); got != zeros1GiB {
		t.Errorf("hash %s, want %s", got, zeros1GiB)
	}
	if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 16<<20 {
		t.Errorf("scanning a 1 GiB file allocated %d MiB", grew>>20)
	}
}

// blockHasher hashes a file by blocks of 4 KiB (a chunker's stand-in):
// each block's SHA-256 is its ID, and the content hash is the SHA-256 of
// the IDs.
type blockHasher struct{ calls int }

func (b *blockHasher) HashChunks(_ context.Context, r io.ReaderAt, size int64) ([32]byte, []cache.ChunkSpan, error) {
	b.calls++
	all := sha256.New()
	var spans []cache.ChunkSpan
	for off := int64(0); off < size; off += 4096 {
		buf := make([]byte, min(4096, size-off))
		if _, err := r.ReadAt(buf, off); err != nil {
			return [32]byte{}, nil, fmt.Errorf("reading at %d: %w", off, io.ErrUnexpectedEOF)
		}
		id := sha256.Sum256(buf)
		all.Write(id[:])
		spans = append(spans, cache.ChunkSpan{ID: id, Offset: off, Length: int64(len(buf))})
	}
	return [32]byte(all.Sum(nil)), spans, nil
}

// TestScanHashesByChunks: with ScanOptions.Chunks, the files of ChunksFrom
// bytes and more are hashed by it, and their chunks reported; smaller
// ones by SHA-256. A file that shrinks while it is cut is unstable.
func TestScanHashesByChunks(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("0123456789abcdef", 1000) // 16,000 bytes: 4 chunks
	f.write("big", big)
	f.write("small", "tiny")
	bh := &blockHasher{}
	opts := localdir.ScanOptions{Chunks: bh, ChunksFrom: 10000}
	res := f.scan(opts)
	byPath := make(map[string]localdir.Change)
	for _, ch := range res.Changes {
		byPath[ch.Path] = ch
	}
	want, spans, _ := (&blockHasher{}).HashChunks(t.Context(), strings.NewReader(big), int64(len(big)))
	if b := byPath["big"]; b.Hash != want || !reflect.DeepEqual(b.Chunks, spans) || len(b.Chunks) != 4 {
		t.Errorf("big: hash %x, %d chunks; want %x, 4 chunks", b.Hash, len(b.Chunks), want)
	}
	if s := byPath["small"]; s.Hash != sha256.Sum256([]byte("tiny")) || s.Chunks != nil {
		t.Errorf("small: hash %x, chunks %v; want its SHA-256, none", s.Hash, s.Chunks)
	}
	if bh.calls != 1 || res.HashedBytes != int64(len(big)+4) {
		t.Errorf("%d files hashed by chunks, %d bytes hashed", bh.calls, res.HashedBytes)
	}
	f.apply(res.Changes)
	if res := f.scan(opts); len(res.Changes) != 0 || bh.calls != 1 {
		t.Errorf("untouched: %d changes, %d files hashed by chunks in all", len(res.Changes), bh.calls)
	}

	f.write("big", big+"more")
	localdir.SetHashHook(f.d, func(rel string) {
		if err := os.Truncate(f.abs(rel), 100); err != nil {
			t.Error(err)
		}
	})
	res = f.scan(opts)
	localdir.SetHashHook(f.d, nil)
	if len(res.Changes) != 0 || !slices.Equal(res.Unstable, []string{"big"}) {
		t.Errorf("shrunk while cut: changes %+v, unstable %v", res.Changes, res.Unstable)
	}
}
