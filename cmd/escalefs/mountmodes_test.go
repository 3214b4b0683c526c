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
