package versions

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newStore(t *testing.T, c *clock) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "versions"), Options{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keep(t *testing.T, s *Store, path, content string) Version {
	t.Helper()
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	v, err := s.Keep(src, path, PulledEdit, "bob")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestKeepListOpen(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s := newStore(t, c)
	src := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(src, []byte("old content"), 0o640); err != nil {
		t.Fatal(err)
	}
	v, err := s.Keep(src, "dir/doc.txt", PulledDelete, "bob")
	if err != nil {
		t.Fatal(err)
	}
	// The caller then deletes the file: the version stays.
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(time.Minute)
	keep(t, s, "dir/other.txt", "x")
	keep(t, s, "elsewhere", "y")
	list, err := s.List("dir")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != v.ID || list[0].Reason != PulledDelete || list[0].Node != "bob" ||
		list[0].Size != 11 || list[0].Mode != 0o640 || !list[0].Time.Equal(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("List(dir) = %+v", list)
	}
	f, err := s.Open(list[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != "old content" {
		t.Errorf("content %q, %v", b, err)
	}
	if all, _ := s.List(""); len(all) != 3 {
		t.Errorf("List(\"\") = %d versions, want 3", len(all))
	}
	u, err := s.Usage()
	if err != nil || u.Versions != 3 || u.Bytes != 13 || !u.Oldest.Equal(v.Time) {
		t.Errorf("Usage = %+v, %v", u, err)
	}
}

// TestStaggeredSixtyDays keeps a version of one file every 10 minutes for
// 60 days, pruning every hour, and checks what stays: all of the last
// hour, one per hour for a day, one per day for 30 days, nothing older.
func TestStaggeredSixtyDays(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	c := &clock{start}
	s := newStore(t, c)
	p := Policy{Kind: Staggered}
	for c.t.Before(start.Add(60 * 24 * time.Hour)) {
		keep(t, s, "f", "v")
		c.t = c.t.Add(10 * time.Minute)
		if c.t.Minute() == 0 {
			if _, err := s.Prune(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Prune(p); err != nil {
		t.Fatal(err)
	}
	list, err := s.List("f")
	if err != nil {
		t.Fatal(err)
	}
	now := c.t
	count := func(from, to time.Duration) int {
		n := 0
		for _, v := range list {
			if age := now.Sub(v.Time); age >= from && age < to {
				n++
			}
		}
		return n
	}
	if n := count(0, time.Hour); n != 5 {
		t.Errorf("%d versions in the last hour, want all 5 (10 to 50 minutes old)", n)
	}
	if n := count(time.Hour, 24*time.Hour); n < 22 || n > 24 {
		t.Errorf("%d versions between 1 hour and 1 day old, want one per hour (22-24)", n)
	}
	if n := count(24*time.Hour, 30*24*time.Hour); n < 28 || n > 30 {
		t.Errorf("%d versions between 1 and 30 days old, want one per day (28-30)", n)
	}
	if n := count(30*24*time.Hour+time.Hour, 1000*24*time.Hour); n != 0 {
		t.Errorf("%d versions older than 30 days", n)
	}
}

func TestSimpleAndSizeCap(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s := newStore(t, c)
	var kept []Version
	for i := range 5 {
		kept = append(kept, keep(t, s, "a", string(rune('0'+i))+"123456789")) // 10 bytes each
		keep(t, s, "b", "0123456789")
		c.t = c.t.Add(time.Minute)
	}
	if n, err := s.Prune(Policy{Kind: Simple, Keep: 3}); err != nil || n != 4 {
		t.Fatalf("Prune(simple, 3) dropped %d, %v; want 4", n, err)
	}
	list, _ := s.List("a")
	if len(list) != 3 || list[0].ID != kept[2].ID {
		t.Fatalf("a keeps %+v, want its 3 newest", list)
	}
	// 60 bytes left; a cap of 35 drops the oldest first, of either file.
	if _, err := s.Prune(Policy{Kind: Simple, Keep: 3, MaxSize: 35}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.List("")
	if len(all) != 3 {
		t.Fatalf("%d versions under a 35-byte cap, want 3", len(all))
	}
	for _, v := range all {
		if v.Time.Before(kept[3].Time) {
			t.Errorf("version of %s at %s stayed, while newer ones went", v.Path, v.Time)
		}
	}
	if n, err := s.Prune(Policy{Kind: Off}); err != nil || n != 3 {
		t.Errorf("Prune(off) dropped %d, %v; want the 3 left", n, err)
	}
}

// TestOpenClearsLeftovers: content without its metadata, metadata without
// its content and temporary files, as a crash leaves them, are removed.
func TestOpenClearsLeftovers(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s := newStore(t, c)
	v := keep(t, s, "f", "kept")
	for name, data := range map[string]string{"orphan": "x", "gone.json": `{"path":"g"}`, "x.json.tmp": "{"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(s.Dir(), Options{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s2.Dir())
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("store holds %v, want only %s and its metadata", names, v.ID)
	}
}

func TestParseKind(t *testing.T) {
	for _, ok := range []string{"staggered", "simple", "off"} {
		if _, err := ParseKind(ok); err != nil {
			t.Errorf("ParseKind(%q): %v", ok, err)
		}
	}
	if _, err := ParseKind("weekly"); err == nil {
		t.Error("ParseKind(weekly) took it")
	}
}

// TestKeepCopyAndInode: KeepCopy keeps the content as it is, whatever
// happens to the file after; KeepInode keeps the inode itself (a link, no
// copy) of a file about to lose its name. Get reads a version by its ID.
func TestKeepCopyAndInode(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s := newStore(t, c)
	dir := filepath.Join(filepath.Dir(s.Dir()), "folder") // the store's file system
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "copy.txt")
	if err := os.WriteFile(p, []byte("as it was"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := s.KeepCopy(f, "copy.txt", Conflict, "alice")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("edited in place"), 0o600); err != nil { // same inode
		t.Fatal(err)
	}
	q := filepath.Join(dir, "gone.txt")
	if err := os.WriteFile(q, []byte("deleted"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(q)
	if err != nil {
		t.Fatal(err)
	}
	iv, err := s.KeepInode(g, "gone.txt", LocalDelete, "")
	g.Close()
	if err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Stat(q, &before); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(q); err != nil {
		t.Fatal(err)
	}
	for v, want := range map[Version]string{cv: "as it was", iv: "deleted"} {
		got, err := s.Get(v.ID)
		if err != nil || got.ID != v.ID || got.Path != v.Path || !got.Time.Equal(v.Time) || got.Reason != v.Reason || got.Node != v.Node {
			t.Fatalf("Get(%s) = %+v, %v; want %+v", v.ID, got, err, v)
		}
		r, err := s.Open(got)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != want {
			t.Errorf("version of %s holds %q, want %q", v.Path, b, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(s.Dir(), iv.ID), &st); err != nil || st.Ino != before.Ino {
		t.Errorf("the deleted file's version is inode %d (%v), want its own %d", st.Ino, err, before.Ino)
	}
	for _, id := range []string{"", "../x", ".hidden", iv.ID + ".json", "20260101T000000.000000000Z-00000000"} {
		if _, err := s.Get(id); err == nil {
			t.Errorf("Get(%q) succeeded", id)
		}
	}
}
