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
