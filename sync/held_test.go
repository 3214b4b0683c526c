package sync_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A program holds a file open for writing in a synced folder while a pull
// replaces it: what it writes afterwards is not lost. The node keeps the
// replaced file, sees that it was written, and keeps that version as a
// conflict copy, which reaches every node; the pulled version stays at the
// path. The same holds for a pulled delete.
func TestWriteRacingPull(t *testing.T) {
	for _, op := range []string{"replace", "delete"} {
		t.Run(op, func(t *testing.T) {
			c := newCluster(t, fileRelay(t))
			a := c.add("alice", small)
			b := c.add("bob", small)
			a.write(t, "doc.txt", []byte("first version\n"))
			c.settle()

			f, err := os.OpenFile(filepath.Join(a.dir, "doc.txt"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if op == "replace" {
				b.write(t, "doc.txt", []byte("bob's edit\n"))
			} else if err := os.Remove(filepath.Join(b.dir, "doc.txt")); err != nil {
				t.Fatal(err)
			}
			b.round(t)
			a.round(t) // the pull replaces (or deletes) doc.txt under the program
			const alice = "alice's text, written through the open file\n"
			if _, err := f.WriteAt([]byte(alice), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			c.settle()
			got := c.sameTrees()
			copies := conflictCopies(t, a)
			if len(copies) != 1 || !strings.HasPrefix(copies[0], "doc.sync-conflict-") || !strings.HasSuffix(copies[0], "-alice.txt") {
				t.Fatalf("conflict copies %v, want one of doc.txt by alice; files: %v", copies, got)
			}
			if s := string(b.read(t, copies[0])); !strings.HasPrefix(s, "alice's text") {
				t.Errorf("bob's %s holds %q, want alice's text", copies[0], s)
			}
			switch op {
			case "replace":
				if s := string(a.read(t, "doc.txt")); s != "bob's edit\n" {
					t.Errorf("doc.txt holds %q on alice, want bob's edit", s)
				}
			case "delete":
				if a.exists("doc.txt") {
					t.Error("doc.txt is back after bob's delete")
				}
			}
		})
	}
}
