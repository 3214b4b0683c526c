package fs

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	f := strings.FieldsFunc(b.String(), func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		t.Fatalf("kernel release %q", b.String())
	}
	ma, _ := strconv.Atoi(f[0])
	mi, _ := strconv.Atoi(f[1])
	return ma > major || ma == major && mi >= minor
}

// TestPassthrough: where the kernel (6.9 or later) and the privileges allow
// FUSE passthrough, the writes of an open file go from the kernel to the
// backing file without the process; elsewhere the process serves them.
// Either way the data is the same through the mount and in the backing
// directory, and the file is reported when closed.
func TestPassthrough(t *testing.T) {
	rec := &recorder{}
	srv, mnt, backing := mount(t, Options{Events: rec})
	want := make([]byte, 4<<20)
	rand.Read(want)
	f, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(want); off += 128 << 10 {
		if _, err := f.Write(want[off : off+128<<10]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(mnt, "big"), filepath.Join(backing, "big")} {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from what was written (%d bytes)", p, len(got))
		}
	}
	if !rec.has("big") {
		t.Fatalf("closing a written file was not reported (got: %s)", rec)
	}
	served := srv.WritesServed()
	expected := kernelAtLeast(t, 6, 9) && os.Geteuid() == 0
	t.Logf("kernel offers passthrough: %v; root: %v; writes served by the process: %d", srv.Passthrough(), os.Geteuid() == 0, served)
	switch {
	case expected && !srv.Passthrough():
		t.Fatal("the kernel is 6.9 or later but did not offer FUSE passthrough")
	case expected && served != 0:
		t.Fatalf("passthrough expected (kernel 6.9+, root), but the process served %d writes", served)
	case !expected && served == 0:
		t.Fatal("no passthrough here, yet the process served no write")
	}
}

// TestWriting: a file is reported open for writing while a handle that may
// write it is open, under its current name, and not once closed or when
// only read.
func TestWriting(t *testing.T) {
	srv, mnt, _ := mount(t, Options{})
	p := filepath.Join(mnt, "doc.txt")
	if err := os.WriteFile(p, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The kernel sends the release of a closed file after close returns.
	waitFor(t, 5*time.Second, "the release of the written file", func() bool { return !srv.Writing("doc.txt") })
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Writing("doc.txt") {
		t.Fatal("a file open only for reading is reported open for writing")
	}
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Writing("doc.txt") {
		t.Fatal("a file open for writing is not reported")
	}
	if err := os.Mkdir(filepath.Join(mnt, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, filepath.Join(mnt, "dir/renamed.txt")); err != nil {
		t.Fatal(err)
	}
	if srv.Writing("doc.txt") || !srv.Writing("dir/renamed.txt") {
		t.Fatalf("after a rename: old name %v, new name %v; want false, true",
			srv.Writing("doc.txt"), srv.Writing("dir/renamed.txt"))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// Release comes after close returns: wait for it.
	waitFor(t, 5*time.Second, "the release of the closed file", func() bool { return !srv.Writing("dir/renamed.txt") })
	if srv.Writing("") || srv.Writing("missing/file") {
		t.Fatal("the root or a missing path is reported open for writing")
	}
}
