package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	escsync "github.com/escalefs/escalefs/sync"
)

// nodes runs escalefs nodes (with args, and the node's relay and key) as
// node n, from its state directory.
func (n *syncNode) nodes(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	args = append(append([]string{"nodes"}, args...), "--relay", n.relay, "--key-file", n.key)
	return runBin(t, n.bin, n.state, args...)
}

// nodesJSON runs escalefs nodes --json as node n, by node name.
func (n *syncNode) nodesJSON(t *testing.T) map[string]nodeListEntry {
	t.Helper()
	out, errOut, code := n.nodes(t, "--json")
	if code != 0 {
		t.Fatalf("escalefs nodes --json: exit %d\n%s", code, errOut)
	}
	var l nodeListJSON
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := make(map[string]nodeListEntry)
	for _, e := range l.Nodes {
		m[e.Name] = e
	}
	return m
}

// line returns the line of out that starts with name and a space.
func line(out, name string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// TestNodesEndToEnd: escalefs nodes lists the nodes that synced, from the
// relay, and marks the one of this machine; escalefs nodes forget NODE,
// with no sync running, publishes the forget from this machine's node.
func TestNodesEndToEnd(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alpha := newSyncNode(t, "alpha", bin, relay, key)
	beta := newSyncNode(t, "beta", bin, relay, key)
	alpha.write(t, "hello.txt", "hello")
	alpha.once(t)
	beta.once(t)

	out, errOut, code := alpha.nodes(t)
	if code != 0 {
		t.Fatalf("escalefs nodes: exit %d\n%s", code, errOut)
	}
	if !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "LAST ACTIVITY") {
		t.Errorf("no header:\n%s", out)
	}
	a, b := line(out, "alpha"), line(out, "beta")
	// alpha wrote before beta existed; beta acknowledged alpha's file.
	wantAll(t, "alpha's line", a, "shared", "2 records behind", "yes", "this node")
	wantAll(t, "beta's line", b, "shared", "up to date", "yes")
	if strings.Contains(b, "this node") {
		t.Errorf("beta marked as this node from alpha's machine:\n%s", out)
	}
	got := alpha.nodesJSON(t)
	if len(got) != 2 || !got["alpha"].This || got["beta"].This || !got["alpha"].Puller || got["beta"].Behind == nil ||
		*got["beta"].Behind != 0 || *got["alpha"].Behind != 2 || got["alpha"].Mode != "shared" || len(got["beta"].ID) != 32 {
		t.Errorf("escalefs nodes --json: %+v", got)
	}

	// Forgetting this node itself is refused, by name or ID.
	for _, arg := range []string{"alpha", got["alpha"].ID[:6]} {
		_, errOut, code = alpha.nodes(t, "forget", arg)
		if code == 0 || !strings.Contains(errOut, "is this node") || !strings.Contains(errOut, "cannot forget itself") {
			t.Errorf("forget %s: exit %d\n%s", arg, code, errOut)
		}
	}
	// Unknown.
	_, errOut, code = alpha.nodes(t, "forget", "gamma")
	if code == 0 || !strings.Contains(errOut, `no node named "gamma"`) || !strings.Contains(errOut, "alpha (id ") ||
		!strings.Contains(errOut, "beta (id ") {
		t.Errorf("forget gamma: exit %d\n%s", code, errOut)
	}

	out, errOut, code = alpha.nodes(t, "forget", "beta")
	if code != 0 || !strings.Contains(out, "forgot beta (id "+got["beta"].ID[:8]+") as of its record 1") {
		t.Fatalf("forget beta: exit %d, %q\n%s", code, out, errOut)
	}
	out, _, _ = alpha.nodes(t)
	wantAll(t, "beta's line after forget", line(out, "beta"), "no (forgotten)", "forgotten by alpha as of record 1")
	// A forgotten node that syncs again counts again.
	beta.once(t)
	alpha.once(t)
	out, _, _ = alpha.nodes(t)
	if b := line(out, "beta"); strings.Contains(b, "forgotten") || !strings.Contains(b, "yes") {
		t.Errorf("beta after syncing again:\n%s", out)
	}
	out, _, _ = alpha.nodes(t, "forget", "beta")
	if !strings.Contains(out, "forgot beta") {
		t.Errorf("forgetting beta again: %q", out)
	}
	out, _, _ = alpha.nodes(t, "forget", "beta")
	if !strings.Contains(out, "already forgotten") {
		t.Errorf("forgetting beta twice: %q", out)
	}
}

// TestNodesForgetErrors: names that fit several nodes are refused with the
// candidates; a machine with no node of the repository cannot forget.
func TestNodesForgetErrors(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	one := newSyncNode(t, "twin", bin, relay, key)
	two := newSyncNode(t, "twin", bin, relay, key)
	other := newSyncNode(t, "other", bin, relay, key)
	one.once(t)
	two.once(t)
	other.once(t)
	_, errOut, code := other.nodes(t, "forget", "twin")
	if code == 0 || !strings.Contains(errOut, `"twin" is ambiguous: it names 2 nodes: twin (id `) ||
		!strings.Contains(errOut, "give more of the node's ID") {
		t.Errorf("forget twin: exit %d\n%s", code, errOut)
	}
	ids := other.nodesJSON(t)
	if len(ids) != 2 { // by name: the twins share one
		t.Fatalf("nodes: %v", ids)
	}

	stranger := newSyncNode(t, "stranger", bin, relay, key) // never synced here
	_, errOut, code = stranger.nodes(t, "forget", "other")
	if code == 0 || !strings.Contains(errOut, "syncs on this machine") {
		t.Errorf("forget from a machine without a node: exit %d\n%s", code, errOut)
	}
	_, errOut, code = other.nodes(t, "forget", "other", "--folder", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "no node of repository") {
		t.Errorf("forget with a --folder not synced: exit %d\n%s", code, errOut)
	}
	_, errOut, code = other.nodes(t, "forget")
	if code == 0 || !strings.Contains(errOut, "missing NODE") {
		t.Errorf("forget without NODE: exit %d\n%s", code, errOut)
	}
}

// TestNodesForgetRunning: with escalefs sync running for this machine's
// node, the forget is handed to it and published at its next round.
func TestNodesForgetRunning(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	alpha := newSyncNode(t, "alpha", bin, relay, key)
	gone := newSyncNode(t, "gone", bin, relay, key)
	alpha.once(t)
	gone.once(t)
	logs := alpha.start(t, "--refresh", "1s")
	out, errOut, code := alpha.nodes(t, "forget", "gone")
	if code != 0 || !strings.Contains(out, "forgot gone (id ") {
		t.Fatalf("forget gone: exit %d, %q\n%s", code, out, errOut)
	}
	got := alpha.nodesJSON(t)
	if !got["gone"].Forgotten || got["gone"].Puller || got["gone"].NotPuller != escsync.NotPullerForgotten ||
		len(got["gone"].ForgottenBy) != 1 || got["gone"].ForgottenBy[0] != got["alpha"].ID {
		t.Errorf("gone after forget: %+v", got["gone"])
	}
	if !strings.Contains(logs.String(), "forgot a node") {
		t.Errorf("the running node did not log the forget:\n%s", logs.String())
	}
}

func TestResolveNode(t *testing.T) {
	id := func(s string) crypto.NodeID {
		n, err := crypto.ParseNodeID(s + strings.Repeat("0", 32-len(s)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	list := []escsync.NodeInfo{
		{Name: "ab", ID: id("ab12")},
		{Name: "desk", ID: id("ab34")},
		{Name: "desk", ID: id("cd56")},
		{Name: "laptop", ID: id("ef78")},
	}
	for _, tc := range []struct{ arg, want, err string }{
		{"laptop", "ef78", ""},
		{"ef", "ef78", ""},
		{"EF7", "ef78", ""},
		{"ab", "ab12", ""}, // a name wins over an ID prefix
		{"ab3", "ab34", ""},
		{"cd56" + strings.Repeat("0", 28), "cd56", ""},
		{"desk", "", `"desk" is ambiguous: it names 2 nodes: desk (id ab34`},
		{"a", "", `"a" is ambiguous`},
		{"zz", "", `no node named "zz"`},
		{"Laptop", "", `no node named "Laptop"`},
	} {
		got, err := resolveNode(list, tc.arg)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want an error with %q", tc.arg, err, tc.err)
		case tc.err == "" && (err != nil || got.ID != id(tc.want)):
			t.Errorf("%q: %s %v, want %s", tc.arg, got.ID, err, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0: "just now", -time.Minute: "just now", 5 * time.Second: "5s ago", 3*time.Minute + 59*time.Second: "3m ago",
		2 * time.Hour: "2h ago", 47 * time.Hour: "47h ago", 72 * time.Hour: "3d ago",
	} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
	if got := ago(time.Time{}, now); got != "unknown" {
		t.Errorf("zero time: %q", got)
	}
}
