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

	escfs "github.com/escalefs/escalefs/fs"
	"github.com/escalefs/escalefs/internal/testserver"
)

// The mountpoint is checked before the relay is opened, and each error
// says how to fix it.
func TestMountErrors(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	kf, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	full := t.TempDir()
	writeFile(t, filepath.Join(full, "x"), []byte("x"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no mountpoint", []string{"--relay", relay, "--key-file", kf}, []string{"missing MOUNTPOINT"}},
		{"two mountpoints", []string{"--relay", relay, "--key-file", kf, full, missing},
			[]string{"2 mountpoints given", "exactly one MOUNTPOINT"}},
		{"missing", []string{"--relay", relay, "--key-file", kf, missing},
			[]string{"mountpoint " + missing + " does not exist", "mkdir -p " + missing}},
		{"not empty", []string{"--relay", relay, "--key-file", kf, full},
			[]string{"mountpoint " + resolvePath(full) + " is not empty", "--nonempty"}},
		{"bad flag", []string{"--relay", relay, "--key-file", kf, "--refresh", "0s", full},
			[]string{"--refresh 0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, append([]string{"mount"}, tc.args...)...)
			if code == 0 {
				t.Fatal("mount succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// mountNode is an escalefs mount process of the end-to-end test.
type mountNode struct {
	name, mnt string
	state     string // its XDG_STATE_HOME
	cmd       *exec.Cmd
	log       *testserver.SyncBuffer
	done      chan error
	exited    bool
}

func startMount(t *testing.T, bin, name, relay, key string) *mountNode {
	t.Helper()
	return startMountAt(t, bin, name, relay, key, t.TempDir(), t.TempDir())
}

func (n *mountNode) has(rel, content string) bool {
	data, err := os.ReadFile(filepath.Join(n.mnt, filepath.FromSlash(rel)))
	return err == nil && string(data) == content
}

// unmount runs fusermount -u and checks that the process exits with status
// 0.
func (n *mountNode) unmount(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("fusermount", "-u", n.mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u %s: %v\n%s", n.mnt, err, out)
	}
	select {
	case err := <-n.done:
		n.exited = true
		if err != nil {
			t.Errorf("%s exited with %v after fusermount -u, want status 0\n%s", n.name, err, n.log)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20s of fusermount -u\n%s", n.name, n.log)
	}
	if !strings.Contains(n.log.String(), "level=INFO msg=stopped") {
		t.Errorf("%s's log lacks the final line:\n%s", n.name, n.log)
	}
}

// Two escalefs mount processes, alice and bob, over one file:// relay: what
// is written in alice's mount appears in bob's, a deletion in bob's
// disappears from alice's, and fusermount -u stops both cleanly.
func TestMountEndToEnd(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()

	alice := startMount(t, bin, "alice", relay, key) // creates the repository
	bob := startMount(t, bin, "bob", relay, key)

	if err := os.MkdirAll(filepath.Join(alice.mnt, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(alice.mnt, "docs/hello.txt"), []byte("hello from alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "docs/hello.txt to reach bob's mount", func() bool {
		return bob.has("docs/hello.txt", "hello from alice\n")
	})

	if err := os.Remove(filepath.Join(bob.mnt, "docs/hello.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the deletion to reach alice's mount", func() bool {
		_, err := os.Lstat(filepath.Join(alice.mnt, "docs/hello.txt"))
		return errors.Is(err, os.ErrNotExist)
	})

	alice.unmount(t)
	bob.unmount(t)
}

// SIGTERM unmounts and stops escalefs mount with status 0, after it pushed
// the file closed just before.
func TestMountSIGTERM(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	n := startMount(t, bin, "alice", relay, key)
	if err := os.WriteFile(filepath.Join(n.mnt, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a.txt to be pushed", func() bool {
		return strings.Contains(n.log.String(), "level=INFO msg=pushed path=a.txt size=2")
	})
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.done:
		n.exited = true
		if err != nil {
			t.Errorf("exited with %v after SIGTERM, want status 0\n%s", err, n.log)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("did not exit within 20s of SIGTERM\n%s", n.log)
	}
	for _, want := range []string{"msg=\"stopping: unmounting\"", "level=INFO msg=stopped"} {
		if !strings.Contains(n.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, n.log)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+n.mnt+" ") {
		t.Errorf("%s still mounted after SIGTERM", n.mnt)
	}
}

// After escalefs mount is killed (kill -9), mounting again says to unmount
// the dead mount first; once unmounted, the node mounts again on the same
// mountpoint, with the same state and files, and a file closed just before
// the kill, not pushed then, reaches another node: nothing closed is lost.
func TestMountRemountAfterKill(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	n := startMount(t, bin, "alice", relay, key)
	if err := os.WriteFile(filepath.Join(n.mnt, "kept.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "kept.txt to be pushed", func() bool {
		return strings.Contains(n.log.String(), "level=INFO msg=pushed path=kept.txt size=5")
	})
	// late.txt is closed and the process killed at once, before it can
	// be pushed: it is pushed after the restart.
	if err := os.WriteFile(filepath.Join(n.mnt, "late.txt"), []byte("closed just before the kill\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n.done
	n.exited = true
	t.Cleanup(func() { _ = exec.Command("fusermount", "-u", "-z", n.mnt).Run() })

	again := exec.Command(bin, "mount", "--relay", relay, "--key-file", key, "--name", "alice", n.mnt)
	again.Env = n.cmd.Env
	out, err := again.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "fusermount -u "+n.mnt) {
		t.Fatalf("mounting over the dead mount: %v\n%s", err, out)
	}
	if out, err := exec.Command("fusermount", "-u", n.mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u: %v\n%s", err, out)
	}

	m := &mountNode{name: "alice again", mnt: n.mnt, log: &testserver.SyncBuffer{}, done: make(chan error, 1)}
	m.cmd = exec.Command(bin, "mount", "--relay", relay, "--key-file", key, "--name", "alice", "--refresh", "1s", "-f", m.mnt)
	m.cmd.Env = n.cmd.Env
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() {
		if !m.exited {
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	waitFor(t, 30*time.Second, "the node to mount again", func() bool {
		return strings.Contains(m.log.String(), "level=INFO msg=mounted")
	})
	if !m.has("kept.txt", "kept\n") {
		t.Error("kept.txt is not in the mount after the restart")
	}
	if strings.Contains(m.log.String(), "created a new repository") {
		t.Errorf("the restarted node created a repository:\n%s", m.log)
	}
	if !m.has("late.txt", "closed just before the kill\n") {
		t.Error("late.txt is not in the mount after the restart")
	}
	// Another node gets both files.
	bobDir, bobState := t.TempDir(), t.TempDir()
	waitFor(t, 60*time.Second, "bob to get both files", func() bool {
		bob := exec.Command(bin, "sync", "--once", "--relay", relay, "--key-file", key, "--name", "bob", bobDir)
		bob.Env = append(os.Environ(), "XDG_STATE_HOME="+bobState)
		if out, err := bob.CombinedOutput(); err != nil {
			t.Fatalf("escalefs sync --once as bob: %v\n%s", err, out)
		}
		kept, err1 := os.ReadFile(filepath.Join(bobDir, "kept.txt"))
		late, err2 := os.ReadFile(filepath.Join(bobDir, "late.txt"))
		return err1 == nil && err2 == nil && string(kept) == "kept\n" && string(late) == "closed just before the kill\n"
	})
	m.unmount(t)
}

// mountUsable skips (locally) or fails (in CI) a test that mounts when
// this machine cannot: FUSE unavailable, or no fusermount to unmount with.
func mountUsable(t *testing.T) {
	t.Helper()
	if err := escfs.Check(t.TempDir(), false); errors.Is(err, escfs.ErrFUSEUnavailable) {
		testserver.Unavailable(t, "cannot mount FUSE filesystems: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("fusermount"); err != nil {
		testserver.Unavailable(t, "no fusermount in $PATH (install fuse3)")
	}
}
