package sync_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
)

// propagation checks that every kind of local change on one node reaches
// the others: create, modify, delete, rename (file and directory), mkdir,
// rmdir, symlinks, mode and mtime.
func propagation(t *testing.T, c *cluster) {
	a, b := c.nodes[0], c.nodes[1]
	a.write(t, "small.txt", []byte("hello"))
	a.write(t, "empty", nil)
	a.write(t, "docs/big.bin", content("big", 50<<10)) // parts
	a.write(t, "docs/deep/er/x.txt", []byte("deep"))
	if err := os.Mkdir(filepath.Join(a.dir, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs/big.bin", filepath.Join(a.dir, "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	if err := os.Chtimes(filepath.Join(a.dir, "small.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	c.settle()
	got := c.sameTrees()
	if !strings.Contains(got["small.txt"], "2020-01-02T03:04:05.0000006Z") {
		t.Errorf("mtime not kept: %s", got["small.txt"])
	}
	if got["emptydir"] != "dir -rwxr-x---" {
		t.Errorf("emptydir: %s", got["emptydir"])
	}

	// Changes on the other node flow back.
	b.write(t, "small.txt", []byte("hello again"))
	if err := os.Remove(filepath.Join(b.dir, "empty")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(b.dir, "docs"), filepath.Join(b.dir, "papers")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b.dir, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(b.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("papers/big.bin", filepath.Join(b.dir, "link")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	got = c.sameTrees()
	for _, p := range []string{"empty", "docs", "docs/big.bin"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s still exists after its deletion or rename", p)
		}
	}
	if string(a.read(t, "small.txt")) != "hello again" || !bytes.Equal(a.read(t, "papers/big.bin"), content("big", 50<<10)) {
		t.Error("modified or renamed content did not arrive")
	}
	if got["link"] != "symlink papers/big.bin" || got["emptydir"] != "dir -rwx------" {
		t.Errorf("symlink or mode: %q %q", got["link"], got["emptydir"])
	}

	// rmdir of a tree.
	if err := os.RemoveAll(filepath.Join(a.dir, "papers")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	got = c.sameTrees()
	if _, ok := got["papers"]; ok {
		t.Error("papers survived its removal")
	}
}

func TestPropagationFileRelay(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	c.add("a", small)
	c.add("b", small)
	propagation(t, c)
}

// TestRenameMovesLocally checks that a renamed file is moved on the other
// node, not downloaded again; and that while its blobs are still on the
// relay (here a third puller, stopped, holds collection back), it is not
// uploaded again either.
func TestRenameMovesLocally(t *testing.T) {
	cr := newCounting(fileRelay(t))
	c := newCluster(t, cr)
	a := c.add("a", small)
	b := c.add("b", small)
	idle := c.add("idle", small)
	idle.round(t) // registers, then never pulls
	a.write(t, "one/big.bin", content("x", 100<<10))
	a.write(t, "one/small.txt", []byte("small"))
	c.settle(a, b)
	blobs := cr.count("blobs")
	pulled := b.e.Stats().BytesPulled
	if err := os.Rename(filepath.Join(a.dir, "one"), filepath.Join(a.dir, "two")); err != nil {
		t.Fatal(err)
	}
	c.settle(a, b)
	c.sameTrees(a, b)
	if n := cr.count("blobs"); n != blobs {
		t.Errorf("rename uploaded %d blobs", n-blobs)
	}
	if got := b.e.Stats().BytesPulled; got != pulled {
		t.Errorf("rename downloaded %d bytes", got-pulled)
	}
}

func TestConcurrentEditsConflict(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	c3 := c.add("c", small)
	a.write(t, "notes.txt", []byte("v0"))
	c.settle()
	// Both edit before seeing the other's change.
	a.write(t, "notes.txt", []byte("from a"))
	b.write(t, "notes.txt", []byte("from b, longer"))
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
	got := c.sameTrees()
	if s := string(c3.read(t, "notes.txt")); s != "from a" {
		t.Errorf("winner %q, want the later edit", s)
	}
	var copies []string
	for p := range got {
		if localdir.IsConflictName(p) {
			copies = append(copies, p)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("conflict copies %v, want one", copies)
	}
	if s := string(a.read(t, copies[0])); s != "from b, longer" {
		t.Errorf("conflict copy holds %q", s)
	}
	// The copy is named after the loser's node, as people know it.
	if copies[0] != "notes.sync-conflict-20261124-100000-b.txt" {
		t.Errorf("conflict name %q, want notes.sync-conflict-20261124-100000-b.txt", copies[0])
	}
	if n := a.e.Stats().Conflicts + b.e.Stats().Conflicts + c3.e.Stats().Conflicts; n == 0 {
		t.Error("no conflict counted")
	}
}

// Two nodes with the same name are told apart in conflict copies by the
// start of their IDs, and every node names the copy alike.
func TestConflictNameClash(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("laptop", small)
	b := c.add("laptop", small)
	a.write(t, "f.txt", []byte("v0"))
	c.settle()
	a.write(t, "f.txt", []byte("from a"))
	b.write(t, "f.txt", []byte("from b"))
	ta := time.Date(2026, 11, 24, 10, 1, 0, 0, time.UTC)
	tb := ta.Add(-time.Minute)
	for _, x := range []struct {
		n  *node
		at time.Time
	}{{a, ta}, {b, tb}} {
		if err := os.Chtimes(filepath.Join(x.n.dir, "f.txt"), x.at, x.at); err != nil {
			t.Fatal(err)
		}
	}
	a.round(t)
	b.round(t)
	c.settle()
	got := c.sameTrees()
	want := "f.sync-conflict-20261124-100000-" + b.e.Node().String()[:8] + ".txt"
	if _, ok := got[want]; !ok {
		t.Errorf("files %v, want the copy %s", slices.Sorted(maps.Keys(got)), want)
	}
}

// TestIdenticalEditsNoConflict: the same content written on two nodes is
// no conflict, and both end with the mode and time of the later write,
// whichever node pulls first.
func TestIdenticalEditsNoConflict(t *testing.T) {
	for _, laterOn := range []string{"a", "b"} {
		t.Run("later on "+laterOn, func(t *testing.T) {
			c := newCluster(t, fileRelay(t))
			a := c.add("a", small)
			b := c.add("b", small)
			early := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
			late := early.Add(time.Second)
			for _, n := range []*node{a, b} {
				n.write(t, "same.txt", []byte("same"))
				n.write(t, "dir/keep", nil)
				at, mode := early, os.FileMode(0o644)
				if n.name == laterOn {
					at, mode = late, 0o600
				}
				if err := os.Chmod(filepath.Join(n.dir, "same.txt"), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(filepath.Join(n.dir, "same.txt"), at, at); err != nil {
					t.Fatal(err)
				}
			}
			c.settle()
			got := c.sameTrees()
			for p := range got {
				if localdir.IsConflictName(p) {
					t.Errorf("conflict copy %s for identical content", p)
				}
			}
			want := "file -rw------- " + got["same.txt"][len("file -rw------- "):][:16] + " " + late.Format(time.RFC3339Nano)
			if got["same.txt"] != want {
				t.Errorf("same.txt is %q on both, want %q", got["same.txt"], want)
			}
		})
	}
}

// TestDeleteVersusEdit: a delete never beats a concurrent modification.
func TestDeleteVersusEdit(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	a.write(t, "f.txt", []byte("v1"))
	c.settle()
	if err := os.Remove(filepath.Join(a.dir, "f.txt")); err != nil {
		t.Fatal(err)
	}
	b.write(t, "f.txt", []byte("v2 edited"))
	a.round(t)
	b.round(t)
	c.settle()
	c.sameTrees()
	if s := string(a.read(t, "f.txt")); s != "v2 edited" {
		t.Errorf("a has %q", s)
	}
}

// TestLocalEditNotClobbered: a file edited locally after the engine looked
// at it is never overwritten by a pulled version: the two become a
// conflict.
func TestLocalEditNotClobbered(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	a.write(t, "f.txt", []byte("v1"))
	c.settle()
	a.write(t, "f.txt", []byte("v2 from a"))
	a.round(t)
	// b edits after its last scan; its pull must notice.
	b.write(t, "f.txt", []byte("v2 from b!"))
	if _, err := b.e.Pull(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.settle()
	got := c.sameTrees()
	var all []string
	for p := range got {
		if strings.HasPrefix(p, "f") {
			all = append(all, string(a.read(t, p)))
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"v2 from a", "v2 from b!"}) {
		t.Errorf("versions kept: %q", all)
	}
}

// TestSmallFilesPacked: a thousand small files travel in a few blobs and
// one or two records, not a thousand uploads.
func TestSmallFilesPacked(t *testing.T) {
	cr := newCounting(fileRelay(t))
	c := newCluster(t, cr)
	a := c.add("a")
	c.add("b")
	for i := range 1000 {
		a.write(t, filepath.Join("many", strings.Repeat("d", i%7), "f"+itoa(i)), content(itoa(i), 4<<10))
	}
	c.settle()
	c.sameTrees()
	if n := cr.count("blobs"); n > 3 {
		t.Errorf("1000 small files took %d blob uploads", n)
	}
	if n := cr.count("nodes"); n > 8 {
		t.Errorf("1000 small files took %d record uploads", n)
	}
	t.Logf("blobs %d, records %d", cr.count("blobs"), cr.count("nodes"))
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestEmptiedFolderNotPropagated: a folder found empty (an unmounted drive)
// does not delete everything on the other nodes.
func TestEmptiedFolderNotPropagated(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	a.write(t, "x/one", []byte("1"))
	a.write(t, "two", []byte("2"))
	c.settle()
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if err := os.RemoveAll(filepath.Join(b.dir, d.Name())); err != nil {
			t.Fatal(err)
		}
	}
	_, err = b.e.Round(t.Context())
	if !errors.Is(err, escsync.ErrFolderEmptied) {
		t.Fatalf("round over an emptied folder: %v", err)
	}
	a.round(t)
	if !a.exists("x/one") || !a.exists("two") {
		t.Fatal("the emptied folder's deletions reached a")
	}
	// Deleting one file is an ordinary deletion.
	if err := os.Remove(filepath.Join(a.dir, "two")); err != nil {
		t.Fatal(err)
	}
	a.round(t)
	if a.exists("two") {
		t.Fatal("two came back")
	}
}

// TestFileVersusDirectory: one node makes a directory where another makes a
// file. Every node ends with the same winner at the path and the other
// beside it, the directory with its contents.
func TestFileVersusDirectory(t *testing.T) {
	for _, dirWins := range []bool{false, true} {
		t.Run(map[bool]string{false: "FileWins", true: "DirWins"}[dirWins], func(t *testing.T) {
			c := newCluster(t, fileRelay(t))
			a := c.add("a", small)
			b := c.add("b", small)
			d := c.add("d", small)
			c.register()
			a.write(t, "p/inside.txt", []byte("in the directory"))
			b.write(t, "p", []byte("a file"))
			early, late := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			dirTime, fileTime := early, late
			if dirWins {
				dirTime, fileTime = late, early
			}
			if err := os.Chtimes(filepath.Join(a.dir, "p"), dirTime, dirTime); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(b.dir, "p"), fileTime, fileTime); err != nil {
				t.Fatal(err)
			}
			a.round(t)
			b.round(t)
			c.settle()
			got := c.sameTrees()
			var copies []string
			for p := range got {
				if localdir.IsConflictName(p) {
					copies = append(copies, p)
				}
			}
			if len(copies) != 1 {
				t.Fatalf("conflict copies %v in %v", copies, got)
			}
			if dirWins {
				if !strings.HasPrefix(got["p"], "dir") || string(d.read(t, copies[0])) != "a file" {
					t.Fatalf("tree %v", got)
				}
			} else {
				if string(d.read(t, "p")) != "a file" || string(d.read(t, copies[0]+"/inside.txt")) != "in the directory" {
					t.Fatalf("tree %v", got)
				}
			}
		})
	}
}
