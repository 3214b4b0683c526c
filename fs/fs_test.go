package fs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// recorder is an Events that keeps every path reported.
type recorder struct {
	mu    sync.Mutex
	paths []string
}

func (r *recorder) Changed(rel string) {
	r.mu.Lock()
	r.paths = append(r.paths, rel)
	r.mu.Unlock()
}

func (r *recorder) has(rel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.paths, rel)
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.paths = nil
	r.mu.Unlock()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.paths, ", ")
}

// fuseUsable skips (locally) or fails (in CI) when this process cannot
// mount: no /dev/fuse, or neither root nor fusermount.
func fuseUsable(t *testing.T) {
	t.Helper()
	if err := checkFUSE(); err != nil {
		testserver.Unavailable(t, "cannot mount FUSE filesystems: %v", err)
	}
}

// mount mounts a loopback of a new backing directory on a new mountpoint,
// unmounted at the end of the test.
func mount(t *testing.T, opts Options) (srv *Server, mnt, backing string) {
	t.Helper()
	fuseUsable(t)
	mnt, backing = t.TempDir(), t.TempDir()
	srv, err := Mount(context.Background(), mnt, backing, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
		srv.Wait()
	})
	return srv, mnt, backing
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Writes, reads, renames, deletions and directories made through the mount
// land in the backing directory, and each is reported with its path.
func TestMountLoopback(t *testing.T) {
	rec := &recorder{}
	_, mnt, backing := mount(t, Options{Events: rec})

	expect := func(what string, paths ...string) {
		t.Helper()
		for _, p := range paths {
			waitFor(t, 5*time.Second, what+" to report "+p+" (got: "+rec.String()+")", func() bool { return rec.has(p) })
		}
		rec.reset()
	}

	if err := os.Mkdir(filepath.Join(mnt, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(backing, "docs")); err != nil || !fi.IsDir() {
		t.Fatalf("mkdir did not reach the backing directory: %v", err)
	}
	expect("mkdir", "docs")

	if err := os.WriteFile(filepath.Join(mnt, "docs/a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(backing, "docs/a.txt")); got != "hello\n" {
		t.Fatalf("backing docs/a.txt = %q", got)
	}
	expect("create and write", "docs/a.txt")

	// Rewrite an existing file: open for writing, write, close.
	f, err := os.OpenFile(filepath.Join(mnt, "docs/a.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("more\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(mnt, "docs/a.txt")); got != "hello\nmore\n" {
		t.Fatalf("read through the mount: %q", got)
	}
	expect("append", "docs/a.txt")

	// A file being written is reported when it is closed, not before: the
	// engine would push what it holds half-way.
	f, err = os.Create(filepath.Join(mnt, "docs/c.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("half"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if rec.has("docs/c.txt") {
		t.Errorf("docs/c.txt reported while open for writing (%s)", rec)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(backing, "docs/c.txt")); got != "ha" {
		t.Fatalf("backing docs/c.txt = %q", got)
	}
	expect("create, write, truncate, close", "docs/c.txt")
	if err := os.Remove(filepath.Join(mnt, "docs/c.txt")); err != nil {
		t.Fatal(err)
	}
	expect("unlink", "docs/c.txt")

	// Reading reports nothing.
	if got := readFile(t, filepath.Join(mnt, "docs/a.txt")); got != "hello\nmore\n" {
		t.Fatalf("read through the mount: %q", got)
	}
	if s := rec.String(); s != "" {
		t.Errorf("reading reported %s", s)
	}

	if err := os.Chmod(filepath.Join(mnt, "docs/a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(backing, "docs/a.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("chmod did not reach the backing directory: %v %v", fi, err)
	}
	expect("chmod", "docs/a.txt")

	if err := os.Rename(filepath.Join(mnt, "docs/a.txt"), filepath.Join(mnt, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(backing, "docs/a.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("renamed file still in the backing directory: %v", err)
	}
	if got := readFile(t, filepath.Join(backing, "b.txt")); got != "hello\nmore\n" {
		t.Fatalf("backing b.txt = %q", got)
	}
	expect("rename", "docs/a.txt", "b.txt")

	if err := os.Symlink("b.txt", filepath.Join(mnt, "link")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(backing, "link")); err != nil || target != "b.txt" {
		t.Fatalf("symlink in the backing directory: %q %v", target, err)
	}
	expect("symlink", "link")

	for _, p := range []string{"link", "b.txt"} {
		if err := os.Remove(filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(backing, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("unlinked %s still in the backing directory: %v", p, err)
		}
		expect("unlink", p)
	}
	if err := os.Remove(filepath.Join(mnt, "docs")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(backing, "docs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rmdir did not reach the backing directory: %v", err)
	}
	expect("rmdir", "docs")

	ents, err := os.ReadDir(mnt)
	if err != nil || len(ents) != 0 {
		t.Fatalf("mount not empty at the end: %v %v", ents, err)
	}

	// df shows the backing directory's filesystem.
	var sm, sb syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sm); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Statfs(backing, &sb); err != nil {
		t.Fatal(err)
	}
	if sm.Blocks != sb.Blocks || sm.Bsize != sb.Bsize {
		t.Errorf("statfs of the mount: %d blocks of %d; of the backing directory: %d of %d", sm.Blocks, sm.Bsize, sb.Blocks, sb.Bsize)
	}
}

// A file the engine writes into the backing directory shows through the
// mount at once after Invalidate, though the kernel cached its absence and
// its old attributes.
func TestMountInvalidate(t *testing.T) {
	srv, mnt, backing := mount(t, Options{})
	if err := os.Mkdir(filepath.Join(backing, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(mnt, "dir/new.txt")
	if _, err := os.Stat(mp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat before: %v", err)
	}
	// The kernel now caches the absence for negativeTimeout.
	if err := os.WriteFile(filepath.Join(backing, "dir/new.txt"), []byte("pulled\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Invalidate("dir/new.txt")
	fi, err := os.Stat(mp)
	if err != nil {
		t.Fatalf("stat after Invalidate: %v", err)
	}
	if fi.Size() != 7 {
		t.Fatalf("size after Invalidate: %d", fi.Size())
	}
	if got := readFile(t, mp); got != "pulled\n" {
		t.Fatalf("read after Invalidate: %q", got)
	}

	// Replaced content (a new file renamed over, as the engine installs)
	// shows at once too.
	tmp := filepath.Join(backing, "dir/.tmp")
	if err := os.WriteFile(tmp, []byte("pulled again, longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(backing, "dir/new.txt")); err != nil {
		t.Fatal(err)
	}
	srv.Invalidate("dir/new.txt")
	if got := readFile(t, mp); got != "pulled again, longer\n" {
		t.Fatalf("read after the second Invalidate: %q", got)
	}

	// A removal too.
	if err := os.Remove(filepath.Join(backing, "dir/new.txt")); err != nil {
		t.Fatal(err)
	}
	srv.Invalidate("dir/new.txt")
	if _, err := os.Stat(mp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after removal and Invalidate: %v", err)
	}
	// A file in a new directory whose absence the kernel cached.
	if _, err := os.Stat(filepath.Join(mnt, "newdir")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat newdir before: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(backing, "newdir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backing, "newdir/sub/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Invalidate("newdir/sub/f")
	if got := readFile(t, filepath.Join(mnt, "newdir/sub/f")); got != "f" {
		t.Fatalf("read newdir/sub/f after Invalidate: %q", got)
	}

	// Paths the kernel never saw need nothing.
	srv.Invalidate("no/such/dir/file")
	srv.Invalidate("")
}

// Each mount error says what is wrong and how to fix it.
func TestMountErrors(t *testing.T) {
	fuseUsable(t)
	backing := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, mounted, _ := mount(t, Options{})

	for _, tc := range []struct {
		name string
		mnt  string
		opts Options
		want []string
	}{
		{"missing", missing, Options{}, []string{"mountpoint " + missing + " does not exist", "mkdir -p " + missing}},
		{"not empty", full, Options{}, []string{"mountpoint " + full + " is not empty", "--nonempty"}},
		{"already mounted", mounted, Options{}, []string{mounted + " is already mounted", "fusermount -u " + mounted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := Mount(context.Background(), tc.mnt, backing, tc.opts)
			if err == nil {
				_ = srv.Unmount()
				t.Fatal("mounted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	t.Run("no FUSE device", func(t *testing.T) {
		old := fuseDevice
		fuseDevice = filepath.Join(t.TempDir(), "fuse")
		defer func() { fuseDevice = old }()
		_, err := Mount(context.Background(), t.TempDir(), backing, Options{})
		if !errors.Is(err, ErrFUSEUnavailable) {
			t.Fatalf("got %v, want ErrFUSEUnavailable", err)
		}
		for _, w := range []string{"FUSE is unavailable", "install fuse3", "/dev/fuse"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	})

	t.Run("nonempty allowed", func(t *testing.T) {
		srv, err := Mount(context.Background(), full, backing, Options{NonEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Unmount(); err != nil {
			t.Fatal(err)
		}
		srv.Wait()
	})

	t.Run("fusermount -u", func(t *testing.T) {
		mnt := t.TempDir()
		srv, err := Mount(context.Background(), mnt, backing, Options{})
		if err != nil {
			t.Fatal(err)
		}
		fm, err := findFusermount()
		if err != nil {
			_ = srv.Unmount()
			t.Skip("no fusermount")
		}
		if out, err := exec.Command(fm, "-u", mnt).CombinedOutput(); err != nil {
			_ = srv.Unmount()
			t.Fatalf("fusermount -u: %v\n%s", err, out)
		}
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not stop after fusermount -u")
		}
	})
}

// Stop of a busy mount (a file open in it) detaches it at once and returns
// once the file is closed.
func TestMountStopBusy(t *testing.T) {
	fuseUsable(t)
	if _, err := findFusermount(); err != nil {
		testserver.Unavailable(t, "no fusermount in $PATH (install fuse3)")
	}
	mnt, backing := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "busy"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(context.Background(), mnt, backing, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(mnt, "busy"))
	if err != nil {
		_ = srv.Unmount()
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(20 * time.Second) }()
	waitFor(t, 10*time.Second, "the busy mount to be detached", func() bool {
		mounted, _ := isMounted(srv.Mountpoint())
		return !mounted
	})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop did not return after the last file closed")
	}
}
