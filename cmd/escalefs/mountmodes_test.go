package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Files and directories made in the mount get the modes the caller asked
// for, its umask applied once (the kernel's doing), not the mount
// process's on top; and the peers get the same modes.
func TestMountUmask(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMount(t, bin, "alice", relay, key)
	script := "cd " + a.mnt + " && umask 002 && touch f && mkdir d && umask 000 && touch g && mkdir e"
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	want := map[string]os.FileMode{"f": 0o664, "d": 0o775, "g": 0o666, "e": 0o777}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(a.mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s in the mount: mode %o, want %o", name, fi.Mode().Perm(), mode)
		}
	}
	bob := newSyncNode(t, "bob", bin, relay, key)
	waitFor(t, 30*time.Second, "the files to reach bob", func() bool {
		bob.once(t)
		_, err1 := os.Stat(bob.path("g"))
		_, err2 := os.Stat(bob.path("e"))
		return err1 == nil && err2 == nil
	})
	for name, mode := range want {
		fi, err := os.Stat(bob.path(name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s on bob: mode %o, want %o", name, fi.Mode().Perm(), mode)
		}
	}
	a.unmount(t)
}

// treeOf returns every file under dir with its content and mode, for a
// comparison of two nodes' trees.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			v += " -> " + target
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A write through one name of a hard-linked file in the mount reaches
// every name on the peers, which hold the names as separate files.
func TestMountHardLinks(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMount(t, bin, "alice", relay, key)
	bob := newSyncNode(t, "bob", bin, relay, key)
	run := func(script string) {
		t.Helper()
		if out, err := exec.Command("sh", "-c", "cd "+a.mnt+" && "+script).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	run("echo v1 > a && ln a b")
	waitFor(t, 30*time.Second, "b to reach bob", func() bool {
		bob.once(t)
		return bob.has("b", "v1\n")
	})
	run("echo v2 > a")
	waitFor(t, 30*time.Second, "v2 to reach both names on bob", func() bool {
		bob.once(t)
		return bob.has("a", "v2\n") && bob.has("b", "v2\n")
	})
	got, want := treeOf(t, bob.dir), treeOf(t, a.mnt)
	if len(got) != len(want) {
		t.Errorf("bob's tree %v, alice's %v", got, want)
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s: bob has %q, alice %q", p, got[p], v)
		}
	}
	a.unmount(t)
}

// Modes the mount must not rewrite: 0000 on a file and a directory shows
// as 0000 (the file's peers get the read bits it lost, its write bits
// staying as the w- mark; the directory's get 0000), and setuid and setgid
// stay on this node but never reach a peer.
func TestMountModesKept(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMount(t, bin, "alice", relay, key)
	script := "cd " + a.mnt + " && echo x > z && chmod 0000 z && mkdir d && chmod 0000 d && echo s > s && chmod 6755 s"
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	modeOf := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	}
	for name, want := range map[string]os.FileMode{"z": 0, "d": 0, "s": 0o755 | os.ModeSetuid | os.ModeSetgid} {
		if got := modeOf(filepath.Join(a.mnt, name)); got != want {
			t.Errorf("%s in the mount: mode %v, want %v", name, got, want)
		}
	}
	bob := newSyncNode(t, "bob", bin, relay, key)
	waitFor(t, 30*time.Second, "the files to reach bob", func() bool {
		bob.once(t)
		for _, name := range []string{"z", "d", "s"} {
			if _, err := os.Lstat(bob.path(name)); err != nil {
				return false
			}
		}
		return true
	})
	for name, want := range map[string]os.FileMode{"z": 0o200, "d": 0, "s": 0o755} {
		if got := modeOf(bob.path(name)); got != want {
			t.Errorf("%s on bob: mode %v, want %v", name, got, want)
		}
	}
	a.unmount(t)
}
