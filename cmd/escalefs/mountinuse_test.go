package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file open for writing in bob's mount is never replaced under its
// writer: alice's concurrent version appears beside it as a conflict copy,
// the writer's file is pushed once closed, and both nodes end with the
// writer's version at the path and alice's as the copy.
func TestMountOpenFileConflict(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alice := startMount(t, bin, "alice", relay, key)
	bob := startMount(t, bin, "bob", relay, key)

	if err := os.WriteFile(filepath.Join(alice.mnt, "notes.txt"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "notes.txt to reach bob", func() bool { return bob.has("notes.txt", "v1\n") })

	// bob's editor opens the file for writing and keeps it open.
	f, err := os.OpenFile(filepath.Join(bob.mnt, "notes.txt"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.WriteFile(filepath.Join(alice.mnt, "notes.txt"), []byte("v2 from alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var copyName string
	waitFor(t, 30*time.Second, "alice's version to become a conflict copy at bob's", func() bool {
		for name, c := range bob.conflictCopies(t) {
			if c == "v2 from alice\n" {
				copyName = name
				return true
			}
		}
		return false
	})
	if !bob.has("notes.txt", "v1\n") {
		t.Fatal("a file open for writing was replaced under its writer")
	}
	// The writer saves through its descriptor and closes.
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("v3 from bob's editor\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "bob's save to win at alice's", func() bool {
		return alice.has("notes.txt", "v3 from bob's editor\n")
	})
	waitFor(t, 30*time.Second, "alice's version to stay as the copy at alice's", func() bool {
		return alice.has(copyName, "v2 from alice\n")
	})
	if !bob.has("notes.txt", "v3 from bob's editor\n") {
		t.Error("bob's save is not at the path on bob")
	}
	alice.unmount(t)
	bob.unmount(t)
}
