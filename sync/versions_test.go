package sync_test

import (
	"io"
	"os"
	"path/filepath"
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
	b := &node{name: "b", dir: filepath.Join(t.TempDir(), "b"), state: t.TempDir(), logs: &testserver.SyncBuffer{}}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	local, err := localdir.New(b.dir, localdir.Options{Hold: filepath.Join(b.state, "held"), Clock: c.clock})
	if err != nil {
		t.Fatal(err)
	}
	store, err := versions.Open(filepath.Join(b.state, "versions"), versions.Options{Clock: c.clock})
	if err != nil {
		t.Fatal(err)
	}
	c.startWith(b, local, small, func(cfg *escsync.Config) {
		cfg.Versions, cfg.VersionPolicy = store, versions.Policy{Kind: versions.Staggered}
	})
	c.nodes = append(c.nodes, b)

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
func withVersions(t *testing.T, state string, clock versions.Clock) (*versions.Store, nodeOpts) {
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
