package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSyncStaysInItsRepository: a node refuses, before deriving any key, a
// relay whose escale.json was swapped for another repository's made with
// the same passphrase, or for its own with other key derivation
// parameters; with its own back, it syncs again.
func TestSyncStaysInItsRepository(t *testing.T) {
	bin := buildEscalefs(t)
	pass := passphraseFile(t, testPassphrase)
	relayA, relayB := t.TempDir(), t.TempDir()
	folder, other := t.TempDir(), t.TempDir()
	xdg := t.TempDir()
	sync := func(xdg, relay, dir string) (string, int) {
		_, errOut, code := runBin(t, bin, xdg, "sync", "--once", "--relay", "file://"+relay,
			"--passphrase-file", pass, "--name", "n", dir)
		return errOut, code
	}
	writeFile(t, filepath.Join(folder, "f.txt"), []byte("mine\n"), 0o644)
	if out, code := sync(xdg, relayA, folder); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	if out, code := sync(t.TempDir(), relayB, other); code != 0 {
		t.Fatalf("sync of another repository: exit %d\n%s", code, out)
	}
	cfgA := filepath.Join(relayA, "escale.json")
	original, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	swapped, err := os.ReadFile(filepath.Join(relayB, "escale.json"))
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(b []byte) string {
		var c struct{ Repository string }
		if err := json.Unmarshal(b, &c); err != nil || c.Repository == "" {
			t.Fatalf("escale.json without a repository: %v\n%s", err, b)
		}
		return c.Repository
	}
	writeFile(t, cfgA, swapped, 0o644)
	out, code := sync(xdg, relayA, folder)
	if code == 0 || !strings.Contains(out, "refused") || !strings.Contains(out, idOf(original)) || !strings.Contains(out, idOf(swapped)) {
		t.Errorf("sync against a swapped repository: exit %d, want a refusal naming %s and %s\n%s", code, idOf(original), idOf(swapped), out)
	}
	states, err := os.ReadDir(filepath.Join(xdg, "escalefs"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, d := range states {
		if d.IsDir() {
			dirs = append(dirs, d.Name())
		}
	}
	if len(dirs) != 1 {
		t.Errorf("state directories %v: the node joined the other repository", dirs)
	}

	hostile := regexp.MustCompile(`"memory_kib":\s*\d+`).ReplaceAll(original, []byte(`"memory_kib":1048576`))
	if string(hostile) == string(original) {
		t.Fatalf("no memory_kib in escale.json:\n%s", original)
	}
	writeFile(t, cfgA, hostile, 0o644)
	if out, code := sync(xdg, relayA, folder); code == 0 || !strings.Contains(out, "not the one this node joined") {
		t.Errorf("sync against its escale.json with 1 GiB of key derivation: exit %d, want a refusal\n%s", code, out)
	}

	writeFile(t, cfgA, original, 0o644)
	if out, code := sync(xdg, relayA, folder); code != 0 {
		t.Errorf("sync with its own escale.json back: exit %d\n%s", code, out)
	}
}
