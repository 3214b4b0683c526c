package sync_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
)

// smallTmpfs mounts a tmpfs of size bytes for the test (root only).
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testserver.Unavailable(t, "not root: a small tmpfs needs mount(2)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		testserver.Unavailable(t, "mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// A pure-ftpd relay on a file system that fills up: the server's "no
// space" answers are "relay full", not failures. Small files still get
// through while a large one waits, whose parts are not left on the relay;
// the node keeps pulling and acknowledging; status says "relay full"; and
// once there is room the large file goes too, and nothing is left behind.
func TestRelayFullOverPureFTPd(t *testing.T) {
	disk := smallTmpfs(t, "4m")
	root := filepath.Join(disk, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartPureFTPdAt(t, root)
	u, _ := s.NewRelayDir(t, "ftp")
	r := openRelay(t, u.String(), relay.Options{Password: s.Password})
	c := newCluster(t, r)
	a := c.add("a", small)
	b := c.add("b", small)
	c.register()

	// Leave about 1 MiB free.
	filler := filepath.Join(disk, "filler")
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if err := os.WriteFile(filler, make([]byte, free-(1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB: does not fit
	a.write(t, "big.bin", big)
	for i := range 5 {
		a.write(t, filepath.Join("small", string(rune('a'+i))+".txt"), []byte(strings.Repeat("s", 1000)))
	}
	a.round(t) // relay full is no failure
	if st, err := a.e.Status(); err != nil || st.Relay != escsync.RelayFull || st.Queue.Files != 1 {
		t.Errorf("a's status while the relay is full: relay %q, queue %+v, %v; want full, big.bin queued", st.Relay, st.Queue, err)
	}
	if blobs := c.blobsOf(a); len(blobs) != 1 {
		t.Errorf("a's blobs on the full relay: %v, want the pack of the small files alone (no parts of big.bin)", blobs)
	}
	b.round(t)
	for i := range 5 {
		if !b.exists(filepath.Join("small", string(rune('a'+i))+".txt")) {
			t.Errorf("b lacks small/%c.txt while the relay is full", 'a'+i)
		}
	}
	if b.exists("big.bin") {
		t.Error("b has big.bin already")
	}

	// Room again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := b.read(t, "big.bin"); !bytes.Equal(got, big) {
		t.Errorf("b's big.bin: %d bytes, want %d", len(got), len(big))
	}
	if st, err := a.e.Status(); err != nil || st.Relay != escsync.RelayOK || !st.Queue.Empty() {
		t.Errorf("a's status after the relay had room again: relay %q, queue %+v, %v", st.Relay, st.Queue, err)
	}
	c.settle()
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Errorf("a's blobs left after b has every file: %v", blobs)
	}
	for _, f := range testserver.ListFiles(t, root) {
		if strings.Contains(f, "/blobs/") || strings.Contains(f, "/tmp/") {
			t.Errorf("left on the server: %s", f)
		}
	}
}

// A node whose disk fills up: a pulled file that does not fit, leaving
// MinFree, waits, named in Status, while the smaller files go on; its
// content stays on the relay meanwhile (the node's acknowledgements stop
// before it); once there is room it arrives, and the relay is collected.
func TestLocalDiskFull(t *testing.T) {
	disk := smallTmpfs(t, "8m")
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.addAt("b", filepath.Join(disk, "b"), filepath.Join(disk, "state"), small,
		func(cfg *escsync.Config) { cfg.MinFree = units.MinFree{Bytes: 256 << 10} })
	c.register()

	// Leave about 2 MiB free on b's disk.
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-(2<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("big file content"), 3<<20/16) // 3 MiB: does not fit
	a.write(t, "big.bin", big)
	for i := range 5 {
		a.write(t, filepath.Join("small", string(rune('a'+i))+".txt"), []byte(strings.Repeat("s", 1000)))
	}
	c.settle()
	for i := range 5 {
		if !b.exists(filepath.Join("small", string(rune('a'+i))+".txt")) {
			t.Errorf("b lacks small/%c.txt", 'a'+i)
		}
	}
	if b.exists("big.bin") {
		t.Fatal("b has big.bin on a disk without room for it")
	}
	stat, err := b.e.Status()
	if err != nil || len(stat.NoRoom) != 1 || stat.NoRoom[0].Path != "big.bin" || stat.NoRoom[0].Need <= stat.NoRoom[0].Free {
		t.Errorf("b's status: no room %+v, %v; want big.bin with what it needs", stat.NoRoom, err)
	}
	if len(c.blobsOf(a)) == 0 {
		t.Error("big.bin's content left the relay while b still waits for it")
	}
	if ents, _ := os.ReadDir(filepath.Join(disk, "partial")); len(ents) > 0 {
		t.Errorf("partial downloads left on the full disk: %v", ents)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := b.read(t, "big.bin"); !bytes.Equal(got, big) {
		t.Errorf("b's big.bin: %d bytes, want %d", len(got), len(big))
	}
	if stat, err := b.e.Status(); err != nil || len(stat.NoRoom) != 0 {
		t.Errorf("b's status once there is room: %+v, %v", stat.NoRoom, err)
	}
	c.settle()
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Errorf("%d blobs of a left once b has every file", len(blobs))
	}
}
