package main

import (
	"encoding/json"
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

// TestVersionsRestore: bob deletes a directory of 50 files and edits
// another file; alice's copies go, escalefs versions lists them, and
// restores bring them back, byte-identical, on both nodes; what the file
// held before its restore is kept as a version in turn.
func TestVersionsRestore(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alice := newSyncNode(t, "alice", bin, relay, key)
	bob := newSyncNode(t, "bob", bin, relay, key)
	for i := range 50 {
		alice.write(t, "album/p"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".txt", strings.Repeat("photo ", i+1))
	}
	alice.write(t, "notes.txt", "version one\n")
	alice.once(t)
	bob.once(t)
	if err := os.RemoveAll(bob.path("album")); err != nil {
		t.Fatal(err)
	}
	bob.write(t, "notes.txt", "version two\n")
	bob.once(t)
	versionsCmd := func(args ...string) string {
		t.Helper()
		out, errOut, code := runBin(t, bin, alice.state, append([]string{"versions"}, args...)...)
		if code != 0 {
			t.Fatalf("escalefs versions %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	waitFor(t, 30*time.Second, "alice to keep the 50 files and notes.txt as versions", func() bool {
		alice.once(t)
		out, _, code := runBin(t, bin, alice.state, "versions", alice.dir)
		return code == 0 && strings.Count(out, "pulled delete") == 50 && strings.Count(out, "pulled edit") == 1
	})
	if _, err := os.Stat(alice.path("album")); !os.IsNotExist(err) {
		t.Fatalf("alice's album is still there: %v", err)
	}
	out, _, _ := runBin(t, bin, alice.state, "status", "--json", alice.dir)
	var st []struct {
		Versions struct {
			Count  int
			Bytes  int64
			Oldest time.Time
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || st[0].Versions.Count != 51 ||
		st[0].Versions.Bytes == 0 || st[0].Versions.Oldest.IsZero() {
		t.Errorf("status --json: %+v (%v), want 51 versions with their size and the oldest's time\n%s", st, err, out)
	}
	versionsCmd("restore", alice.path("album"))
	versionsCmd("restore", alice.path("notes.txt"))
	if !alice.has("notes.txt", "version one\n") || !alice.has("album/pa.txt", "photo ") {
		t.Fatal("the restores did not put the old content back on alice")
	}
	if out := versionsCmd(alice.path("notes.txt")); !strings.Contains(out, "local") {
		t.Errorf("what notes.txt held before the restore is not kept:\n%s", out)
	}
	alice.once(t)
	bob.once(t)
	got, want := treeOf(t, bob.dir), treeOf(t, alice.dir)
	if len(got) != len(want) || len(want) != 52 {
		t.Fatalf("bob holds %d entries, alice %d, want 52 (the album, its 50 files, notes.txt)", len(got), len(want))
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s: bob has %.60q, alice %.60q", p, got[p], v)
		}
	}
	if out := versionsCmd("prune", alice.dir, "--versions-keep", "1", "--versions", "simple"); !strings.Contains(out, "dropped 1 old version") {
		t.Errorf("prune keeping one version of each file:\n%s", out)
	}
	if out := versionsCmd("prune", alice.dir, "--versions", "off"); !strings.Contains(out, "dropped 51 old versions") {
		t.Errorf("prune with --versions off:\n%s", out)
	}
	if out := versionsCmd(alice.dir); !strings.Contains(out, "no version") {
		t.Errorf("versions after pruning them all:\n%s", out)
	}
}

// TestMountShowsVersions: a mount shows what a pull replaced in its
// read-only .escalefs/versions tree.
func TestMountShowsVersions(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	bob := newSyncNode(t, "bob", bin, relay, key)
	bob.write(t, "report.txt", "draft\n")
	bob.once(t)
	a := startMount(t, bin, "alice", relay, key)
	waitFor(t, 30*time.Second, "report.txt in alice's mount", func() bool { return a.has("report.txt", "draft\n") })
	bob.write(t, "report.txt", "final\n")
	bob.once(t)
	dir := filepath.Join(a.mnt, ".escalefs", "versions")
	waitFor(t, 60*time.Second, "the draft in alice's .escalefs/versions", func() bool {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "report~") {
			return false
		}
		b, err := os.ReadFile(filepath.Join(dir, ents[0].Name()))
		return err == nil && string(b) == "draft\n"
	})
	if !a.has("report.txt", "final\n") {
		t.Error("alice's report.txt is not the final one")
	}
	// The running mount restores the draft itself (a control request),
	// and it reaches bob as any local change does.
	out, errOut, code := runBin(t, bin, a.state, "versions", "restore", filepath.Join(a.mnt, "report.txt"))
	if code != 0 || !strings.Contains(out, "restored report.txt") {
		t.Fatalf("escalefs versions restore in a running mount: exit %d\n%s%s", code, out, errOut)
	}
	if !a.has("report.txt", "draft\n") {
		t.Error("the restore did not put the draft back in alice's mount")
	}
	waitFor(t, 60*time.Second, "the restored draft on bob", func() bool {
		bob.once(t)
		return bob.has("report.txt", "draft\n")
	})
	a.unmount(t)
}

// TestVersionsRestoreConflict: the loser of a conflict is a version on the
// node whose edit lost, and restoring it puts it back at the path, on
// every node.
func TestVersionsRestoreConflict(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alice := newSyncNode(t, "alice", bin, relay, key)
	bob := newSyncNode(t, "bob", bin, relay, key)
	alice.write(t, "plan.txt", "first plan\n")
	alice.once(t)
	bob.once(t)
	alice.write(t, "plan.txt", "alice's plan\n")
	bob.write(t, "plan.txt", "bob's plan\n")
	older := time.Now().Add(-time.Hour) // bob's edit loses
	if err := os.Chtimes(bob.path("plan.txt"), older, older); err != nil {
		t.Fatal(err)
	}
	alice.once(t)
	bob.once(t)
	if !bob.has("plan.txt", "alice's plan\n") {
		t.Fatal("alice's later edit did not win on bob")
	}
	out, errOut, code := runBin(t, bin, bob.state, "versions", bob.path("plan.txt"))
	if code != 0 || !strings.Contains(out, "conflict") || !strings.Contains(out, "alice") {
		t.Fatalf("escalefs versions plan.txt on bob: exit %d, want a conflict version won by alice\n%s%s", code, out, errOut)
	}
	out, errOut, code = runBin(t, bin, bob.state, "versions", "restore", bob.path("plan.txt"))
	if code != 0 || !bob.has("plan.txt", "bob's plan\n") {
		t.Fatalf("restoring the conflict's loser: exit %d\n%s%s", code, out, errOut)
	}
	waitFor(t, 30*time.Second, "the restored plan on alice", func() bool {
		bob.once(t)
		alice.once(t)
		return alice.has("plan.txt", "bob's plan\n")
	})
}

// TestMountVersionsLocal: with --versions-local, what a write, a save by
// rename and an rm through the mount replace is kept, and restored.
func TestMountVersionsLocal(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMountAt(t, bin, "alice", relay, key, t.TempDir(), t.TempDir(), "--versions-local")
	p := filepath.Join(a.mnt, "draft.txt")
	for _, content := range []string{"one\n", "two\n"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An editor's save: a new file renamed over the old one.
	if err := os.WriteFile(p+".new", []byte("three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runBin(t, bin, a.state, "versions", a.mnt)
	if code != 0 || strings.Count(out, "draft.txt") != 3 || strings.Count(out, " local ") != 3 || strings.Count(out, "local delete") != 1 {
		t.Fatalf("escalefs versions: exit %d, want draft.txt kept three times: two local, one local delete\n%s%s", code, out, errOut)
	}
	out, errOut, code = runBin(t, bin, a.state, "versions", "restore", p)
	if code != 0 {
		t.Fatalf("escalefs versions restore: exit %d\n%s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "three\n" {
		t.Errorf("the restored draft.txt reads %q (%v), want what rm deleted", b, err)
	}
	a.unmount(t)
}
