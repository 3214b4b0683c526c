package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// escalefs status names the conflict copies waiting in a folder and the
// repository's use of the relay against its quota, and --json gives the
// same as one object per node.
func TestStatusConflictsUsageJSON(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	key, _ := keyFile(t)
	dir := t.TempDir()
	copyName := "report.sync-conflict-20261124-120000-bob.txt"
	writeFile(t, filepath.Join(dir, "report.txt"), []byte("mine\n"), 0o644)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub", copyName), []byte("theirs\n"), 0o644)
	if _, errOut, code := run(t, "sync", "--once", "--relay", "file://"+t.TempDir(), "--key-file", key,
		"--name", "alice", "--disk-quota", "1MiB", dir); code != 0 {
		t.Fatalf("sync --once: exit %d\n%s", code, errOut)
	}
	// bob joins; alice's next round sees him.
	relayURL := ""
	if f, err := readStatusFile(mustOneState(t, dir)); err == nil && f != nil {
		relayURL = f.Relay
	}
	if _, errOut, code := run(t, "sync", "--once", "--relay", relayURL, "--key-file", key, "--name", "bob", t.TempDir()); code != 0 {
		t.Fatalf("bob's sync --once: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run(t, "sync", "--once", "--relay", relayURL, "--key-file", key, "--name", "alice",
		"--disk-quota", "1MiB", dir); code != 0 {
		t.Fatalf("alice's second sync --once: exit %d\n%s", code, errOut)
	}
	out, errOut, code := run(t, "status", dir)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errOut)
	}
	wantAll(t, "status", out, "peers:      bob (last wrote ", "conflicts:  1 conflict copy to look at: sub/"+copyName,
		"relay use:", "on the relay of a 1048576 bytes (1.0 MiB) quota (")

	out, errOut, code = run(t, "status", "--json", dir)
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, errOut)
	}
	var nodes []nodeJSON
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("status --json is not a JSON array of nodes: %v\n%s", err, out)
	}
	if len(nodes) != 1 {
		t.Fatalf("status --json: %d nodes, want 1\n%s", len(nodes), out)
	}
	n := nodes[0]
	if n.Folder != resolvePath(dir) || n.Node != "alice" || n.Running || n.Command != "sync" {
		t.Errorf("node: %+v", n)
	}
	if n.ConflictCount != 1 || len(n.Conflicts) != 1 || n.Conflicts[0] != "sub/"+copyName {
		t.Errorf("conflicts: %d %v", n.ConflictCount, n.Conflicts)
	}
	if n.RelayUsage == nil || *n.RelayUsage <= 0 || n.Quota != 1<<20 {
		t.Errorf("relay usage %v, quota %d: want a positive usage and a 1 MiB quota", n.RelayUsage, n.Quota)
	}
	if len(n.Peers) != 1 || n.Peers[0].Name != "bob" || n.Peers[0].LastSeen.IsZero() {
		t.Errorf("peers: %+v, want bob, seen writing", n.Peers)
	}
	if n.Queue == nil || n.Queue.Files != 0 {
		t.Errorf("queue after a full sync: %+v", n.Queue)
	}

	// No node at all: an empty array.
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	out, _, code = run(t, "status", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("status --json without nodes: exit %d, %q", code, out)
	}
}

// mustOneState returns the state directory of the one node of dir.
func mustOneState(t *testing.T, dir string) string {
	t.Helper()
	root, err := stateRoot()
	if err != nil {
		t.Fatal(err)
	}
	states, err := folderStateDirs(root, resolvePath(dir))
	if err != nil || len(states) != 1 {
		t.Fatalf("state directories of %s: %v %v", dir, states, err)
	}
	return states[0]
}
