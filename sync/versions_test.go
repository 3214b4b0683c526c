package sync_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

// TestPulledChangesKeepVersions: what a pulled edit replaces and a pulled
// delete removes is kept in the node's version store, once the grace for
// programs still writing it is over, with why; nothing reaches the relay.
func TestPulledChangesKeepVersions(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	stateB := t.TempDir()
	store, optV := withVersions(t, stateB, c.clock)
	b := c.addHeldOnClock("b", stateB, small, optV)

	a.write(t, "doc.txt", []byte("first\n"))
	a.write(t, "gone.txt", []byte("deleted later\n"))
	c.settle()
	a.write(t, "doc.txt", []byte("second\n"))
	if err := os.Remove(filepath.Join(a.dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	// The files the pulls let go are held for a grace period and looked
	// at again at a later round before they are released.
	for range 2 {
		c.clock.Advance(10 * time.Second)
		b.round(t)
	}
	list, err := store.List("")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		reason  versions.Reason
		content string
	}{"doc.txt": {versions.PulledEdit, "first\n"}, "gone.txt": {versions.PulledDelete, "deleted later\n"}}
	if len(list) != len(want) {
		t.Fatalf("versions %+v, want one of doc.txt and one of gone.txt", list)
	}
	for _, v := range list {
		w := want[v.Path]
		f, err := store.Open(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(got) != w.content || v.Reason != w.reason || v.Node != "a" {
			t.Errorf("version of %s: %q (%s by %q), want %q (%s by a)", v.Path, got, v.Reason, v.Node, w.content, w.reason)
		}
	}
	if s := string(b.read(t, "doc.txt")); s != "second\n" {
		t.Errorf("b's doc.txt is %q", s)
	}
}

// withVersions gives a node a version store in state, with the staggered
// policy.
func withVersions(t testing.TB, state string, clock versions.Clock) (*versions.Store, nodeOpts) {
	t.Helper()
	store, err := versions.Open(filepath.Join(state, "versions"), versions.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return store, func(cfg *escsync.Config) {
		cfg.Versions, cfg.VersionPolicy = store, versions.Policy{Kind: versions.Staggered}
	}
}

// TestConflictKeepsLoserVersion: the loser of a conflict is kept in the
// version store of every node, beside its conflict copy, as a copy: an
// edit of the conflict copy leaves the version as it was.
func TestConflictKeepsLoserVersion(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	stateA, stateB := t.TempDir(), t.TempDir()
	storeA, optA := withVersions(t, stateA, c.clock)
	storeB, optB := withVersions(t, stateB, c.clock)
	a := c.addAt("a", filepath.Join(t.TempDir(), "a"), stateA, small, optA)
	b := c.addAt("b", filepath.Join(t.TempDir(), "b"), stateB, small, optB)
	a.write(t, "notes.txt", []byte("v0"))
	c.settle()
	a.write(t, "notes.txt", []byte("from a"))
	b.write(t, "notes.txt", []byte("from b, the loser"))
	tb := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ta := tb.Add(time.Minute) // a's edit is later: it wins
	if err := os.Chtimes(filepath.Join(a.dir, "notes.txt"), ta, ta); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(b.dir, "notes.txt"), tb, tb); err != nil {
		t.Fatal(err)
	}
	a.round(t)
	b.round(t)
	c.settle()
	const copyName = "notes.sync-conflict-20261124-100000-b.txt"
	for _, n := range []struct {
		node  *node
		store *versions.Store
	}{{a, storeA}, {b, storeB}} {
		if s := string(n.node.read(t, copyName)); s != "from b, the loser" {
			t.Fatalf("%s: the conflict copy holds %q", n.node.name, s)
		}
		// The copy is edited in place: the version stays.
		f, err := os.OpenFile(filepath.Join(n.node.dir, copyName), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(", edited"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		list, err := n.store.List("notes.txt")
		if err != nil {
			t.Fatal(err)
		}
		var conflicts []versions.Version
		for _, v := range list {
			if v.Reason == versions.Conflict {
				conflicts = append(conflicts, v)
			}
		}
		if len(conflicts) != 1 || conflicts[0].Node != "a" || !conflicts[0].ModTime.Equal(tb) {
			t.Fatalf("%s: conflict versions of notes.txt %+v; want one, won by a, modified %v", n.node.name, conflicts, tb)
		}
		r, err := n.store.Open(conflicts[0])
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != "from b, the loser" {
			t.Errorf("%s: the conflict version holds %q", n.node.name, got)
		}
	}
}

// TestRestoreRequestBringsDirectoryBack: bob deletes a directory of 50
// files; alice keeps them as versions, and one restore request to her
// running engine brings the directory back, byte-identical, on both
// nodes. What a restore replaces is kept as a local version.
func TestRestoreRequestBringsDirectoryBack(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	stateA := t.TempDir()
	store, optV := withVersions(t, stateA, c.clock)
	control := func(cfg *escsync.Config) { cfg.Control = stateA }
	alice := c.addHeldOnClock("alice", stateA, small, optV, control)
	bob := c.add("bob", small)
	want := make(map[string]string)
	for i := range 50 {
		p := fmt.Sprintf("photos/%02d.txt", i)
		want[p] = strings.Repeat(fmt.Sprintf("photo %d\n", i), i+1)
		alice.write(t, p, []byte(want[p]))
	}
	alice.write(t, "notes.txt", []byte("first"))
	c.settle()
	if err := os.RemoveAll(filepath.Join(bob.dir, "photos")); err != nil {
		t.Fatal(err)
	}
	bob.write(t, "notes.txt", []byte("second"))
	c.settle()
	if alice.exists("photos/00.txt") {
		t.Fatal("bob's delete did not reach alice")
	}
	for range 2 { // the grace of held files, then a later round
		c.clock.Advance(10 * time.Second)
		alice.round(t)
	}
	list, err := store.List("photos")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 50 {
		t.Fatalf("%d versions under photos, want 50", len(list))
	}
	var req escsync.RestoreRequest
	for _, v := range list {
		if v.Reason != versions.PulledDelete || v.Node != "bob" {
			t.Errorf("version of %s: %s by %q, want a pulled delete by bob", v.Path, v.Reason, v.Node)
		}
		req.Items = append(req.Items, escsync.RestoreItem{Path: v.Path, Version: v.ID})
	}
	notes, err := store.List("notes.txt")
	if err != nil || len(notes) != 1 {
		t.Fatalf("versions of notes.txt: %+v, %v", notes, err)
	}
	req.Items = append(req.Items, escsync.RestoreItem{Path: "notes.txt", Version: notes[0].ID})
	reqFile := writeRequest(t, filepath.Join(stateA, escsync.RestoreRequestsDir), req)
	c.settle()
	if _, err := os.Stat(reqFile); !os.IsNotExist(err) {
		t.Fatalf("the request is still there: %v", err)
	}
	var res escsync.RestoreResult
	b, err := os.ReadFile(strings.TrimSuffix(reqFile, ".json") + escsync.RestoreDoneSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Restored != 51 || len(res.Errors) != 0 {
		t.Fatalf("outcome %s (%v), want 51 restored", b, err)
	}
	for _, n := range []*node{alice, bob} {
		for p, content := range want {
			if got := string(n.read(t, p)); got != content {
				t.Fatalf("%s: %s reads %q after the restore", n.name, p, got)
			}
		}
		if got := string(n.read(t, "notes.txt")); got != "first" {
			t.Errorf("%s: notes.txt reads %q after the restore", n.name, got)
		}
	}
	// What the restore replaced ("second") is a local version now.
	for range 2 {
		c.clock.Advance(10 * time.Second)
		alice.round(t)
	}
	notes, err = store.List("notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 2 || notes[1].Reason != versions.Local {
		t.Fatalf("versions of notes.txt after the restore: %+v; want the pulled edit and a local one", notes)
	}
	r, err := store.Open(notes[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "second" {
		t.Errorf("the version the restore replaced holds %q", got)
	}
}

// addHeldOnClock starts a node whose folder holds replaced files on the
// cluster's clock, so that advancing it ends their grace.
func (c *cluster) addHeldOnClock(name, state string, opts ...nodeOpts) *node {
	c.t.Helper()
	n := &node{name: name, dir: filepath.Join(c.t.TempDir(), name), state: state, logs: &testserver.SyncBuffer{}}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	local, err := localdir.New(n.dir, localdir.Options{Hold: filepath.Join(state, "held"), Clock: c.clock})
	if err != nil {
		c.t.Fatal(err)
	}
	c.startWith(n, local, opts...)
	c.nodes = append(c.nodes, n)
	return n
}

// writeRequest writes req as a control request file into dir.
func writeRequest(t *testing.T, dir string, req any) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "1-request.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
