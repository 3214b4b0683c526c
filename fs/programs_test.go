package fs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escalefs/escalefs/internal/testserver"
)

// program returns the path of the program name, skipping the test when it
// is missing (failing it under CI=true).
func program(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testserver.Unavailable(t, "%s is not installed", name)
	}
	return p
}

// run runs name with args in dir and returns its output, failing the test
// when it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := inDir(t, dir, program(t, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inDir returns the command prog args run in dir, through sh: it changes
// to dir after exec, not before as exec.Cmd.Dir does. The test process
// serves the mount, and a child that touches the mount between fork and
// exec can deadlock with it (seen under -race: the child stuck in chdir
// waiting for a FUSE ACCESS reply that the parent never sends while it
// waits for the child to exec).
func inDir(t *testing.T, dir, prog string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(program(t, "sh"), append([]string{"-c", `cd "$0" && exec "$@"`, dir, prog}, args...)...)
}

// umask returns the process's file mode creation mask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// makeTree writes a small source tree under root, the same for a seed:
// nested directories, files of various sizes and modes (none cleared by a
// usual umask of 022), an empty file and directory, a symlink, names with
// spaces and non-ASCII letters.
func makeTree(t *testing.T, root string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	modes := []os.FileMode{0o644, 0o755, 0o600, 0o640, 0o700}
	dirs := []string{"", "src", "src/pkg", "src/pkg/internal", "docs", "docs/a b", "données", "empty"}
	for _, d := range dirs[1:] {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "src/pkg/internal"), 0o750); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs[:len(dirs)-1] {
		for i := 0; i < 6; i++ {
			size := r.IntN(1 << (4 + r.IntN(13))) // up to 64 KiB, mostly small
			if n == 0 {
				size = 0
			}
			data := make([]byte, size)
			for j := range data {
				data[j] = "abcdefghij \n\t{}();"[r.IntN(18)]
			}
			p := filepath.Join(root, d, fmt.Sprintf("file %d-%c.txt", n, 'α'+rune(i)))
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, modes[r.IntN(len(modes))]); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if err := os.Symlink("../docs/a b", filepath.Join(root, "src/link")); err != nil {
		t.Fatal(err)
	}
}

// compareTrees fails the test unless got holds the same entries as want,
// with the same types, contents and symlink targets; with modes, also the
// same permissions once cleared of mask.
func compareTrees(t *testing.T, want, got string, modes bool, mask os.FileMode) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wfi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gp := filepath.Join(got, rel)
		gfi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wfi.Mode().Type() != gfi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, gfi.Mode().Type(), wfi.Mode().Type())
			return nil
		}
		if modes && rel != "." && wfi.Mode().Type() != os.ModeSymlink && gfi.Mode().Perm() != wfi.Mode().Perm()&^mask {
			t.Errorf("%s: mode %v, want %v", rel, gfi.Mode().Perm(), wfi.Mode().Perm()&^mask)
		}
		switch {
		case wfi.Mode().IsRegular():
			w, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			g, err := os.ReadFile(gp)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
			} else if !bytes.Equal(w, g) {
				t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(g), len(w))
			}
		case wfi.Mode().Type() == os.ModeSymlink:
			w, _ := os.Readlink(p)
			if g, err := os.Readlink(gp); err != nil || g != w {
				t.Errorf("%s: symlink to %q (%v), want %q", rel, g, err, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(got, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(got, p); !seen[rel] {
			t.Errorf("%s: not in %s", rel, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// treeSize is the number of entries under root (root excluded).
func treeSize(t *testing.T, root string) int {
	t.Helper()
	n := -1
	if err := filepath.WalkDir(root, func(string, iofs.DirEntry, error) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// expectReported fails unless every path was reported to rec.
func expectReported(t *testing.T, rec *recorder, paths ...string) {
	t.Helper()
	for _, p := range paths {
		waitFor(t, 5*time.Second, "a report of "+p+" (got: "+rec.String()+")", func() bool { return rec.has(p) })
	}
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists (%v)", p, err)
	}
}

// Real programs work in the mount: the shell tools, an editor's save, tar
// and git, and an fsx-style random I/O run.
func TestPrograms(t *testing.T) {
	fuseUsable(t)

	t.Run("cp -r", func(t *testing.T) {
		_, mnt, backing := mount(t, Options{})
		src := filepath.Join(t.TempDir(), "src")
		makeTree(t, src, 1)
		run(t, mnt, "cp", "-r", src, filepath.Join(mnt, "tree"))
		compareTrees(t, src, filepath.Join(mnt, "tree"), true, umask())
		compareTrees(t, src, filepath.Join(backing, "tree"), true, umask())
		out := filepath.Join(t.TempDir(), "out")
		run(t, mnt, "cp", "-r", filepath.Join(mnt, "tree"), out)
		compareTrees(t, src, out, true, umask())
		// Within the mount.
		run(t, mnt, "cp", "-r", "tree", "tree2")
		compareTrees(t, src, filepath.Join(backing, "tree2"), true, umask())
	})

	t.Run("mv", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		makeTree(t, filepath.Join(mnt, "a"), 2)
		want := filepath.Join(t.TempDir(), "want")
		makeTree(t, want, 2)
		rec.reset()

		// A directory.
		run(t, mnt, "mv", "a", "b")
		mustNotExist(t, filepath.Join(backing, "a"))
		compareTrees(t, want, filepath.Join(backing, "b"), true, 0)
		expectReported(t, rec, "a", "b")

		// A file into another directory, and over an existing file.
		run(t, mnt, "mv", "b/src/file 6-α.txt", "b/docs/moved.txt")
		expectReported(t, rec, "b/src/file 6-α.txt", "b/docs/moved.txt")
		if err := os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("new\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, mnt, "mv", "-f", "new.txt", "b/docs/moved.txt")
		if got := readFile(t, filepath.Join(backing, "b/docs/moved.txt")); got != "new\n" {
			t.Errorf("moved over: %q", got)
		}
		mustNotExist(t, filepath.Join(backing, "new.txt"))

		// A directory out of the mount and back in (a copy and removal
		// across filesystems).
		out := filepath.Join(t.TempDir(), "out")
		run(t, mnt, "mv", "b/données", out)
		mustNotExist(t, filepath.Join(backing, "b/données"))
		compareTrees(t, filepath.Join(want, "données"), out, true, 0)
		run(t, mnt, "mv", out, "b/back")
		compareTrees(t, filepath.Join(want, "données"), filepath.Join(backing, "b/back"), true, 0)
		mustNotExist(t, out)
	})

	t.Run("rm -r", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		makeTree(t, filepath.Join(mnt, "tree"), 3)
		if n := treeSize(t, filepath.Join(backing, "tree")); n < 40 {
			t.Fatalf("tree of %d entries", n)
		}
		rec.reset()
		run(t, mnt, "rm", "-r", "tree")
		mustNotExist(t, filepath.Join(backing, "tree"))
		mustNotExist(t, filepath.Join(mnt, "tree"))
		expectReported(t, rec, "tree", "tree/src/pkg/internal", "tree/src/link", "tree/docs/a b")
	})

	t.Run("mkdir -p", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		run(t, mnt, "mkdir", "-p", "a/b/c/d")
		run(t, mnt, "mkdir", "-p", "a/b/c/d", "a/b/e") // exists already: no error
		for _, d := range []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b/e"} {
			if fi, err := os.Stat(filepath.Join(backing, d)); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v", d, err)
			}
		}
		expectReported(t, rec, "a", "a/b", "a/b/c", "a/b/c/d", "a/b/e")
	})

	t.Run("sed -i", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		p := filepath.Join(mnt, "conf.txt")
		if err := os.WriteFile(p, []byte("foo = 1\nbar = foo\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		run(t, mnt, "sed", "-i", "s/foo/baz/g", "conf.txt")
		if got := readFile(t, filepath.Join(backing, "conf.txt")); got != "baz = 1\nbar = baz\n" {
			t.Errorf("after sed -i: %q", got)
		}
		if got := readFile(t, p); got != "baz = 1\nbar = baz\n" {
			t.Errorf("after sed -i, through the mount: %q", got)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode after sed -i: %v %v", fi, err)
		}
		expectReported(t, rec, "conf.txt")
		ents, err := os.ReadDir(backing)
		if err != nil || len(ents) != 1 {
			t.Errorf("sed left %v (%v)", ents, err)
		}
	})

	t.Run("editor save", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		p := filepath.Join(mnt, "notes.txt")
		if err := os.WriteFile(p, []byte("first draft\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A reader holds the old version open across the save.
		old, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		rec.reset()

		tmp := filepath.Join(mnt, ".notes.txt.swp")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("second draft\nwith more\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		// Editors fsync the directory too.
		if d, err := os.Open(mnt); err != nil {
			t.Fatal(err)
		} else {
			if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
				t.Errorf("fsync of the directory: %v", err)
			}
			d.Close()
		}
		if got := readFile(t, p); got != "second draft\nwith more\n" {
			t.Errorf("after the save: %q", got)
		}
		if got := readFile(t, filepath.Join(backing, "notes.txt")); got != "second draft\nwith more\n" {
			t.Errorf("backing after the save: %q", got)
		}
		mustNotExist(t, filepath.Join(backing, ".notes.txt.swp"))
		if data, err := io.ReadAll(old); err != nil || string(data) != "first draft\n" {
			t.Errorf("the old version, open across the save: %q %v", data, err)
		}
		expectReported(t, rec, "notes.txt")
	})

	t.Run("tar x", func(t *testing.T) {
		rec := &recorder{}
		_, mnt, backing := mount(t, Options{Events: rec})
		src := filepath.Join(t.TempDir(), "project")
		makeTree(t, src, 4)
		// Known modification times, which tar x restores.
		mtime := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		err := filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode().Type() == os.ModeSymlink {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Dir(src), p)
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.ModTime = mtime
			hdr.Uname, hdr.Gname = "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if _, err := tw.Write(data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		tarball := filepath.Join(t.TempDir(), "project.tar")
		if err := os.WriteFile(tarball, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		run(t, mnt, "tar", "--no-same-owner", "-xpf", tarball)
		compareTrees(t, src, filepath.Join(mnt, "project"), true, 0)
		compareTrees(t, src, filepath.Join(backing, "project"), true, 0)
		for _, rel := range []string{"project/src/pkg/file 12-α.txt", "project/docs/a b", "project/src/link"} {
			fi, err := os.Lstat(filepath.Join(mnt, rel))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSymlink && !fi.ModTime().Equal(mtime) {
				t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), mtime)
			}
		}
		expectReported(t, rec, "project", "project/src/pkg/file 12-α.txt", "project/src/link")
	})

	t.Run("git", func(t *testing.T) {
		git := program(t, "git")
		_, mnt, _ := mount(t, Options{})
		home := t.TempDir()
		gitRun := func(args ...string) string {
			t.Helper()
			cmd := inDir(t, filepath.Join(mnt, "repo"), git, append([]string{"-c", "user.name=Test User",
				"-c", "user.email=test@example.com", "-c", "init.defaultBranch=main", "-c", "safe.directory=*"}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C",
				"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		makeTree(t, filepath.Join(mnt, "repo"), 5)
		gitRun("init")
		gitRun("add", ".")
		gitRun("commit", "-q", "-m", "first")
		if err := os.WriteFile(filepath.Join(mnt, "repo/src/main.go"), []byte("package main\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(mnt, "repo/docs/file 24-α.txt")); err != nil {
			t.Fatal(err)
		}
		gitRun("add", "-A")
		gitRun("commit", "-q", "-m", "second")
		if log := strings.Fields(gitRun("log", "--format=%s")); !slices.Equal(log, []string{"second", "first"}) {
			t.Errorf("git log: %q", log)
		}
		gitRun("fsck", "--full", "--strict")
		if st := gitRun("status", "--porcelain"); st != "" {
			t.Errorf("git status after the commits: %q", st)
		}
		if files := strings.Fields(gitRun("ls-files", "-z", "src/main.go")); len(files) != 1 {
			t.Errorf("git ls-files src/main.go: %q", files)
		}
		gitRun("gc", "-q")
		gitRun("fsck", "--full", "--strict")
	})

	t.Run("fsx", func(t *testing.T) {
		_, mnt, backing := mount(t, Options{})
		seed := uint64(time.Now().UnixNano())
		if s := os.Getenv("ESCALEFS_FSX_SEED"); s != "" {
			var err error
			if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("fsx seed %d (rerun with ESCALEFS_FSX_SEED=%d)", seed, seed)
		shadow := filepath.Join(t.TempDir(), "shadow.bin")
		fsx(t, filepath.Join(mnt, "fsx.bin"), shadow, seed, fsxOps, 60*time.Second)
		if readFile(t, filepath.Join(backing, "fsx.bin")) != readFile(t, shadow) {
			t.Fatalf("fsx seed %d: the backing file differs from the shadow", seed)
		}
	})

	t.Run("file over 4 GiB", func(t *testing.T) {
		_, mnt, backing := mount(t, Options{})
		p := filepath.Join(mnt, "big.bin")
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const four = int64(4) << 30
		// Across the 4 GiB boundary, and past it.
		if _, err := f.WriteAt([]byte("across"), four-3); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(four+1<<20, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("tail")); err != nil {
			t.Fatal(err)
		}
		size := four + 1<<20 + 4
		if fi, err := f.Stat(); err != nil || fi.Size() != size {
			t.Fatalf("size %v %v, want %d", fi, err, size)
		}
		for _, c := range []struct {
			off  int64
			want string
		}{{four - 3, "across"}, {four + 1<<20, "tail"}, {four - 4, "\x00acr"}, {1 << 30, "\x00\x00\x00\x00"}} {
			got := make([]byte, len(c.want))
			if _, err := f.ReadAt(got, c.off); err != nil {
				t.Fatalf("read at %d: %v", c.off, err)
			}
			if string(got) != c.want {
				t.Errorf("read at %d: %q, want %q", c.off, got, c.want)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		// The same through a new descriptor, and in the backing file.
		for _, q := range []string{p, filepath.Join(backing, "big.bin")} {
			g, err := os.Open(q)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 4)
			if _, err := g.ReadAt(got, four+1<<20); err != nil || string(got) != "tail" {
				t.Errorf("%s: read %q %v", q, got, err)
			}
			if n, err := g.ReadAt(got, size); n != 0 || err != io.EOF {
				t.Errorf("%s: read at the end: %d %v", q, n, err)
			}
			if fi, err := g.Stat(); err != nil || fi.Size() != size {
				t.Errorf("%s: size %v %v", q, fi, err)
			}
			g.Close()
		}
		// Truncation back under 4 GiB.
		if err := os.Truncate(p, four-1); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != four-1 {
			t.Errorf("after truncate: %v %v", fi, err)
		}
	})

	t.Run("directory of many entries", func(t *testing.T) {
		var count atomic.Int64
		_, mnt, backing := mount(t, Options{Events: counter{&count}})
		dir := filepath.Join(mnt, "big")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		parallel(t, manyEntries, func(i int) error {
			f, err := os.OpenFile(filepath.Join(dir, entryName(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		})
		t.Logf("created %d files in %v", manyEntries, time.Since(start))
		start = time.Now()
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("listed %d entries in %v", len(names), time.Since(start))
		if len(names) != manyEntries {
			t.Errorf("readdir: %d entries, want %d", len(names), manyEntries)
		}
		seen := make(map[string]bool, len(names))
		for _, n := range names {
			if seen[n] {
				t.Errorf("readdir: %s twice", n)
			}
			seen[n] = true
		}
		for _, i := range []int{0, 1, manyEntries / 2, manyEntries - 1} {
			if !seen[entryName(i)] {
				t.Errorf("readdir lacks %s", entryName(i))
			}
		}
		if ents, err := os.ReadDir(filepath.Join(backing, "big")); err != nil || len(ents) != manyEntries {
			t.Errorf("backing directory: %d entries (%v)", len(ents), err)
		}
		if fi, err := os.Stat(filepath.Join(dir, entryName(manyEntries-1))); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("stat of the last entry: %v %v", fi, err)
		}
		start = time.Now()
		parallel(t, manyEntries, func(i int) error { return os.Remove(filepath.Join(dir, entryName(i))) })
		t.Logf("removed %d files in %v", manyEntries, time.Since(start))
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(backing, "big"))
		// Each file created (at its close) and removed, and the directory
		// made and removed.
		if n := count.Load(); n < 2*manyEntries+2 {
			t.Errorf("%d changes reported, want at least %d", n, 2*manyEntries+2)
		}
	})
}

// counter is an Events that counts the reports.
type counter struct{ n *atomic.Int64 }

func (c counter) Changed(string) { c.n.Add(1) }

func entryName(i int) string { return fmt.Sprintf("entry-%06d", i) }

// parallel calls fn(i) for i in [0, n) from a few goroutines, failing the
// test at the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// fsxOps is the number of operations of the fsx run.
const fsxOps = 3000

// fsxMaxSize bounds the size of the fsx file.
const fsxMaxSize = 256 << 10

// fsx runs ops random operations (writes, reads, truncations, writes and
// reads through mmap, fsyncs, reopenings) on the file p in the mount and
// the same on the shadow file on the native filesystem, and after each one
// checks that both hold the same bytes. It stops early, logging it, after
// budget.
func fsx(t *testing.T, p, shadowPath string, seed uint64, ops int, budget time.Duration) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	open := func(q string) *os.File {
		f, err := os.OpenFile(q, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f, shadow := open(p), open(shadowPath)
	defer func() { f.Close(); shadow.Close() }()
	size := int64(0)
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		start := max(0, len(log)-20)
		t.Fatalf("fsx seed %d, operation %d: %s\nlast operations:\n%s", seed, len(log), fmt.Sprintf(format, args...),
			strings.Join(log[start:], "\n"))
	}
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	// A read that covers [off, off+n) checks content up to size.
	check := func(off, n int64) {
		t.Helper()
		got, want := make([]byte, n), make([]byte, n)
		gn, gerr := f.ReadAt(got, off)
		wn, werr := shadow.ReadAt(want, off)
		if gn != wn || (gerr == nil) != (werr == nil) {
			fail("read %d at %d: %d bytes (%v), shadow %d (%v)", n, off, gn, gerr, wn, werr)
		}
		if !bytes.Equal(got[:gn], want[:wn]) {
			i := 0
			for i < gn && got[i] == want[i] {
				i++
			}
			fail("read %d at %d: differs from the shadow at %d: %#x, want %#x", n, off, off+int64(i), got[i], want[i])
		}
	}
	deadline := time.Now().Add(budget)
	counts := map[string]int{}
	for op := 0; op < ops; op++ {
		if time.Now().After(deadline) {
			t.Logf("fsx: stopped after %d operations, out of time (%v)", op, budget)
			break
		}
		off := r.Int64N(fsxMaxSize)
		n := 1 + r.Int64N(min(64<<10, fsxMaxSize-off))
		var name string
		switch k := r.IntN(20); {
		case k < 6:
			name = "write"
			data := randBytes(int(n))
			if _, err := f.WriteAt(data, off); err != nil {
				fail("write %d at %d: %v", n, off, err)
			}
			if _, err := shadow.WriteAt(data, off); err != nil {
				t.Fatal(err)
			}
			size = max(size, off+n)
		case k < 10:
			name = "read"
			if size > 0 {
				off = r.Int64N(size)
			}
			check(off, n)
		case k < 12:
			name = "truncate"
			n = r.Int64N(fsxMaxSize)
			if r.IntN(4) == 0 {
				n = 0
			}
			off = 0
			if err := f.Truncate(n); err != nil {
				fail("truncate to %d: %v", n, err)
			}
			if err := shadow.Truncate(n); err != nil {
				t.Fatal(err)
			}
			size = n
		case k < 15 && size > 0:
			name = "mapwrite"
			off = r.Int64N(size)
			n = 1 + r.Int64N(size-off)
			data := randBytes(int(n))
			if err := mapWrite(f, off, data); err != nil {
				fail("mmap write %d at %d: %v", n, off, err)
			}
			if _, err := shadow.WriteAt(data, off); err != nil {
				t.Fatal(err)
			}
		case k < 18 && size > 0:
			name = "mapread"
			off = r.Int64N(size)
			n = 1 + r.Int64N(size-off)
			got, err := mapRead(f, off, n)
			if err != nil {
				fail("mmap read %d at %d: %v", n, off, err)
			}
			want := make([]byte, n)
			if _, err := shadow.ReadAt(want, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				fail("mmap read %d at %d differs from the shadow", n, off)
			}
		case k < 19:
			name = "fsync"
			off, n = 0, 0
			if err := f.Sync(); err != nil {
				fail("fsync: %v", err)
			}
		default:
			name = "reopen"
			off, n = 0, 0
			if err := f.Close(); err != nil {
				fail("close: %v", err)
			}
			f = open(p)
		}
		counts[name]++
		log = append(log, fmt.Sprintf("%d %s off=%d n=%d size=%d", len(log), name, off, n, size))
		// After each operation: the size, and the whole content.
		fi, err := f.Stat()
		if err != nil {
			fail("fstat: %v", err)
		}
		if fi.Size() != size {
			fail("size %d, shadow %d", fi.Size(), size)
		}
		check(0, size+1)
	}
	t.Logf("fsx: %v", counts)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(shadowPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fsx seed %d: the file differs from the shadow after closing it", seed)
	}
}

// mapRange maps the pages of f that hold [off, off+n) and returns the
// mapping and the index of off in it.
func mapRange(f *os.File, off, n int64, prot int) ([]byte, int64, error) {
	page := int64(os.Getpagesize())
	start := off / page * page
	m, err := unix.Mmap(int(f.Fd()), start, int(off+n-start), prot, unix.MAP_SHARED)
	return m, off - start, err
}

// mapWrite writes data at off of f through a shared mapping, and msyncs it.
func mapWrite(f *os.File, off int64, data []byte) error {
	m, i, err := mapRange(f, off, int64(len(data)), unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		return err
	}
	copy(m[i:], data)
	err = unix.Msync(m, unix.MS_SYNC)
	if uerr := unix.Munmap(m); err == nil {
		err = uerr
	}
	return err
}

// mapRead reads n bytes at off of f through a mapping.
func mapRead(f *os.File, off, n int64) ([]byte, error) {
	m, i, err := mapRange(f, off, n, unix.PROT_READ)
	if err != nil {
		return nil, err
	}
	b := slices.Clone(m[i : i+n])
	return b, unix.Munmap(m)
}
