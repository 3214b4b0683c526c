package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/escalefs/escalefs/cache/meta"
)

// fakeMods is a Modifiers over a map; Known makes a path known when it
// exists in the backing directory and is not named *.log.
type fakeMods struct {
	mu      sync.Mutex
	backing string
	m       map[string]meta.Access
	scanned []string
}

func (f *fakeMods) Access(rel string) (meta.Access, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.m[rel]
	return a, ok, nil
}

func (f *fakeMods) SetAccess(_ context.Context, rel string, u meta.AccessUpdate) (meta.Access, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.m[rel]
	if !ok {
		return a, fmt.Errorf("%q unknown: %w", rel, iofs.ErrNotExist)
	}
	a = u.Apply(a)
	f.m[rel] = a
	return a, nil
}

func (f *fakeMods) Known(_ context.Context, rel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[rel]; ok {
		return nil
	}
	f.scanned = append(f.scanned, rel)
	if _, err := os.Lstat(filepath.Join(f.backing, rel)); err != nil || strings.HasSuffix(rel, ".log") {
		return fmt.Errorf("%q: %w", rel, iofs.ErrNotExist)
	}
	f.m[rel] = meta.Access{}
	return nil
}

func (f *fakeMods) get(rel string) string {
	a, _, _ := f.Access(rel)
	return a.String()
}

// modsMount mounts with a fakeMods.
func modsMount(t *testing.T) (mods *fakeMods, mnt, backing string) {
	t.Helper()
	fuseUsable(t)
	mods = &fakeMods{m: map[string]meta.Access{}}
	mnt, backing = t.TempDir(), t.TempDir()
	mods.backing = backing
	srv, err := Mount(context.Background(), mnt, backing, Options{Modifiers: mods})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
		srv.Wait()
	})
	return mods, mnt, backing
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// waitMode waits for the mount to show p with mode want (the kernel may
// keep attributes for attrTimeout after an xattr change).
func waitMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	waitFor(t, 3*attrTimeout, fmt.Sprintf("%s to show %v (shows %v)", p, want, mode(t, p)),
		func() bool { return mode(t, p) == want })
}

// chmod a-w makes a file w-: it shows without write bits, cannot be opened
// for writing nor truncated, and keeps its backing mode; chmod u+w makes it
// w+ and writable again.
func TestAccessWriteBits(t *testing.T) {
	mods, mnt, backing := modsMount(t)
	p := filepath.Join(mnt, "budget.ods")
	if err := os.WriteFile(p, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
	if got := mods.get("budget.ods"); got != "w-" {
		t.Fatalf("chmod a-w gave %q, want w-", got)
	}
	if len(mods.scanned) != 1 || mods.scanned[0] != "budget.ods" {
		t.Errorf("the new file was not made known first: %v", mods.scanned)
	}
	if m := mode(t, p); m != 0o444 {
		t.Errorf("w- file shows %v, want -r--r--r--", m)
	}
	if m := mode(t, filepath.Join(backing, "budget.ods")); m != 0o644 {
		t.Errorf("backing file is %v, want its own -rw-r--r--", m)
	}
	for _, fl := range []int{os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		f, err := os.OpenFile(p, fl, 0)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("open flags %#x of a w- file: %v, want EACCES", fl, err)
		}
	}
	if err := os.Truncate(p, 0); !errors.Is(err, syscall.EACCES) {
		t.Errorf("truncate of a w- file: %v, want EACCES", err)
	}
	if got := readFile(t, p); got != "v1" {
		t.Errorf("w- file holds %q", got)
	}
	// Other bits still reach the backing file.
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(backing, "budget.ods")); m != 0o600 {
		t.Errorf("backing file is %v after chmod 400 of a w- file, want -rw-------", m)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mods.get("budget.ods"); got != "w+" {
		t.Fatalf("chmod u+w gave %q, want w+", got)
	}
	if m := mode(t, p); m != 0o600 {
		t.Errorf("w+ file shows %v, want -rw-------", m)
	}
	if err := os.WriteFile(p, []byte("v2"), 0o644); err != nil {
		t.Fatalf("writing the w+ file: %v", err)
	}
	// A chmod that keeps the write bits leaves the modifiers alone.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mods.get("budget.ods"); got != "w+" {
		t.Errorf("chmod 644 of a w+ file gave %q", got)
	}
}

// The sticky bit on a file marks r-: set by chmod +t, shown by ls -l as T,
// never given to the backing file; chmod -t unsets r.
func TestAccessStickyBit(t *testing.T) {
	mods, mnt, backing := modsMount(t)
	p := filepath.Join(mnt, "diary.txt")
	if err := os.WriteFile(p, []byte("dear diary"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chmod", "+t", p).CombinedOutput(); err != nil {
		t.Fatalf("chmod +t: %v %s", err, out)
	}
	if got := mods.get("diary.txt"); got != "r-" {
		t.Fatalf("chmod +t gave %q, want r-", got)
	}
	if m := mode(t, p); m != 0o600|os.ModeSticky {
		t.Errorf("r- file shows %v, want -rw------T", m)
	}
	if m := mode(t, filepath.Join(backing, "diary.txt")); m != 0o600 {
		t.Errorf("backing file is %v, want -rw-------", m)
	}
	out, err := exec.Command("ls", "-l", mnt).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-rw------T") {
		t.Errorf("ls -l: %v\n%s", err, out)
	}
	if err := os.WriteFile(p, []byte("still mine"), 0o600); err != nil {
		t.Errorf("an r- file is writable: %v", err)
	}
	if out, err := exec.Command("chmod", "-t", p).CombinedOutput(); err != nil {
		t.Fatalf("chmod -t: %v %s", err, out)
	}
	if got := mods.get("diary.txt"); got != "" {
		t.Fatalf("chmod -t gave %q, want none", got)
	}
	if m := mode(t, p); m != 0o600 {
		t.Errorf("file shows %v after chmod -t", m)
	}
	// A file created with the sticky bit is r- from the start.
	fd, err := syscall.Open(filepath.Join(mnt, "private.txt"), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_EXCL, 0o1600)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if got := mods.get("private.txt"); got != "r-" {
		t.Errorf("created with mode 1600: %q, want r-", got)
	}
	if m := mode(t, filepath.Join(mnt, "private.txt")); m != 0o600|os.ModeSticky {
		t.Errorf("created with mode 1600: shows %v", m)
	}
	if m := mode(t, filepath.Join(backing, "private.txt")); m != 0o600 {
		t.Errorf("created with mode 1600: backing file is %v", m)
	}
	// Directories are not marked: their sticky bit is their own.
	d := filepath.Join(mnt, "shared")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := mods.Access("shared"); ok {
		t.Error("chmod +t of a directory set modifiers")
	}
	if m := mode(t, filepath.Join(backing, "shared")); m != os.ModeDir|os.ModeSticky|0o755 {
		t.Errorf("backing directory is %v", m)
	}
	// A file the engine does not synchronize has no modifiers to set.
	if err := os.WriteFile(filepath.Join(mnt, "debug.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(mnt, "debug.log"), 0o644|os.ModeSticky); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod +t of a file not synchronized: %v, want EPERM", err)
	}
}

// user.escalefs.access shows and sets the modifiers.
func TestAccessXattr(t *testing.T) {
	mods, mnt, _ := modsMount(t)
	p := filepath.Join(mnt, "notes.txt")
	if err := os.WriteFile(p, []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func() string {
		t.Helper()
		buf := make([]byte, 64)
		n, err := unix.Getxattr(p, AccessXattr, buf)
		if err != nil {
			t.Fatalf("getxattr: %v", err)
		}
		return string(buf[:n])
	}
	if got := get(); got != "" {
		t.Errorf("unset modifiers read %q", got)
	}
	buf := make([]byte, 1024)
	n, err := unix.Listxattr(p, buf)
	if err != nil || !strings.Contains(string(buf[:n]), AccessXattr+"\x00") {
		t.Errorf("listxattr: %q %v", buf[:n], err)
	}
	if err := unix.Setxattr(p, AccessXattr, []byte("r-w-"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	if got := mods.get("notes.txt"); got != "r-w-" {
		t.Fatalf("setxattr r-w- gave %q", got)
	}
	if got := get(); got != "r-w-" {
		t.Errorf("getxattr: %q", got)
	}
	waitMode(t, p, 0o444|os.ModeSticky)
	if err := unix.Setxattr(p, AccessXattr, []byte("rx"), 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("setxattr of a bad value: %v, want EINVAL", err)
	}
	if err := unix.Setxattr(p, AccessXattr, []byte("w+"), 0); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "r-w+" {
		t.Errorf("after w+: %q", got)
	}
	if err := unix.Removexattr(p, AccessXattr); err != nil {
		t.Fatal(err)
	}
	if got := mods.get("notes.txt"); got != "" {
		t.Errorf("removexattr left %q", got)
	}
	waitMode(t, p, 0o644)
	// Other attributes still go to the backing file.
	if err := unix.Setxattr(p, "user.other", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	n, err = unix.Listxattr(p, buf)
	if err != nil || string(buf[:n]) != "user.other\x00"+AccessXattr+"\x00" {
		t.Errorf("listxattr: %q %v", buf[:n], err)
	}
}

// chmodUpdate reads a chmod's mode against the shown one, and keeps the
// marks off the backing file.
func TestChmodUpdate(t *testing.T) {
	const reg = syscall.S_IFREG
	rw := meta.Access{Read: meta.PermDeny, Write: meta.PermDeny}
	for _, tc := range []struct {
		m, backing  uint32
		a           meta.Access
		want        string // the update, as modifiers applied to none
		wantBacking uint32
	}{
		{0o444, reg | 0o644, meta.Access{}, "w-", 0o644},
		{0o444, reg | 0o444, meta.Access{}, "w-", 0o444},
		{0o444, reg | 0o644, meta.Access{Write: meta.PermDeny}, "", 0o644},
		{0o644, reg | 0o644, rw, "w+", 0o644},
		{0o644, reg | 0o644, meta.Access{}, "", 0o644},
		{0o1644, reg | 0o644, meta.Access{}, "r-", 0o644},
		{0o1444, reg | 0o644, meta.Access{}, "r-w-", 0o644},
		{0o600, reg | 0o644, meta.Access{Write: meta.PermAllow}, "", 0o600},
		{0o400, reg | 0o664, meta.Access{Write: meta.PermDeny}, "", 0o620},
	} {
		u, b := chmodUpdate(tc.m, tc.backing, tc.a)
		got := u.Apply(meta.Access{}).String()
		if got != tc.want || b != tc.wantBacking {
			t.Errorf("chmod %o of %o with %q: update %q, backing %o; want %q, %o",
				tc.m, tc.backing, tc.a, got, b, tc.want, tc.wantBacking)
		}
	}
	// chmod 644 of an r-w- file: w+ and r unset.
	u, _ := chmodUpdate(0o644, reg|0o644, rw)
	if !u.SetRead || u.Read != meta.PermUnset || !u.SetWrite || u.Write != meta.PermAllow {
		t.Errorf("chmod 644 of r-w-: %+v", u)
	}
}
