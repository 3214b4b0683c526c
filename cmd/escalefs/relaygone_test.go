package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A folder synced through a repository is not pushed into a new one when
// its relay comes back empty (an unmounted share, an emptied account): the
// node refuses, saying why, and leaves the relay as it found it.
func TestSyncRelayEmptied(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	kf, _ := keyFile(t)
	relayDir := t.TempDir()
	relay := "file://" + relayDir
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", kf, "--name", "n1", dir); code != 0 {
		t.Fatalf("first sync: status %d\n%s", code, errOut)
	}
	ents, err := os.ReadDir(relayDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(relayDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	_, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", kf, "--name", "n1", dir)
	if code == 0 {
		t.Fatal("sync into an emptied relay succeeded")
	}
	for _, w := range []string{"holds no repository", resolvePath(dir) + " was synced through one before", "move that state directory away"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("error lacks %q:\n%s", w, errOut)
		}
	}
	if ents, _ := os.ReadDir(relayDir); len(ents) != 0 {
		t.Errorf("the emptied relay was written to: %v", ents)
	}
	// A new folder may still create a repository there.
	other := t.TempDir()
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", kf, "--name", "n2", other); code != 0 {
		t.Fatalf("a new folder on an empty relay: status %d\n%s", code, errOut)
	}
}
