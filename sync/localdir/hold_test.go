package localdir_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// Where the hold directory is on another file system, HoldCopy copies the
// file about to be replaced there, with its mode and time, and Held names
// the node whose change replaced it; without HoldCopy nothing is held.
func TestHoldCopyAcrossFileSystems(t *testing.T) {
	ctx := context.Background()
	for _, copying := range []bool{true, false} {
		root, hold := t.TempDir(), filepath.Join(t.TempDir(), "held")
		d, err := localdir.New(root, localdir.Options{Hold: hold, HoldCopy: copying})
		if err != nil {
			t.Fatal(err)
		}
		localdir.SetCrossDevice(d)
		mtime := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
		meta := localdir.Meta{Kind: cache.KindFile, Mode: 0o640, ModTime: mtime}
		old := append(bytes.Repeat([]byte{0}, 8192), "old content"...)
		st, err := d.Install(ctx, "a.txt", bytes.NewReader(old), meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Install(localdir.WithOrigin(ctx, localdir.Origin{Node: "bob"}), "a.txt", bytes.NewReader([]byte("new")), meta, &st); err != nil {
			t.Fatal(err)
		}
		held, err := d.Held()
		if err != nil {
			t.Fatal(err)
		}
		if !copying {
			if len(held) != 0 {
				t.Errorf("without HoldCopy, held across file systems: %+v", held)
			}
			continue
		}
		if len(held) != 1 || held[0].Path != "a.txt" || held[0].Changed || held[0].Origin.Node != "bob" {
			t.Fatalf("held: %+v; want a.txt, unchanged, by bob", held)
		}
		fi, err := os.Stat(d.HeldFile(held[0]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d.HeldFile(held[0]))
		if err != nil || !bytes.Equal(got, old) || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
			t.Errorf("the held copy: %q, mode %v, mtime %v (%v); want the old content, 0640, %v", got, fi.Mode(), fi.ModTime(), err, mtime)
		}
		if now, _ := os.ReadFile(filepath.Join(root, "a.txt")); string(now) != "new" {
			t.Errorf("a.txt reads %q after the install", now)
		}
	}
}
