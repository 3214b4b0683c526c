package sync_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/cache"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/filter"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
)

func mode(m proto.Mode) nodeOpts { return func(c *escsync.Config) { c.Mode = m } }

func conflictCopies(t *testing.T, n *node) []string {
	t.Helper()
	var out []string
	for p := range tree(t, n.dir) {
		if localdir.IsConflictName(p) {
			out = append(out, p)
		}
	}
	return out
}

// TestUploadMode: an upload node pushes, never pulls, never has a local file
// overwritten, and holds no collection back.
func TestUploadMode(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	up := c.add("up", small, mode(proto.ModeUpload))
	b := c.add("b", small)
	d := c.add("d", small)
	c.register()
	up.write(t, "from-up.txt", []byte("up"))
	b.write(t, "from-b.txt", []byte("b"))
	c.settle()
	if string(b.read(t, "from-up.txt")) != "up" || string(d.read(t, "from-up.txt")) != "up" {
		t.Fatal("upload node's file did not reach the others")
	}
	if up.exists("from-b.txt") {
		t.Fatal("upload node pulled a file")
	}
	// b's blob is collected once d (the only other puller) has it: up
	// does not count.
	if blobs := c.blobsOf(b); len(blobs) != 0 {
		t.Fatalf("b's blobs wait for the upload node: %v", blobs)
	}
	// A peer's edit of the upload node's file does not reach it.
	b.write(t, "from-up.txt", []byte("edited by b"))
	c.settle()
	if got := string(up.read(t, "from-up.txt")); got != "up" {
		t.Fatalf("upload node's file overwritten: %q", got)
	}
}

// TestDownloadMode: a download node pulls and keeps its own changes local.
func TestDownloadMode(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	down := c.add("down", small, mode(proto.ModeDownload))
	c.register()
	a.write(t, "shared.txt", []byte("from a"))
	down.write(t, "local.txt", []byte("stays here"))
	c.settle()
	if string(down.read(t, "shared.txt")) != "from a" {
		t.Fatal("download node did not pull")
	}
	if a.exists("local.txt") {
		t.Fatal("download node pushed a file")
	}
	// The download node's blobs: none.
	if blobs := c.blobsOf(down); len(blobs) != 0 {
		t.Fatalf("download node uploaded %v", blobs)
	}
	// Its pulled files do update.
	a.write(t, "shared.txt", []byte("from a, v2"))
	c.settle()
	if string(down.read(t, "shared.txt")) != "from a, v2" {
		t.Fatal("download node did not pull the update")
	}
	// Switched to shared mode, its kept-back change goes out.
	down.stop(t)
	c.start(down, small)
	c.settle()
	if string(a.read(t, "local.txt")) != "stays here" {
		t.Fatal("kept-back change not pushed after leaving download mode")
	}
}

// TestConservativeMode: remote versions replace only files that came from
// peers untouched; a refused version is acknowledged and leaves the relay.
func TestConservativeMode(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	cons := c.add("cons", small, mode(proto.ModeConservative))
	c.register()
	a.write(t, "theirs.txt", []byte("v1"))
	cons.write(t, "mine.txt", []byte("made here"))
	c.settle()
	if string(a.read(t, "mine.txt")) != "made here" || string(cons.read(t, "theirs.txt")) != "v1" {
		t.Fatal("conservative node does not push or pull")
	}
	a.write(t, "theirs.txt", []byte("v2"))
	a.write(t, "mine.txt", []byte("a's edit"))
	c.settle()
	if got := string(cons.read(t, "theirs.txt")); got != "v2" {
		t.Errorf("pulled file untouched here not updated: %q", got)
	}
	if got := string(cons.read(t, "mine.txt")); got != "made here" {
		t.Errorf("file made here overwritten: %q", got)
	}
	if len(conflictCopies(t, cons)) != 0 {
		t.Errorf("refused version kept as a copy: %v", conflictCopies(t, cons))
	}
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Errorf("refused version stays on the relay: %v", blobs)
	}
	// A pulled file edited here is protected from then on.
	cons.write(t, "theirs.txt", []byte("edited here"))
	c.settle()
	a.write(t, "theirs.txt", []byte("v3 from a"))
	c.settle()
	if got := string(cons.read(t, "theirs.txt")); got != "edited here" {
		t.Errorf("pulled file edited here overwritten: %q", got)
	}
}

// TestAccessModifiers: r- keeps a file private; w- keeps the local file and
// puts a pulled version beside it; r+ after r- pushes the file.
func TestAccessModifiers(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	d := c.add("d", small)
	c.register()
	a.write(t, "protected.txt", []byte("v1"))
	c.settle()
	set := func(n *node, path, mods string) {
		t.Helper()
		u, err := cache.ParseAccess(mods)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.SetAccess(context.Background(), path, u); err != nil {
			t.Fatal(err)
		}
	}
	// A new file, made r- once scanned and before any push.
	a.write(t, "diary.txt", []byte("dear diary"))
	if _, err := a.e.Scan(context.Background(), []string{"diary.txt"}); err != nil {
		t.Fatal(err)
	}
	set(a, "diary.txt", "r-")
	c.settle()
	if b.exists("diary.txt") || d.exists("diary.txt") {
		t.Fatal("an r- file was pushed")
	}
	// w- on b: a's new version of protected.txt goes beside it.
	set(b, "protected.txt", "w-")
	a.write(t, "protected.txt", []byte("v2 from a"))
	c.settle()
	if got := string(b.read(t, "protected.txt")); got != "v1" {
		t.Fatalf("w- file overwritten: %q", got)
	}
	copies := conflictCopies(t, b)
	if len(copies) != 1 || string(b.read(t, copies[0])) != "v2 from a" {
		t.Fatalf("w- node copies %v", copies)
	}
	if got := string(d.read(t, "protected.txt")); got != "v2 from a" {
		t.Fatalf("unprotected node has %q", got)
	}
	// A deletion does not remove a w- file either.
	if err := os.Remove(filepath.Join(a.dir, "protected.txt")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if !b.exists("protected.txt") {
		t.Fatal("w- file deleted by a peer")
	}
	// r+ again: the private file goes out.
	set(a, "diary.txt", "r+")
	c.settle()
	if got := string(d.read(t, "diary.txt")); got != "dear diary" {
		t.Fatalf("r+ file not pushed: %q", got)
	}
	acc, ok, err := a.e.Access("diary.txt")
	if err != nil || !ok || acc.String() != "r+" {
		t.Fatalf("Access: %v %v %v", acc, ok, err)
	}
}

// TestLateJoinerRequests: a node that joins after everything was collected
// and compacted gets every file through requests.
func TestLateJoinerRequests(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	for i := range 5 {
		a.write(t, "docs/f"+itoa(i), content("f"+itoa(i), 100*(i+1)))
	}
	a.write(t, "big.bin", content("big", 30000))
	b.write(t, "from-b.txt", []byte("b"))
	c.settle()
	if n := len(relayNames(t, c.relay, "blobs")); n != 0 {
		t.Fatalf("blobs still on the relay: %d", n)
	}
	late := c.add("late", small)
	c.settle()
	c.sameTrees()
	if got := string(late.read(t, "from-b.txt")); got != "b" {
		t.Fatalf("late joiner has %q", got)
	}
	if !strings.Contains(late.logs.String(), "asking the other nodes") {
		t.Error("no request logged")
	}
}

// TestFilters: excluded names are neither pushed nor pulled; editors'
// temporary files never travel.
func TestFilters(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	f, err := filter.Compile(filter.Options{Exclude: []string{"*.log"}, ExcludeDirs: []string{"build"}})
	if err != nil {
		t.Fatal(err)
	}
	withFilter := func(cfg *escsync.Config) { cfg.Skip = f.Skip }
	a := c.add("a", small)
	b := c.add("b", small, withFilter)
	// b's scanner uses the same filter, as escalefs sync wires it.
	b.local, err = localdir.New(b.dir, localdir.Options{Skip: f.Skip})
	if err != nil {
		t.Fatal(err)
	}
	b.stop(t)
	c.startWith(b, b.local, small, withFilter)
	c.register()
	a.write(t, "keep.txt", []byte("k"))
	a.write(t, "debug.log", []byte("from a"))
	a.write(t, "build/out.bin", []byte("bin"))
	b.write(t, "b.log", []byte("from b"))
	b.write(t, "build/b.bin", []byte("bin"))
	b.write(t, ".notes.txt.swp", []byte("vim swap"))
	b.write(t, "shared.txt", []byte("s"))
	c.settle()
	if !b.exists("keep.txt") || b.exists("debug.log") || b.exists("build/out.bin") {
		t.Errorf("b's pulls ignore its filter: %v", tree(t, b.dir))
	}
	if !a.exists("shared.txt") || a.exists("b.log") || a.exists("build/b.bin") || a.exists(".notes.txt.swp") {
		t.Errorf("b pushed filtered files: %v", tree(t, a.dir))
	}
}

// TestAccessRequests: `escalefs access` reaches a running engine through
// its control directory.
func TestAccessRequests(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	control := t.TempDir()
	a := c.add("a", small, func(cfg *escsync.Config) { cfg.Control = control })
	a.write(t, "f.txt", []byte("x"))
	a.round(t)
	dir := filepath.Join(control, escsync.AccessRequestsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1.json"), []byte(`{"path":"f.txt","mods":"rw-"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a.round(t)
	if _, err := os.Stat(filepath.Join(dir, "1.json")); err == nil {
		t.Error("request not consumed")
	}
	m, err := escsync.ReadAccessFile(control)
	if err != nil || m["f.txt"] != "r-w-" {
		t.Fatalf("access file %v %v", m, err)
	}
	acc, _, _ := a.e.Access("f.txt")
	if acc != (cache.Access{Read: cache.PermDeny, Write: cache.PermDeny}) {
		t.Fatalf("modifiers %v", acc)
	}
	if !strings.Contains(a.logs.String(), "access modifiers set") {
		t.Error("not logged")
	}
}

// TestKnown: Known scans a file the cache does not know yet, so that its
// modifiers can be set at once, and reports a missing or filtered path as
// fs.ErrNotExist.
func TestKnown(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	f, err := filter.Compile(filter.Options{Exclude: []string{"*.log"}})
	if err != nil {
		t.Fatal(err)
	}
	a := c.add("a", small)
	a.local, err = localdir.New(a.dir, localdir.Options{Skip: f.Skip})
	if err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	c.startWith(a, a.local, small, func(cfg *escsync.Config) { cfg.Skip = f.Skip })
	ctx := context.Background()
	a.write(t, "new.txt", []byte("new"))
	if _, ok, _ := a.e.Access("new.txt"); ok {
		t.Fatal("new.txt known before any scan")
	}
	if err := a.e.Known(ctx, "new.txt"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.e.Access("new.txt"); err != nil || !ok {
		t.Fatalf("new.txt unknown after Known: %v %v", ok, err)
	}
	if err := a.e.Known(ctx, "new.txt"); err != nil {
		t.Fatalf("Known of a known file: %v", err)
	}
	a.write(t, "debug.log", []byte("x"))
	for _, p := range []string{"missing.txt", "debug.log"} {
		if err := a.e.Known(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Known(%q) = %v, want fs.ErrNotExist", p, err)
		}
	}
}
