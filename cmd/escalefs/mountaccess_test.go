package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/sync/localdir"
)

// access runs escalefs access as the node of the mount n.
func (n *mountNode) access(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"access"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+n.state)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("escalefs access %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// conflictCopies returns the conflict copies in the mount, with their
// content.
func (n *mountNode) conflictCopies(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(n.mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !localdir.IsConflictName(p) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(n.mnt, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Access modifiers through two mounts: chmod a-w in alice's mount makes the
// file w- (writes fail with EACCES, escalefs access on the path in the
// mount shows w-, bob's edit becomes a conflict copy at alice's); a file
// created with the sticky bit (r-) stays off the relay while a 0600 file
// syncs as usual.
func TestMountAccessModifiers(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alice := startMount(t, bin, "alice", relay, key)
	bob := startMount(t, bin, "bob", relay, key)

	budget := filepath.Join(alice.mnt, "budget.txt")
	if err := os.WriteFile(budget, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "budget.txt to reach bob", func() bool { return bob.has("budget.txt", "v1\n") })

	if out, err := exec.Command("chmod", "a-w", budget).CombinedOutput(); err != nil {
		t.Fatalf("chmod a-w: %v %s", err, out)
	}
	if err := os.WriteFile(budget, []byte("overwritten\n"), 0o644); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("writing a w- file: %v, want EACCES", err)
	}
	if fi, err := os.Stat(budget); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("w- file: %v %v, want no write bits", fi.Mode(), err)
	}
	waitFor(t, 10*time.Second, "escalefs access to show w-", func() bool {
		return strings.HasPrefix(alice.access(t, bin, budget), "budget.txt: w- (")
	})

	if err := os.WriteFile(filepath.Join(bob.mnt, "budget.txt"), []byte("v2 from bob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "bob's edit to become a conflict copy at alice's", func() bool {
		for _, c := range alice.conflictCopies(t) {
			if c == "v2 from bob\n" {
				return true
			}
		}
		return false
	})
	if !alice.has("budget.txt", "v1\n") {
		t.Error("alice's w- file was overwritten")
	}

	fd, err := syscall.Open(filepath.Join(alice.mnt, "diary.txt"), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_EXCL, 0o1600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Write(fd, []byte("dear diary\n")); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if err := os.WriteFile(filepath.Join(alice.mnt, "mine.txt"), []byte("0600 syncs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the 0600 file to reach bob", func() bool { return bob.has("mine.txt", "0600 syncs\n") })
	if out := alice.access(t, bin, filepath.Join(alice.mnt, "diary.txt")); !strings.HasPrefix(out, "diary.txt: r- (") {
		t.Errorf("escalefs access of the r- file: %q", out)
	}
	// mine.txt was closed after the diary, so it was pushed in the same
	// record or a later one: its arrival shows the diary stayed behind.
	if _, err := os.Lstat(filepath.Join(bob.mnt, "diary.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the r- file reached bob: %v", err)
	}

	// escalefs access on the path in the mount sets them too: r+ lets the
	// diary go out, and clears its mark.
	if out := alice.access(t, bin, filepath.Join(alice.mnt, "diary.txt"), "r+"); !strings.HasPrefix(out, "diary.txt: r+ (") {
		t.Errorf("escalefs access r+: %q", out)
	}
	waitFor(t, 30*time.Second, "the diary to reach bob once r+", func() bool { return bob.has("diary.txt", "dear diary\n") })
	waitFor(t, 5*time.Second, "the r- mark to go", func() bool {
		fi, err := os.Stat(filepath.Join(alice.mnt, "diary.txt"))
		return err == nil && fi.Mode()&os.ModeSticky == 0
	})

	alice.unmount(t)
	bob.unmount(t)
}
