package sync_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	escsync "github.com/escalefs/escalefs/sync"
)

// TestScanRecordsNewParents: a file scanned alone in directories the cache
// does not know yet brings them along, so the peers get them as
// directories of the writer and remove them when the writer does.
func TestScanRecordsNewParents(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	a.write(t, "new/sub/f", []byte("x"))
	if _, err := a.e.Scan(ctx, []string{"new/sub/f"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/sub", "new/sub/f"} {
		if _, ok, err := a.e.Access(p); err != nil || !ok {
			t.Errorf("%s: known %v, %v after a scan of new/sub/f", p, ok, err)
		}
	}
	c.settle()
	if !b.exists("new/sub/f") {
		t.Fatal("new/sub/f did not reach b")
	}
	if err := os.RemoveAll(filepath.Join(a.dir, "new")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.e.Scan(ctx, []string{"new"}); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if b.exists("new") {
		t.Error("b keeps new after a removed it")
	}
	c.sameTrees()
}

// TestUnpushedDeleteNotPushed: a file made and removed before it was
// pushed leaves nothing to push.
func TestUnpushedDeleteNotPushed(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	a.write(t, "tmp", []byte("x"))
	if _, err := a.e.Scan(ctx, []string{"tmp"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.e.Scan(ctx, []string{"tmp"}); err != nil {
		t.Fatal(err)
	}
	n, err := a.e.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("pushed %d changes for a file no peer ever saw", n)
	}
	if _, ok, err := a.e.Access("tmp"); err != nil || ok {
		t.Errorf("tmp still known (%v, %v)", ok, err)
	}
}

// TestKnownRecordsOpenFile: Known records a file still open for writing
// (a file just closed counts as open until the kernel's release arrives),
// so that its modifiers can be set; the push still holds it back.
func TestKnownRecordsOpenFile(t *testing.T) {
	ctx := context.Background()
	open := &openFiles{}
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small, func(cfg *escsync.Config) { cfg.InUse = open.InUse })
	a.write(t, "f", []byte("x"))
	open.set("f", true)
	if err := a.e.Known(ctx, "f"); err != nil {
		t.Fatalf("Known of a file open for writing: %v", err)
	}
	if n, err := a.e.Push(ctx); err != nil || n != 0 {
		t.Errorf("pushed %d (%v) while f is open", n, err)
	}
	open.set("f", false)
	if n, err := a.e.Push(ctx); err != nil || n != 1 {
		t.Errorf("pushed %d (%v) once f is closed, want 1", n, err)
	}
}

// TestLongPathSyncs: a file whose path is as long as the kernel takes
// (4095 bytes) reaches the peer.
func TestLongPathSyncs(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	p := ""
	for 4095-len(p) > 255 {
		p += strings.Repeat("d", 250) + "/"
	}
	file := p + strings.Repeat("f", 4095-len(p))
	ra, err := os.OpenRoot(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if err := ra.MkdirAll(strings.TrimSuffix(p, "/"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ra.WriteFile(file, []byte("deep"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.settle()
	rb, err := os.OpenRoot(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if got, err := rb.ReadFile(file); err != nil || string(got) != "deep" {
		t.Fatalf("b reads %q, %v; want deep", got, err)
	}
}
