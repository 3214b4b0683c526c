package sync_test

import (
	"context"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
)

// openFiles is a Config.InUse: the paths open for writing.
type openFiles struct {
	mu    gosync.Mutex
	paths map[string]bool
}

func (o *openFiles) set(path string, open bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.paths == nil {
		o.paths = make(map[string]bool)
	}
	o.paths[path] = open
}

func (o *openFiles) InUse(path string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.paths[path]
}

// TestInUseNotReplaced: a file open for writing is pushed once closed, and
// never replaced under its writer. A peer's new version becomes a conflict copy beside it, a peer's
// delete is not applied, and what the writer leaves wins on every node.
func TestInUseNotReplaced(t *testing.T) {
	open := &openFiles{}
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small, func(cfg *escsync.Config) { cfg.InUse = open.InUse })
	c.register()
	a.write(t, "doc.txt", []byte("v1"))
	c.settle()
	if got := string(b.read(t, "doc.txt")); got != "v1" {
		t.Fatalf("b has %q before the test", got)
	}

	// b's editor holds doc.txt open for writing when a's edit arrives.
	open.set("doc.txt", true)
	a.write(t, "doc.txt", []byte("v2 from a"))
	c.settle()
	if got := string(b.read(t, "doc.txt")); got != "v1" {
		t.Fatalf("a file open for writing was replaced: %q", got)
	}
	copies := conflictCopies(t, b)
	if len(copies) != 1 || string(b.read(t, copies[0])) != "v2 from a" {
		t.Fatalf("conflict copies on b: %v", copies)
	}
	// The writer saves and closes: its version wins everywhere, and a's
	// version survives as the copy everywhere.
	b.write(t, "doc.txt", []byte("v3 from b's editor"))
	c.settle()
	if got := string(a.read(t, "doc.txt")); got != "v2 from a" {
		t.Fatalf("a file was pushed while open for writing: a has %q", got)
	}
	open.set("doc.txt", false)
	c.settle()
	c.sameTrees()
	if got := string(a.read(t, "doc.txt")); got != "v3 from b's editor" {
		t.Fatalf("after the writer closed: doc.txt is %q on every node, want b's save", got)
	}
	if got := string(a.read(t, copies[0])); got != "v2 from a" {
		t.Fatalf("a's version is kept as %s everywhere, but holds %q", copies[0], got)
	}

	// A delete from a while b writes the file: the file stays on b, and
	// (a delete never beats an edit) comes back to a, even if the writer
	// changes nothing.
	open.set("doc.txt", true)
	if err := os.Remove(filepath.Join(a.dir, "doc.txt")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if !b.exists("doc.txt") {
		t.Fatal("a file open for writing was deleted by a peer")
	}
	open.set("doc.txt", false)
	c.settle()
	c.sameTrees()
	if got := string(a.read(t, "doc.txt")); got != "v3 from b's editor" {
		t.Fatalf("after a delete against an open file: doc.txt is %q on every node", got)
	}

	// A mode change does not touch the content: it applies while open.
	open.set("doc.txt", true)
	if err := os.Chmod(filepath.Join(a.dir, "doc.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.settle()
	fi, err := os.Stat(filepath.Join(b.dir, "doc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode change not applied to an open file: %v", fi.Mode())
	}
	if n := len(conflictCopies(t, b)); n != 1 {
		t.Fatalf("a mode change made a conflict copy: %d copies", n)
	}
}

// TestReportedChanges: with Config.Reported (the folder is a mount's, which
// reports every change made through it), Run does not watch the folder: a
// reported file is pushed at once, one changed behind the mount's back is
// not, until the next start scans the whole folder.
func TestReportedChanges(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small, func(cfg *escsync.Config) {
		cfg.Reported = true
		// The system clock, and a quick watcher, were one running.
		cfg.Clock = nil
		cfg.Watch = localdir.WatchOptions{Quiet: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	})
	b := c.add("b", small)
	c.register()
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.e.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	before, err := a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	stop := run()
	// Run's first round scans the whole folder.
	waitFor(t, 30*time.Second, "a's first round", func() bool {
		st, err := a.e.Status()
		return err == nil && st.LastSync.After(before.LastSync)
	})
	a.write(t, "unreported.txt", []byte("behind the mount's back"))
	a.write(t, "reported.txt", []byte("through the mount"))
	a.e.Notify("reported.txt")
	waitFor(t, 30*time.Second, "the reported file to reach b", func() bool {
		b.round(t)
		return b.exists("reported.txt")
	})
	// Another reported change goes through, well after a watcher would
	// have reported the first ones.
	a.write(t, "second.txt", []byte("through the mount too"))
	a.e.Notify("second.txt")
	waitFor(t, 30*time.Second, "the second reported file to reach b", func() bool {
		b.round(t)
		return b.exists("second.txt")
	})
	if b.exists("unreported.txt") {
		t.Fatal("a change that was not reported was pushed: the folder is watched")
	}
	stop()
	stop = run()
	defer stop()
	waitFor(t, 30*time.Second, "the unreported file to reach b after a restart", func() bool {
		b.round(t)
		return b.exists("unreported.txt")
	})
}
