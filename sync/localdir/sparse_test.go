package localdir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/sync/localdir"
)

// sparseContent is 3 MiB with data only at its start, in its middle (not
// block aligned) and nowhere at its end.
func sparseContent() []byte {
	b := make([]byte, 3<<20)
	copy(b, "head")
	copy(b[1<<20+100:], "middle")
	return b
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

// holesSupported reports whether the file system at dir keeps holes.
func holesSupported(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "probe")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	defer f.Close()
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	return allocated(t, p) < 1<<20
}

// TestInstallSparse: blocks of zeros in the installed content become holes,
// and the content reads back the same, wherever the stream is cut.
func TestInstallSparse(t *testing.T) {
	f := newFixture(t)
	if !holesSupported(t, f.root) {
		testserver.Unavailable(t, "the file system of %s keeps no holes", f.root)
	}
	want := sparseContent()
	// OneByteReader would take too long; HalfReader cuts every read.
	_, err := f.d.Install(bg, "sparse", iotest.HalfReader(bytes.NewReader(want)), fileMeta(0o644, time.Time{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.root, "sparse")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs: %d bytes, want %d", len(got), len(want))
	}
	if a := allocated(t, p); a > 64<<10 {
		t.Errorf("%d bytes allocated for a file of 10 bytes of data in 3 MiB", a)
	}
}

// TestSparseWriterOffsets: writes from an offset, a trailing hole and
// Finish give the file its exact length and content.
func TestSparseWriterOffsets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	file, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	w := localdir.NewSparseWriter(file, 3)
	chunks := [][]byte{make([]byte, 5000), []byte("x"), make([]byte, 9000)}
	for _, c := range chunks {
		if n, err := w.Write(c); err != nil || n != len(c) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte("abc"), chunks[0]...), chunks[1]...), chunks[2]...)
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || w.Offset() != int64(len(want)) {
		t.Errorf("file of %d bytes (offset %d), want %d", len(got), w.Offset(), len(want))
	}
}
