package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyncKeepsVersions: by default a node keeps, in its state, what a
// pull deleted; with --versions off it keeps nothing.
func TestSyncKeepsVersions(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alice := newSyncNode(t, "alice", bin, relay, key)
	bob := newSyncNode(t, "bob", bin, relay, key)
	carol := newSyncNode(t, "carol", bin, relay, key)
	carol.flags = []string{"--versions", "off"}
	alice.write(t, "notes.txt", "precious\n")
	alice.once(t)
	bob.once(t)
	carol.once(t)
	if !bob.has("notes.txt", "precious\n") || !carol.has("notes.txt", "precious\n") {
		t.Fatal("notes.txt did not reach bob and carol")
	}
	if err := os.Remove(alice.path("notes.txt")); err != nil {
		t.Fatal(err)
	}
	alice.once(t)
	// Kept once the hold for programs still writing it is over (a few
	// seconds, and a later round).
	versionsOf := func(n *syncNode) []string {
		var found []string
		_ = filepath.WalkDir(n.state, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "versions" && !strings.HasSuffix(p, ".json") {
				if b, err := os.ReadFile(p); err == nil {
					found = append(found, string(b))
				}
			}
			return nil
		})
		return found
	}
	waitFor(t, 30*time.Second, "bob to keep the deleted notes.txt as a version", func() bool {
		bob.once(t)
		carol.once(t)
		v := versionsOf(bob)
		return len(v) == 1 && v[0] == "precious\n"
	})
	if _, err := os.Stat(bob.path("notes.txt")); !os.IsNotExist(err) {
		t.Errorf("notes.txt is still in bob's folder: %v", err)
	}
	if v := versionsOf(carol); len(v) != 0 {
		t.Errorf("carol, with --versions off, keeps %q", v)
	}
}
