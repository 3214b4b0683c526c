package localdir_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
)

// Install and Remove keep the file they replace in the hold directory:
// Held lists it, tells whether it was written after, and Release lets it
// go.
func TestHold(t *testing.T) {
	ctx := context.Background()
	root, hold := t.TempDir(), filepath.Join(t.TempDir(), "held")
	d, err := localdir.New(root, localdir.Options{Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	meta := localdir.Meta{Kind: cache.KindFile, Mode: 0o644}
	st, err := d.Install(ctx, "a.txt", bytes.NewReader([]byte("one")), meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := d.Held(); err != nil || len(held) != 0 {
		t.Fatalf("held after a first install: %v, %v", held, err)
	}
	f, err := os.OpenFile(filepath.Join(root, "a.txt"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := d.Install(ctx, "a.txt", bytes.NewReader([]byte("two")), meta, &st); err != nil {
		t.Fatal(err)
	}
	held, err := d.Held()
	if err != nil || len(held) != 1 || held[0].Path != "a.txt" || held[0].Changed {
		t.Fatalf("held after a replace: %+v, %v; want a.txt, unchanged", held, err)
	}
	if _, err := f.WriteAt([]byte("ONE, edited"), 0); err != nil {
		t.Fatal(err)
	}
	held, err = d.Held()
	if err != nil || len(held) != 1 || !held[0].Changed {
		t.Fatalf("held after a write to the replaced file: %+v, %v; want it changed", held, err)
	}
	r, err := d.OpenHeld(held[0])
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := r.Read(b)
	r.Close()
	if string(b[:n]) != "ONE, edited" {
		t.Errorf("the held file reads %q", b[:n])
	}
	if err := d.Release(held[0]); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(hold); len(ents) != 0 {
		t.Errorf("the hold directory after Release: %v", ents)
	}

	// Remove holds the file it deletes too.
	cur, err := os.Lstat(filepath.Join(root, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st = localdir.Fingerprint(cur)
	if err := d.Remove(ctx, "a.txt", st); err != nil {
		t.Fatal(err)
	}
	if held, err := d.Held(); err != nil || len(held) != 1 || held[0].Changed {
		t.Errorf("held after a remove: %+v, %v", held, err)
	}
}
