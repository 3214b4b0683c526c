package localdir_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/escalefs/escalefs/sync/localdir"
)

const (
	quiet    = 500 * time.Millisecond
	maxDelay = 5 * time.Second
)

// watchFixture is a folder with a running Watcher on a fake clock. Files
// named ".sentinel-N" are excluded by Skip: the test writes one after its
// operations and waits until the watcher has handled it; inotify delivers
// in order, so by then every earlier event has been handled, and the test
// can move the clock knowing what the watcher has seen.
type watchFixture struct {
	*fixture
	w         *localdir.Watcher
	mu        gosync.Mutex
	seen      map[string]int
	notify    chan struct{}
	sentinels int
}

// newWatch starts a watcher after setup has prepared the folder.
func newWatch(t *testing.T, opts localdir.WatchOptions, setup func(f *fixture)) *watchFixture {
	t.Helper()
	wf := &watchFixture{fixture: newFixture(t), seen: make(map[string]int), notify: make(chan struct{}, 1)}
	if setup != nil {
		setup(wf.fixture)
	}
	wf.skip = func(rel string, isDir bool) bool {
		return strings.HasPrefix(path.Base(rel), ".sentinel-") || strings.HasSuffix(rel, ".ignored")
	}
	opts = localdir.WithEventHook(opts, func(rel string) {
		wf.mu.Lock()
		wf.seen[rel]++
		wf.mu.Unlock()
		select {
		case wf.notify <- struct{}{}:
		default:
		}
	})
	w, err := wf.d.Watch(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	wf.w = w
	wf.settle()
	return wf
}

// settle waits until the watcher has handled every event of what the
// test did so far.
func (wf *watchFixture) settle() {
	wf.t.Helper()
	wf.sentinels++
	name := fmt.Sprintf(".sentinel-%d", wf.sentinels)
	wf.write(name, "")
	waitFor(wf.t, wf.notify, "the watcher to see "+name, func() bool {
		wf.mu.Lock()
		defer wf.mu.Unlock()
		return wf.seen[name] > 0
	})
}

// next returns the next batch, failing after a deadline.
func (wf *watchFixture) next() localdir.Batch {
	wf.t.Helper()
	select {
	case b, ok := <-wf.w.Batches():
		if !ok {
			wf.t.Fatal("Batches closed")
		}
		return b
	case <-time.After(20 * time.Second):
		wf.t.Fatal("timed out waiting for a batch")
	}
	return localdir.Batch{}
}

// noBatch fails if a batch is ready now.
func (wf *watchFixture) noBatch() {
	wf.t.Helper()
	select {
	case b := <-wf.w.Batches():
		wf.t.Fatalf("unexpected batch %+v", b)
	default:
	}
}

// flush moves the clock past the quiet period and returns the batch.
func (wf *watchFixture) flush() localdir.Batch {
	wf.t.Helper()
	wf.clock.Advance(quiet)
	return wf.next()
}

func wantPaths(t *testing.T, b localdir.Batch, want ...string) {
	t.Helper()
	if b.Rescan || !slices.Equal(b.Paths, want) {
		t.Errorf("batch %+v, want paths %q", b, want)
	}
}

func opts() localdir.WatchOptions {
	return localdir.WatchOptions{Quiet: quiet, MaxDelay: maxDelay, RescanEvery: -1}
}

func TestWatchDebounce(t *testing.T) {
	wf := newWatch(t, opts(), func(f *fixture) {
		f.write("d0/x", "old")
		f.write("gone", "x")
		f.write("keep", "x")
	})
	wf.write("a", "new")
	wf.mkdir("n1/n2/n3")
	wf.write("n1/n2/n3/f", "deep")
	wf.write("d0/x", "modified")
	wf.remove("gone")
	wf.chmod("keep", 0o600)
	wf.settle()
	wf.noBatch()
	wf.clock.Advance(quiet - time.Millisecond)
	wf.noBatch()
	wf.clock.Advance(time.Millisecond)
	wantPaths(t, wf.next(), "a", "d0/x", "gone", "keep", "n1")

	// The new nested directories are watched now.
	wf.write("n1/n2/n3/g", "x")
	wf.mkdir("n1/n2/n3/m")
	wf.settle()
	wantPaths(t, wf.flush(), "n1/n2/n3/g", "n1/n2/n3/m")
	wf.write("n1/n2/n3/m/h", "x")
	wf.settle()
	wantPaths(t, wf.flush(), "n1/n2/n3/m/h")
}

func TestWatchMaxDelay(t *testing.T) {
	wf := newWatch(t, opts(), nil)
	fh, err := os.Create(wf.abs("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	wf.settle()
	step := 400 * time.Millisecond // always within the quiet period
	var elapsed time.Duration
	for elapsed+step < maxDelay {
		wf.clock.Advance(step)
		elapsed += step
		if _, err := fh.WriteString("more "); err != nil {
			t.Fatal(err)
		}
		wf.settle()
		wf.noBatch()
	}
	wf.clock.Advance(step) // past MaxDelay since the first event
	wantPaths(t, wf.next(), "busy")
}

func TestWatchDirectoryRenamed(t *testing.T) {
	wf := newWatch(t, opts(), func(f *fixture) { f.write("a/sub/x", "x") })
	wf.rename("a", "b")
	wf.settle()
	wantPaths(t, wf.flush(), "a", "b")
	// Events inside the moved tree carry the new names.
	wf.write("b/sub/y", "y")
	wf.write("b/z", "z")
	wf.settle()
	wantPaths(t, wf.flush(), "b/sub/y", "b/z")
	// A directory moved out of the tree and back in is watched again.
	outside := t.TempDir() + "/out"
	if err := os.Rename(wf.abs("b"), outside); err != nil {
		t.Fatal(err)
	}
	wf.settle()
	wantPaths(t, wf.flush(), "b")
	if err := os.Rename(outside, wf.abs("c")); err != nil {
		t.Fatal(err)
	}
	wf.settle()
	wantPaths(t, wf.flush(), "c")
	wf.write("c/sub/w", "w")
	wf.settle()
	wantPaths(t, wf.flush(), "c/sub/w")
}

func TestWatchDirectoryRemoved(t *testing.T) {
	wf := newWatch(t, opts(), func(f *fixture) { f.write("r/s/t/f", "x"); f.write("other", "x") })
	wf.remove("r")
	wf.settle()
	wantPaths(t, wf.flush(), "r")
	wf.write("r/new", "x")
	wf.settle()
	wantPaths(t, wf.flush(), "r")
	wf.write("r/new2", "x")
	wf.settle()
	wantPaths(t, wf.flush(), "r/new2")
}

func TestWatchIgnoresTempAndSkipped(t *testing.T) {
	wf := newWatch(t, opts(), func(f *fixture) { f.mkdir("d.ignored") })
	wf.write(localdir.TempPrefix+"1", "x")
	wf.rename(localdir.TempPrefix+"1", "installed") // Install's rename: the target counts
	wf.write("x.ignored", "x")
	wf.write("d.ignored/inner", "x") // not watched at all
	wf.mkdir("new.ignored/sub")
	wf.settle()
	wf.write("new.ignored/sub/f", "x")
	wf.settle()
	wantPaths(t, wf.flush(), "installed")
}

func TestWatchOverflowAndPeriodicRescan(t *testing.T) {
	o := opts()
	o.RescanEvery = 10 * time.Minute
	wf := newWatch(t, o, nil)
	wf.w.FSNotifyErrors() <- fsnotify.ErrEventOverflow
	wf.write("a", "x")
	wf.settle()
	if b := wf.flush(); !b.Rescan || b.Reason != localdir.ReasonOverflow || b.Paths != nil {
		t.Errorf("after overflow: %+v", b)
	}
	wf.clock.Advance(10*time.Minute - quiet)
	if b := wf.next(); !b.Rescan || b.Reason != localdir.ReasonPeriodic {
		t.Errorf("periodic: %+v", b)
	}
	wf.clock.Advance(10 * time.Minute)
	if b := wf.next(); !b.Rescan || b.Reason != localdir.ReasonPeriodic {
		t.Errorf("second periodic: %+v", b)
	}
}

func TestWatchSlowConsumerLosesNothing(t *testing.T) {
	wf := newWatch(t, opts(), nil)
	want := map[string]bool{}
	for i := range 5 {
		name := fmt.Sprintf("f%d", i)
		wf.write(name, "x")
		want[name] = true
		wf.settle()
		wf.clock.Advance(quiet) // flushed, but nobody receives yet
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		for _, p := range wf.next().Paths {
			got[p] = true
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("unexpected path %q", p)
		}
	}
}

func TestWatchRealClock(t *testing.T) {
	f := newFixture(t)
	d, err := localdir.New(f.root, localdir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Watch(context.Background(), localdir.WatchOptions{Quiet: 20 * time.Millisecond, MaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f.write("sub/a", "x")
	f.write("b", "y")
	got := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for !got["sub"] || !got["b"] {
		select {
		case b := <-w.Batches():
			for _, p := range b.Paths {
				got[p] = true
			}
		case <-deadline:
			t.Fatalf("timed out; got %v", got)
		}
	}
}

func TestWatchStops(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := f.d.Watch(ctx, opts())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range w.Batches() {
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
	w2, err := f.d.Watch(context.Background(), opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w2.Batches(); ok {
		t.Error("Batches open after Close")
	}
	if err := w2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The root itself going away asks for a rescan (which then fails).
	wf := newWatch(t, opts(), nil)
	if err := os.RemoveAll(wf.root); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wf.notify, "the root's removal", func() bool {
		wf.mu.Lock()
		defer wf.mu.Unlock()
		return wf.seen[""] > 0
	})
	for {
		wf.clock.Advance(quiet)
		b := wf.next()
		if b.Rescan {
			if b.Reason != localdir.ReasonRootMoved {
				t.Errorf("reason %q", b.Reason)
			}
			break
		}
	}
}

// TestWatchScanInstallLoop runs the engine's local loop in miniature: a
// batch from the watcher is scanned, the changes recorded; a file the
// engine installs comes back as a batch whose scan finds nothing.
func TestWatchScanInstallLoop(t *testing.T) {
	wf := newWatch(t, opts(), nil)
	wf.write("doc/a.txt", "draft")
	wf.settle()
	b := wf.flush()
	res := wf.scan(localdir.ScanOptions{Paths: b.Paths})
	if got := summaries(res.Changes); !slices.Equal(got, []string{"mkdir doc", "create doc/a.txt"}) {
		t.Fatalf("changes:\n%s", describe(res.Changes))
	}
	wf.apply(res.Changes)

	// A remote version arrives and is installed over the recorded one.
	e := res.Changes[1]
	ls, err := wf.d.Install(bg, "doc/a.txt", strings.NewReader("remote edit"),
		localdir.Meta{Kind: e.Kind, Mode: e.Mode, ModTime: e.ModTime.Add(time.Hour)}, &e.Local)
	if err != nil {
		t.Fatal(err)
	}
	wf.apply([]localdir.Change{{Op: localdir.OpModify, Path: "doc/a.txt", Kind: e.Kind, Size: 11,
		Hash: sum("remote edit"), ModTime: e.ModTime.Add(time.Hour), Mode: e.Mode, Local: ls}})
	wf.settle()
	b = wf.flush()
	wantPaths(t, b, "doc/a.txt")
	res = wf.scan(localdir.ScanOptions{Paths: b.Paths})
	if len(res.Changes) != 0 || res.HashedFiles != 0 {
		t.Errorf("own install reported: %d hashed, changes:\n%s", res.HashedFiles, describe(res.Changes))
	}
}
