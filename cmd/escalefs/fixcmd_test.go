package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/cache"
)

// fileTree maps every regular file under root to the hash of its content.
func fileTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A relay wiped after two nodes synced is rebuilt by escalefs fix from one
// of them; the other goes on, its change made meanwhile included.
func TestFixWipedRelayBinary(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	bin := buildEscalefs(t)
	kf, _ := keyFile(t)
	relayDir := t.TempDir()
	relay := "file://" + relayDir
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "a.txt"), []byte("from a\n"), 0o644)
	if err := os.Mkdir(filepath.Join(a, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(a, "sub", "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o644)
	writeFile(t, filepath.Join(b, "b.txt"), []byte("from b\n"), 0o644)
	exe := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("escalefs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	sync := func(name, dir string) string {
		t.Helper()
		return exe(true, "sync", "--once", "--relay", relay, "--key-file", kf, "--name", name, dir)
	}
	sync("a", a)
	sync("b", b)
	sync("a", a)
	if !mapsEq(fileTree(t, a), fileTree(t, b)) {
		t.Fatal("a and b differ before the wipe")
	}
	config, err := os.ReadFile(filepath.Join(relayDir, "escale.json"))
	if err != nil {
		t.Fatal(err)
	}

	ents, _ := os.ReadDir(relayDir)
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(relayDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(b, "meanwhile.txt"), []byte("written while the relay was gone\n"), 0o644)
	out := exe(false, "sync", "--once", "--relay", relay, "--key-file", kf, "--name", "a", a)
	if !strings.Contains(out, "holds no repository") {
		t.Fatalf("sync on the wiped relay:\n%s", out)
	}

	// While a's cache is held (sync runs), fix refuses.
	dirs, err := folderStateDirs(filepath.Join(os.Getenv("XDG_STATE_HOME"), "escalefs"), resolvePath(a))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("a's state: %v, %v", dirs, err)
	}
	held, err := cache.Open(filepath.Join(dirs[0], "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out = exe(false, "fix", "--relay", relay, "--key-file", kf, "--name", "a", a)
	if !strings.Contains(out, "another escalefs process") {
		t.Fatalf("fix while the cache is held:\n%s", out)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}

	out = exe(true, "fix", "--relay", relay, "--key-file", kf, "--name", "a", a)
	for _, w := range []string{"plan (dry run", "write escale.json back", "republish this node's state", "3 files (3 uploaded again"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run lacks %q:\n%s", w, out)
		}
	}
	if ents, _ := os.ReadDir(relayDir); len(ents) != 0 {
		t.Fatalf("the dry run wrote to the relay: %v", ents)
	}

	out = exe(true, "fix", "--apply", "--relay", relay, "--key-file", kf, "--name", "a", a)
	for _, w := range []string{"rebuilt:", "wrote escale.json back", "republished this node's state"} {
		if !strings.Contains(out, w) {
			t.Errorf("fix --apply lacks %q:\n%s", w, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(relayDir, "escale.json")); err != nil || !bytes.Equal(got, config) {
		t.Fatalf("escale.json not restored byte for byte (%v)", err)
	}
	out = exe(true, "fix", "--relay", relay, "--key-file", kf, "--name", "a", a)
	if !strings.Contains(out, "nothing to rebuild") {
		t.Errorf("a second fix finds work:\n%s", out)
	}

	out = sync("b", b)
	if !strings.Contains(out, "this node's log is gone from the relay") {
		t.Errorf("b did not republish its log:\n%s", out)
	}
	sync("a", a)
	sync("b", b)
	ta, tb := fileTree(t, a), fileTree(t, b)
	if !mapsEq(ta, tb) || len(ta) != 4 {
		t.Fatalf("after the fix:\na: %v\nb: %v", ta, tb)
	}
	if got, _ := os.ReadFile(filepath.Join(a, "meanwhile.txt")); string(got) != "written while the relay was gone\n" {
		t.Fatalf("b's change made while the relay was gone: %q", got)
	}
}

func mapsEq(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
