package localdir_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
)

var bg = context.Background()

func fileMeta(mode fs.FileMode, mtime time.Time) localdir.Meta {
	return localdir.Meta{Kind: cache.KindFile, Mode: mode, ModTime: mtime}
}

// install installs content at rel and fails the test on error.
func (f *fixture) install(rel, content string, expect *cache.LocalStat) cache.LocalStat {
	f.t.Helper()
	ls, err := f.d.Install(bg, rel, strings.NewReader(content), fileMeta(0o644, time.Time{}), expect)
	if err != nil {
		f.t.Fatalf("Install(%q): %v", rel, err)
	}
	return ls
}

func TestInstallAtomicForReaders(t *testing.T) {
	f := newFixture(t)
	// Versions of different sizes, each one repeated byte: a reader that
	// sees a mix or a short file has seen a partial install.
	const versions = 40
	all := make([][]byte, versions)
	for i := range all {
		all[i] = bytes.Repeat([]byte{byte('A' + i%26)}, 64<<10+(i%7)*100<<10)
	}
	content := func(i int) []byte { return all[i] }
	ls := f.install("f", string(content(0)), nil)
	stop := make(chan struct{})
	var reads int
	seen := map[byte]bool{}
	var wg gosync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(f.abs("f"))
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			reads++
			seen[b[0]] = true
			ok := false
			for i := range versions {
				if c := content(i); c[0] == b[0] && bytes.Equal(b, c) {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("read %d bytes starting %q: not one whole version", len(b), b[:min(len(b), 8)])
				return
			}
		}
	})
	for i := 1; i < versions; i++ {
		var err error
		ls, err = f.d.Install(bg, "f", bytes.NewReader(content(i)), fileMeta(0o644, time.Time{}), &ls)
		if err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if reads == 0 {
		t.Error("the reader never ran")
	}
	if len(seen) < 2 {
		t.Errorf("the reader saw %d version(s): it did not overlap the installs", len(seen))
	}
	t.Logf("%d reads of %d versions during %d installs", reads, len(seen), versions)
	if got := f.read("f"); got != string(content(versions-1)) {
		t.Errorf("final content is %d bytes", len(got))
	}
	if tmp := tempFiles(t, f.root); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestInstallMetadata(t *testing.T) {
	tests := []struct {
		name  string
		mode  fs.FileMode
		mtime time.Time
	}{
		{"nanosecond mtime", 0o640, time.Date(2019, 12, 31, 23, 59, 59, 123456789, time.UTC)},
		{"read-only", 0o444, time.Unix(1, 1)},
		{"setuid and sticky", fs.ModeSetuid | fs.ModeSticky | 0o755, time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC)},
		{"mode zero", 0, time.Unix(1_700_000_000, 999_999_999)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			old := syscallUmask(0o077) // the mode must not depend on the umask
			defer syscallUmask(old)
			ls, err := f.d.Install(bg, "a/b/f", strings.NewReader("data"), fileMeta(tc.mode, tc.mtime), nil)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(f.abs("a/b/f"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.mode {
				t.Errorf("mode %v, want %v", fi.Mode(), tc.mode)
			}
			if !fi.ModTime().Equal(tc.mtime) {
				t.Errorf("mtime %v, want %v", fi.ModTime(), tc.mtime)
			}
			if ls != diskStat(t, f.abs("a/b/f")) {
				t.Errorf("returned %+v, disk %+v", ls, diskStat(t, f.abs("a/b/f")))
			}
			for _, dir := range []string{"a", "a/b"} {
				if fi, err := os.Lstat(f.abs(dir)); err != nil || !fi.IsDir() {
					t.Errorf("parent %s: %v", dir, err)
				}
			}
		})
	}
}

// TestInstallThenScan checks the contract between the two halves: a file
// installed and recorded with the LocalStat Install returned is neither
// reported nor hashed by the next scan.
func TestInstallThenScan(t *testing.T) {
	f := newFixture(t)
	mt := time.Date(2022, 2, 2, 2, 2, 2, 2, time.UTC)
	ls, err := f.d.Install(bg, "d/f", strings.NewReader("remote"), fileMeta(0o600, mt), nil)
	if err != nil {
		t.Fatal(err)
	}
	lsDir, err := f.d.Mkdir(bg, "d", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	lsLink, err := f.d.Install(bg, "l", nil, localdir.Meta{Kind: cache.KindSymlink, Target: "d/f"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.apply([]localdir.Change{
		{Op: localdir.OpMkdir, Path: "d", Kind: cache.KindDir, Mode: 0o755, Local: lsDir},
		{Op: localdir.OpCreate, Path: "d/f", Kind: cache.KindFile, Size: 6, Hash: sum("remote"), ModTime: mt, Mode: 0o600, Local: ls},
		{Op: localdir.OpSymlink, Path: "l", Kind: cache.KindSymlink, Target: "d/f", Local: lsLink},
	})
	res := f.scan(localdir.ScanOptions{})
	if len(res.Changes) != 0 || res.HashedFiles != 0 {
		t.Errorf("scan after install: %d hashed, changes:\n%s", res.HashedFiles, describe(res.Changes))
	}
}

func TestInstallLocalChanged(t *testing.T) {
	tests := []struct {
		name   string
		expect bool // pass the LocalStat of the first install; else nil
		change func(f *fixture)
	}{
		{"modified (appended)", true, func(f *fixture) {
			fh, err := os.OpenFile(f.abs("d/f"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				f.t.Fatal(err)
			}
			fh.WriteString("!")
			fh.Close()
		}},
		{"modified, same size and mtime", true, func(f *fixture) {
			mt := f.mtime("d/f")
			f.write("d/f", "LOCAL")
			f.chtimes("d/f", mt)
		}},
		{"touched", true, func(f *fixture) { f.chtimes("d/f", time.Unix(5, 0)) }},
		{"chmodded", true, func(f *fixture) { f.chmod("d/f", 0o600) }},
		{"replaced by rename", true, func(f *fixture) { f.write("d/other", "other"); f.rename("d/other", "d/f") }},
		{"deleted", true, func(f *fixture) { f.remove("d/f") }},
		{"replaced by a directory", true, func(f *fixture) { f.remove("d/f"); f.mkdir("d/f") }},
		{"created where nothing was expected", false, func(f *fixture) { f.write("d/f", "mine") }},
		{"parent replaced by a file", true, func(f *fixture) { f.remove("d"); f.write("d", "file") }},
		{"parent replaced by a symlink", true, func(f *fixture) { f.rename("d", "e"); f.symlink("e", "d") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var expect *cache.LocalStat
			if tc.expect {
				ls := f.install("d/f", "first", nil)
				expect = &ls
			} else {
				f.mkdir("d")
			}
			tc.change(f)
			before := snapshot(t, f.root)
			_, err := f.d.Install(bg, "d/f", strings.NewReader("second"), fileMeta(0o644, time.Time{}), expect)
			if !errors.Is(err, localdir.ErrLocalChanged) {
				t.Fatalf("Install: %v, want ErrLocalChanged", err)
			}
			if !strings.Contains(err.Error(), `"d`) {
				t.Errorf("error does not name the path: %v", err)
			}
			if after := snapshot(t, f.root); !slices.Equal(before, after) {
				t.Errorf("the folder changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// snapshot lists every path below root with its kind, mode, size and
// content (or target), for comparing before and after.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := fsWalk(root, func(rel string, fi fs.FileInfo) {
		s := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(root + "/" + rel)
			if err != nil {
				t.Fatal(err)
			}
			s += " " + string(b) + " " + fi.ModTime().String()
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(root + "/" + rel)
			s += " -> " + target
		}
		out = append(out, s)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstallMatchingExpectReplaces(t *testing.T) {
	f := newFixture(t)
	ls := f.install("f", "one", nil)
	// A fingerprint smudged by a scan (no ctime) still guards by size,
	// mtime and inode.
	smudged := ls
	smudged.CTimeNs = 0
	ls2, err := f.d.Install(bg, "f", strings.NewReader("two!"), fileMeta(0o644, time.Time{}), &smudged)
	if err != nil {
		t.Fatal(err)
	}
	if f.read("f") != "two!" || ls2.Size != 4 || ls2.Inode == ls.Inode {
		t.Errorf("content %q, stat %+v", f.read("f"), ls2)
	}
}

func TestInstallSymlink(t *testing.T) {
	f := newFixture(t)
	ls, err := f.d.Install(bg, "d/l", nil, localdir.Meta{Kind: cache.KindSymlink, Target: "../nowhere"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(f.abs("d/l")); err != nil || target != "../nowhere" {
		t.Fatalf("link: %q, %v", target, err)
	}
	if ls != diskStat(t, f.abs("d/l")) {
		t.Errorf("returned %+v, disk %+v", ls, diskStat(t, f.abs("d/l")))
	}
	if _, err := f.d.Install(bg, "d/l", nil, localdir.Meta{Kind: cache.KindSymlink, Target: "x"}, &ls); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(f.abs("d/l")); target != "x" {
		t.Errorf("retargeted link points to %q", target)
	}
	if _, err := f.d.Install(bg, "d/l", nil, localdir.Meta{Kind: cache.KindSymlink, Target: "y"}, &ls); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("install over a changed link: %v", err)
	}
	if _, err := f.d.Install(bg, "d/m", nil, localdir.Meta{Kind: cache.KindSymlink}, nil); err == nil {
		t.Error("a symlink without a target was installed")
	}
}

func TestInstallFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(bg)
	src := io.MultiReader(strings.NewReader(strings.Repeat("x", 300<<10)), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, errors.New("connection lost")
	}))
	_, err := f.d.Install(ctx, "new/dirs/f", src, fileMeta(0o644, time.Time{}), nil)
	if err == nil {
		t.Fatal("install from a failing reader succeeded")
	}
	if entries, _ := os.ReadDir(f.root); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := f.d.Install(ctx, "f", strings.NewReader("x"), fileMeta(0o644, time.Time{}), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("install with a cancelled context: %v", err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "d/" + localdir.TempPrefix + "x"} {
		if _, err := f.d.Install(bg, bad, strings.NewReader("x"), fileMeta(0o644, time.Time{}), nil); !errors.Is(err, cache.ErrInvalidPath) {
			t.Errorf("Install(%q): %v, want ErrInvalidPath", bad, err)
		}
	}
	if _, err := f.d.Install(bg, "d", nil, localdir.Meta{Kind: cache.KindDir}, nil); err == nil {
		t.Error("Install of a directory succeeded")
	}
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

func TestCleanTemp(t *testing.T) {
	f := newFixture(t)
	f.write("keep", "1")
	f.write(localdir.TempPrefix+"a", "2")
	f.write("d/e/"+localdir.TempPrefix+"b", "3")
	f.symlink("x", "d/"+localdir.TempPrefix+"c")
	f.mkdir(localdir.TempPrefix + "dir") // never made by Install: kept
	n, err := f.d.CleanTemp(bg)
	if err != nil || n != 3 {
		t.Fatalf("CleanTemp: %d, %v; want 3", n, err)
	}
	if tmp := tempFiles(t, f.root); len(tmp) != 1 {
		t.Errorf("left: %v", tmp)
	}
	if f.read("keep") != "1" {
		t.Error("a normal file was touched")
	}
}

func TestMkdir(t *testing.T) {
	f := newFixture(t)
	old := syscallUmask(0o077)
	defer syscallUmask(old)
	ls, err := f.d.Mkdir(bg, "a/b", 0o751)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(f.abs("a/b")); fi.Mode() != fs.ModeDir|0o751 {
		t.Errorf("mode %v", fi.Mode())
	}
	if ls.Inode != diskStat(t, f.abs("a/b")).Inode {
		t.Errorf("stat %+v", ls)
	}
	// Idempotent, and sets the mode of an existing directory.
	if _, err := f.d.Mkdir(bg, "a/b", fs.ModeSticky|0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(f.abs("a/b")); fi.Mode() != fs.ModeDir|fs.ModeSticky|0o700 {
		t.Errorf("mode %v", fi.Mode())
	}
	f.write("file", "x")
	for _, p := range []string{"file", "file/sub"} {
		if _, err := f.d.Mkdir(bg, p, 0o755); !errors.Is(err, localdir.ErrLocalChanged) {
			t.Errorf("Mkdir(%q) over a file: %v", p, err)
		}
	}
	if f.read("file") != "x" {
		t.Error("the file was touched")
	}
}

func TestSetMeta(t *testing.T) {
	f := newFixture(t)
	ls := f.install("f", "x", nil)
	mt := time.Unix(1234, 5678)
	ls2, err := f.d.SetMeta(bg, "f", fileMeta(0o600, mt), ls)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Lstat(f.abs("f"))
	if fi.Mode() != 0o600 || !fi.ModTime().Equal(mt) || ls2 != diskStat(t, f.abs("f")) {
		t.Errorf("mode %v, mtime %v, stat %+v", fi.Mode(), fi.ModTime(), ls2)
	}
	if _, err := f.d.SetMeta(bg, "f", fileMeta(0o644, mt), ls); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("SetMeta with a stale expect: %v", err)
	}
	if fi, _ := os.Lstat(f.abs("f")); fi.Mode() != 0o600 {
		t.Errorf("mode changed to %v", fi.Mode())
	}
	dls, err := f.d.Mkdir(bg, "d", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.SetMeta(bg, "d", localdir.Meta{Kind: cache.KindDir, Mode: 0o700}, dls); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.SetMeta(bg, "d", fileMeta(0o700, mt), dls); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("SetMeta of a directory as a file: %v", err)
	}
	if _, err := f.d.SetMeta(bg, "gone", fileMeta(0o700, mt), ls); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("SetMeta of a missing file: %v", err)
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture) cache.LocalStat
		rel     string
		wantErr error
		gone    bool
	}{
		{"file as expected", func(f *fixture) cache.LocalStat { return f.install("d/f", "x", nil) }, "d/f", nil, true},
		{"file modified", func(f *fixture) cache.LocalStat {
			ls := f.install("d/f", "x", nil)
			f.write("d/f", "changed")
			return ls
		}, "d/f", localdir.ErrLocalChanged, false},
		{"file replaced", func(f *fixture) cache.LocalStat {
			ls := f.install("d/f", "x", nil)
			f.write("d/g", "x")
			f.rename("d/g", "d/f")
			return ls
		}, "d/f", localdir.ErrLocalChanged, false},
		{"already gone", func(f *fixture) cache.LocalStat { return cache.LocalStat{Size: 1} }, "d/f", nil, true},
		{"parent gone", func(f *fixture) cache.LocalStat { return cache.LocalStat{Size: 1} }, "nodir/x/f", nil, true},
		{"symlink", func(f *fixture) cache.LocalStat {
			ls, err := f.d.Install(bg, "l", nil, localdir.Meta{Kind: cache.KindSymlink, Target: "t"}, nil)
			if err != nil {
				f.t.Fatal(err)
			}
			return ls
		}, "l", nil, true},
		{"empty directory", func(f *fixture) cache.LocalStat {
			ls, err := f.d.Mkdir(bg, "d", 0o755)
			if err != nil {
				f.t.Fatal(err)
			}
			return ls
		}, "d", nil, true},
		{"directory not empty", func(f *fixture) cache.LocalStat {
			ls, err := f.d.Mkdir(bg, "d", 0o755)
			if err != nil {
				f.t.Fatal(err)
			}
			f.write("d/local", "new")
			return ls
		}, "d", localdir.ErrLocalChanged, false},
		{"directory replaced", func(f *fixture) cache.LocalStat {
			ls, err := f.d.Mkdir(bg, "d", 0o755)
			if err != nil {
				f.t.Fatal(err)
			}
			f.rename("d", "old") // kept, so that the new one gets another inode
			f.mkdir("d")
			return ls
		}, "d", localdir.ErrLocalChanged, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			expect := tc.setup(f)
			err := f.d.Remove(bg, tc.rel, expect)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Remove: %v, want %v", err, tc.wantErr)
			}
			_, serr := os.Lstat(f.abs(tc.rel))
			if gone := errors.Is(serr, fs.ErrNotExist); gone != tc.gone {
				t.Errorf("gone: %v, want %v", gone, tc.gone)
			}
		})
	}
}

func TestRename(t *testing.T) {
	f := newFixture(t)
	ls := f.install("a/f", "content", nil)
	got, err := f.d.Rename(bg, "a/f", "b/c/g", ls)
	if err != nil {
		t.Fatal(err)
	}
	if f.read("b/c/g") != "content" || got != diskStat(t, f.abs("b/c/g")) || got.Inode != ls.Inode {
		t.Errorf("moved: %q, stat %+v", f.read("b/c/g"), got)
	}
	if _, err := os.Lstat(f.abs("a/f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source still there: %v", err)
	}

	// The target exists: nothing moves.
	f.write("b/c/h", "local")
	if _, err := f.d.Rename(bg, "b/c/g", "b/c/h", got); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("rename onto an existing file: %v", err)
	}
	if f.read("b/c/h") != "local" || f.read("b/c/g") != "content" {
		t.Error("files changed")
	}
	// The source changed, or is gone: nothing moves.
	f.write("b/c/g", "edited")
	if _, err := f.d.Rename(bg, "b/c/g", "x", got); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("rename of a modified file: %v", err)
	}
	if _, err := os.Lstat(f.abs("x")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the modified file was moved")
	}
	if _, err := f.d.Rename(bg, "missing/f", "y", got); !errors.Is(err, localdir.ErrLocalChanged) {
		t.Errorf("rename of a missing file: %v", err)
	}
	// A directory moves with its contents, guarded by its inode.
	dls, err := f.d.Mkdir(bg, "b", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Rename(bg, "b", "z/b2", dls); err != nil {
		t.Fatal(err)
	}
	if f.read("z/b2/c/h") != "local" {
		t.Error("directory contents did not move")
	}
	if _, err := f.d.Rename(bg, "z", "z/inside", dls); err == nil {
		t.Error("rename into itself succeeded")
	}
}

// TestInstallFromFile: a Move source on the same filesystem is linked into
// place, not copied, its own name removed, and the fingerprint returned is
// the file's after that; a plain *os.File is copied.
func TestInstallFromFile(t *testing.T) {
	f := newFixture(t)
	src := filepath.Join(filepath.Dir(f.root), "download.part")
	if err := os.WriteFile(src, []byte("downloaded content"), 0o600); err != nil {
		t.Fatal(err)
	}
	sf, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	mt := time.Date(2023, 3, 3, 3, 3, 3, 3, time.UTC)
	srcInfo, err := sf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := f.d.Install(bg, "got.txt", localdir.Move{F: sf}, fileMeta(0o640, mt), nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.abs("got.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, srcInfo) {
		t.Error("copied, not linked")
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("the source's name is still there: %v", err)
	}
	if ls != localdir.Fingerprint(fi) {
		t.Errorf("fingerprint %+v, the file's is %+v", ls, localdir.Fingerprint(fi))
	}
	b, _ := os.ReadFile(f.abs("got.txt"))
	if string(b) != "downloaded content" || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mt) || ls.Size != int64(len(b)) {
		t.Errorf("installed %q mode %v mtime %v size %d", b, fi.Mode(), fi.ModTime(), ls.Size)
	}

	// A plain open file is copied: it is someone else's (a kept version).
	kept := filepath.Join(filepath.Dir(f.root), "kept")
	if err := os.WriteFile(kept, []byte("kept content"), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := os.Open(kept)
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	if _, err := f.d.Install(bg, "copy.txt", kf, fileMeta(0o644, mt), nil); err != nil {
		t.Fatal(err)
	}
	ki, _ := os.Stat(kept)
	ci, err := os.Stat(f.abs("copy.txt"))
	if err != nil || os.SameFile(ki, ci) {
		t.Errorf("a plain *os.File was linked, not copied (%v)", err)
	}
}
