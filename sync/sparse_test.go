package sync_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
	escsync "github.com/escalefs/escalefs/sync"
)

// TestSparseStaysSparse: a sparse file reaches the peer as a sparse file,
// whether its content travels in parts or in a pack.
func TestSparseStaysSparse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		shape func(*escsync.Config)
	}{
		{"parts", 3 << 20, small},
		{"pack", 900 << 10, func(*escsync.Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, fileRelay(t))
			a := c.add("a", tc.shape)
			b := c.add("b", tc.shape)
			want := make([]byte, tc.size)
			copy(want, "head")
			copy(want[tc.size/2+100:], "middle")
			p := filepath.Join(a.dir, "disk.img")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range []int{0, tc.size/2 + 100} {
				if _, err := f.WriteAt(want[off:off+8], int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Truncate(int64(tc.size)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if allocated(t, p) > int64(tc.size)/4 {
				testserver.Unavailable(t, "the file system of %s keeps no holes", a.dir)
			}
			c.settle()
			if got := b.read(t, "disk.img"); !bytes.Equal(got, want) {
				t.Fatalf("b's content differs (%d bytes, want %d)", len(got), len(want))
			}
			if n := allocated(t, filepath.Join(b.dir, "disk.img")); n > 64<<10 {
				t.Errorf("b's copy takes %d bytes of disk for 16 bytes of data in %d", n, tc.size)
			}
		})
	}
}

// allocated is how many bytes of disk the file at p takes.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
