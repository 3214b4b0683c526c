package sync_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/pseudo"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// dirRelay is a file relay over a directory the test can wipe or alter.
func dirRelay(t *testing.T) (relay.Relay, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := file.New(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// wipe empties the relay's directory, as a lost or replaced share would.
func wipe(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if err := os.RemoveAll(filepath.Join(dir, d.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// flip alters one byte in the middle of a relay object.
func flip(t *testing.T, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushNew writes data at rel on n, scans and pushes it (without pulling),
// and returns the names of the blobs the push added to the relay.
func pushNew(t *testing.T, r relay.Relay, n *node, rel string, data []byte) []string {
	t.Helper()
	ctx := context.Background()
	prefix := "blobs/" + n.e.Node().String()
	before := relayNames(t, r, prefix)
	n.write(t, rel, data)
	if _, err := n.e.Scan(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.Push(ctx); err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(relayNames(t, r, prefix), func(name string) bool { return slices.Contains(before, name) })
}

func (n *node) fix(t *testing.T, apply bool) *escsync.FixReport {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t, n.name + " fix"}, nil))
	rep, err := n.e.Fix(context.Background(), log, escsync.FixOptions{Apply: apply})
	if err != nil {
		t.Fatalf("%s: fix: %v", n.name, err)
	}
	return rep
}

func fillFolder(t *testing.T, n *node) {
	t.Helper()
	n.write(t, "small.txt", []byte("hello"))
	n.write(t, "docs/notes.md", content("notes", 3000))
	n.write(t, "big.bin", content("big", 40<<10)) // parts
	n.write(t, "empty", nil)
	if err := os.Symlink("small.txt", filepath.Join(n.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(n.dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFixWipedRelay(t *testing.T) {
	ctx := context.Background()
	r, dir := dirRelay(t)
	c := newCluster(t, r)
	a := c.add("a", small)
	b := c.add("b", small)
	fillFolder(t, a)
	c.settle()
	b.write(t, "from-b.txt", []byte("b was here"))
	c.settle()
	c.sameTrees()
	config, err := os.ReadFile(filepath.Join(dir, crypto.ConfigName))
	if err != nil {
		t.Fatal(err)
	}

	// b changes a file that stays queued while the relay is lost.
	b.write(t, "pending.txt", []byte("not pushed yet"))
	if n, err := b.e.Scan(ctx, nil); err != nil || n == 0 {
		t.Fatalf("scan: %d, %v", n, err)
	}
	wipe(t, dir)

	plan := a.fix(t, false)
	if !plan.RestoreConfig || !plan.Republish || len(plan.Missing) == 0 || plan.Applied {
		t.Fatalf("plan: %+v", plan)
	}
	if plan.Files != 5 || plan.UploadFiles != 4 || plan.Dirs != 2 || plan.Symlinks != 1 {
		t.Errorf("plan counts: %+v", plan)
	}
	if names := relayNames(t, r, ""); len(names) != 0 {
		t.Fatalf("a dry run changed the relay: %v", names)
	}

	rep := a.fix(t, true)
	if !rep.Applied {
		t.Fatalf("not applied: %+v", rep)
	}
	got, err := os.ReadFile(filepath.Join(dir, crypto.ConfigName))
	if err != nil || !bytes.Equal(got, config) {
		t.Fatalf("escale.json not restored byte for byte: %v", err)
	}
	snap := layout.SnapshotName(a.e.Node(), rep.UpTo)
	if names := relayNames(t, r, "nodes/"+a.e.Node().String()); !slices.Equal(names, []string{snap}) {
		t.Fatalf("a's log after fix: %v, want only %s", names, snap)
	}
	if again := a.fix(t, false); !again.Clean() {
		t.Fatalf("a second fix finds work: %+v", again)
	}

	// b goes on: same repository, its queued change is pushed, its own
	// log is republished.
	c.settle(a, b)
	c.sameTrees(a, b)
	if string(a.read(t, "pending.txt")) != "not pushed yet" {
		t.Fatal("b's queued change did not reach a")
	}
	if !contains(b.logs.String(), "this node's log is gone from the relay") {
		t.Error("b did not report its log lost")
	}
	bsnaps := relayNames(t, r, "nodes/"+b.e.Node().String()+"/snap")
	if len(bsnaps) == 0 {
		t.Error("b published no snapshot")
	}

	// A node joining afterwards gets every file.
	late := c.add("late", small)
	c.settle()
	c.sameTrees()
	if string(late.read(t, "big.bin")) != string(content("big", 40<<10)) {
		t.Fatal("late node: big.bin differs")
	}
	for _, n := range c.nodes {
		if !n.exists("pending.txt") || !n.exists("from-b.txt") || !n.exists("emptydir") {
			t.Fatalf("%s misses files", n.name)
		}
	}
}

func TestFixDamaged(t *testing.T) {
	ctx := context.Background()
	r, dir := dirRelay(t)
	c := newCluster(t, r)
	keep := func(cfg *escsync.Config) { cfg.PackLimit, cfg.PartSize = 4<<10, 8<<10 }
	a := c.add("a", keep)
	b := c.add("b", keep)
	fillFolder(t, a)
	b.write(t, "b.txt", []byte("from b"))
	c.settle()

	// a pushes two records; the second is tampered with before b reads
	// it, and the blob of the first.
	ablobs := pushNew(t, r, a, "other.txt", []byte("other content"))
	pushNew(t, r, a, "new.txt", []byte("new content"))
	alog := relayNames(t, r, "nodes/"+a.e.Node().String()+"/log")
	tampered := alog[len(alog)-1]
	flip(t, dir, tampered)
	flip(t, dir, ablobs[0])
	// And one of b's records.
	blog := relayNames(t, r, "nodes/"+b.e.Node().String())
	flip(t, dir, blog[0])
	if _, err := b.e.Round(ctx); err == nil || !strings.Contains(err.Error(), tampered) {
		t.Fatalf("b reading a tampered record: %v", err)
	}

	plan := a.fix(t, false)
	want := map[string]bool{tampered: true, ablobs[0]: true, blog[0]: false}
	if len(plan.Damaged) != len(want) {
		t.Fatalf("damaged: %+v", plan.Damaged)
	}
	for _, d := range plan.Damaged {
		own, ok := want[d.Name]
		if !ok || d.Own != own {
			t.Fatalf("damaged: %+v", d)
		}
		if !own && d.NodeName != "b" {
			t.Errorf("another node's damage names %q, want b", d.NodeName)
		}
	}
	if !plan.Republish || plan.RestoreConfig {
		t.Fatalf("plan: %+v", plan)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(tampered))); err != nil {
		t.Fatal("a dry run deleted an object")
	}

	rep := a.fix(t, true)
	slices.Sort(rep.Deleted)
	wantDel := []string{tampered, ablobs[0]}
	slices.Sort(wantDel)
	if !slices.Equal(rep.Deleted, wantDel) {
		t.Fatalf("deleted %v, want %v", rep.Deleted, wantDel)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(blog[0]))); err != nil {
		t.Fatal("fix deleted another node's object")
	}
	// b's own fix replaces its damaged record.
	if rep := b.fix(t, true); len(rep.Deleted) != 1 || rep.Deleted[0] != blog[0] {
		t.Fatalf("b's fix: %+v", rep)
	}
	c.settle()
	c.sameTrees()
	if string(b.read(t, "new.txt")) != "new content" || string(b.read(t, "other.txt")) != "other content" {
		t.Fatal("the tampered record's file did not reach b")
	}
	if left := a.fix(t, false); len(left.Damaged) != 0 || left.Republish {
		t.Fatalf("damage left: %+v", left)
	}
	late := c.add("late", keep)
	c.settle()
	c.sameTrees(a, b, late)
}

// TestFixDamagedChunkBlob: chunk blobs carry no hash in their record;
// fix reads them through their authentication instead, finds the one
// with a flipped byte (and not the intact one), and its republishing
// brings the file to the peer.
func TestFixDamagedChunkBlob(t *testing.T) {
	r, dir := dirRelay(t)
	c := chunkedCluster(t, r)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	c.settle()
	var blobs []string
	for _, name := range []string{"one.img", "two.img"} {
		added := pushNew(t, r, a, name, pseudo.Bytes(name, 3<<20))
		if len(added) != 1 {
			t.Fatalf("%s: %d chunk blobs, want 1", name, len(added))
		}
		blobs = append(blobs, added[0])
	}
	flip(t, dir, blobs[0])

	plan := a.fix(t, false)
	if len(plan.Damaged) != 1 || plan.Damaged[0].Name != blobs[0] || !plan.Damaged[0].Own {
		t.Fatalf("damaged: %+v, want the flipped chunk blob %s alone", plan.Damaged, blobs[0])
	}
	if rep := a.fix(t, true); !slices.Contains(rep.Deleted, blobs[0]) {
		t.Fatalf("fix deleted %v, not the damaged blob", rep.Deleted)
	}
	c.settle()
	for _, name := range []string{"one.img", "two.img"} {
		if !bytes.Equal(b.read(t, name), pseudo.Bytes(name, 3<<20)) {
			t.Errorf("%s differs on b after the fix", name)
		}
	}
}
