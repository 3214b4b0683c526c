// Package relaytest is the conformance suite that every relay backend and
// every wrapper stack passes. A backend's test supplies a function that
// makes a fresh, empty relay; Run does the rest.
package relaytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"path"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Fixture is one fresh, empty relay.
type Fixture struct {
	Relay relay.Relay
	// Raw, if not nil, lists every file the relay's storage holds, temporary
	// files included, as names relative to the relay root. The suite uses it
	// to check that failed puts leave nothing behind.
	Raw func(t testing.TB) []string
}

// Config describes the backend under test.
type Config struct {
	// New returns a fresh, empty relay. It registers the relay's Close and
	// any teardown with t.Cleanup.
	New func(t *testing.T) Fixture
	// MaxSize is the largest round-trip size (default 5 MiB).
	MaxSize int
	// NoRename skips the Rename tests where the relay does not implement
	// relay.Renamer. It must be false for backends that implement it.
	NoRename bool
	// Secret, if set, is the relay's password: it must appear in no
	// Location and no error text.
	Secret string
}

// Run runs every conformance test, each as a subtest on a fresh relay.
func Run(t *testing.T, cfg Config) {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 5 << 20
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, cfg Config, f Fixture)
	}{
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"Missing", testMissing},
		{"Overwrite", testOverwrite},
		{"Parents", testParents},
		{"NestedList", testNestedList},
		{"AwkwardNames", testAwkwardNames},
		{"InvalidNames", testInvalidNames},
		{"Delete", testDelete},
		{"Rename", testRename},
		{"Create", testCreate},
		{"CancelledPut", testCancelledPut},
		{"FailingPayload", testFailingPayload},
		{"NewObjects", testNewObjects},
		{"ConcurrentPuts", testConcurrentPuts},
		{"StopListing", testStopListing},
		{"Properties", testProperties},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := cfg.New(t)
			tc.fn(t, cfg, f)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// MustPut stores b under name or fails the test.
func MustPut(t testing.TB, r relay.Relay, name string, b []byte) {
	t.Helper()
	if err := r.Put(context.Background(), name, relay.BytesPayload(b)); err != nil {
		t.Fatalf("put %q (%d bytes): %v", name, len(b), err)
	}
}

// ReadAll reads a range of an object.
func ReadAll(ctx context.Context, r relay.Relay, name string, off, n int64) ([]byte, error) {
	var out []byte
	err := r.Get(ctx, name, off, n, func(rd io.Reader) error {
		var err error
		out, err = io.ReadAll(rd)
		return err
	})
	return out, err
}

// MustGet reads a whole object or fails the test.
func MustGet(t testing.TB, r relay.Relay, name string) []byte {
	t.Helper()
	b, err := ReadAll(context.Background(), r, name, 0, -1)
	if err != nil {
		t.Fatalf("get %q: %v", name, err)
	}
	return b
}

// ListNames lists dir and returns the sorted names.
func ListNames(t testing.TB, r relay.Relay, dir string) []string {
	t.Helper()
	var names []string
	err := r.List(context.Background(), dir, func(oi relay.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", dir, err)
	}
	slices.Sort(names)
	return names
}

func listInfos(t testing.TB, r relay.Relay, dir string) map[string]relay.ObjectInfo {
	t.Helper()
	m := map[string]relay.ObjectInfo{}
	err := r.List(context.Background(), dir, func(oi relay.ObjectInfo) error {
		if _, dup := m[oi.Name]; dup {
			t.Errorf("list %q: %q listed twice", dir, oi.Name)
		}
		m[oi.Name] = oi
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", dir, err)
	}
	return m
}

func testRoundTrip(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	sizes := []int{0, 1, 2, 1023, 1024, 4095, 4096, 4097, 64 << 10, 1<<20 + 7, cfg.MaxSize}
	for _, n := range sizes {
		name := fmt.Sprintf("rt/size-%d", n)
		data := RandomBytes(n)
		MustPut(t, f.Relay, name, data)
		got := MustGet(t, f.Relay, name)
		if !bytes.Equal(got, data) {
			t.Errorf("size %d: read back %d bytes that differ from what was put", n, len(got))
		}
		st, err := f.Relay.Stat(ctx, name)
		if err != nil {
			t.Fatalf("stat %q: %v", name, err)
		}
		if st.Size != int64(n) || st.Name != name {
			t.Errorf("stat %q = {%q, %d}, want {%q, %d}", name, st.Name, st.Size, name, n)
		}
		if st.ModTime.IsZero() || st.ModTime.Before(time.Now().Add(-48*time.Hour)) || st.ModTime.After(time.Now().Add(48*time.Hour)) {
			t.Errorf("stat %q: implausible mtime %v", name, st.ModTime)
		}
	}
	infos := listInfos(t, f.Relay, "rt")
	if len(infos) != len(sizes) {
		t.Errorf("list rt: %d objects, want %d: %v", len(infos), len(sizes), infos)
	}
	for _, n := range sizes {
		name := fmt.Sprintf("rt/size-%d", n)
		if oi, ok := infos[name]; !ok || oi.Size != int64(n) {
			t.Errorf("list rt: %q = %+v (present %v), want size %d", name, oi, ok, n)
		}
	}
}

func testRanges(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	data := RandomBytes(100_000)
	MustPut(t, f.Relay, "r/obj", data)
	cases := []struct{ off, n int64 }{
		{0, -1}, {0, 1}, {0, 100_000}, {1, 10}, {4096, 4096}, {99_999, 1}, {99_999, -1},
		{50_000, 200_000}, // reaches past the end: cut at the end
		{100_000, 10},     // at the end: empty
		{100_000, -1},
		{250_000, 10}, // past the end: empty
		{123, 0},      // zero length
	}
	for _, c := range cases {
		got, err := ReadAll(ctx, f.Relay, "r/obj", c.off, c.n)
		if err != nil {
			t.Errorf("get range off=%d n=%d: %v", c.off, c.n, err)
			continue
		}
		lo := min(c.off, int64(len(data)))
		hi := int64(len(data))
		if c.n >= 0 {
			hi = min(hi, c.off+c.n)
		}
		if !bytes.Equal(got, data[lo:hi]) {
			t.Errorf("get range off=%d n=%d: got %d bytes, want %d (bytes %d..%d)", c.off, c.n, len(got), hi-lo, lo, hi)
		}
	}
	MustPut(t, f.Relay, "r/empty", nil)
	for _, off := range []int64{0, 5} {
		got, err := ReadAll(ctx, f.Relay, "r/empty", off, 3)
		if err != nil || len(got) != 0 {
			t.Errorf("get range of an empty object off=%d: %d bytes, %v; want 0 bytes, no error", off, len(got), err)
		}
	}
}

func testMissing(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	MustPut(t, f.Relay, "m/present", []byte("x"))
	if _, err := f.Relay.Stat(ctx, "m/absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a missing object: %v, want fs.ErrNotExist", err)
	}
	if _, err := f.Relay.Stat(ctx, "nodir/absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat in a missing directory: %v, want fs.ErrNotExist", err)
	}
	called := false
	err := f.Relay.Get(ctx, "m/absent", 0, -1, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, fs.ErrNotExist) || called {
		t.Errorf("get of a missing object: err %v, fn called %v; want fs.ErrNotExist, not called", err, called)
	}
	err = f.Relay.Get(ctx, "m/absent", 10, 5, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, fs.ErrNotExist) || called {
		t.Errorf("ranged get of a missing object: err %v, fn called %v; want fs.ErrNotExist, not called", err, called)
	}
	if names := ListNames(t, f.Relay, "nodir"); len(names) != 0 {
		t.Errorf("list of a missing directory: %v, want nothing", names)
	}
	if _, err := f.Relay.Stat(ctx, "m"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a directory: %v, want fs.ErrNotExist (directories are not objects)", err)
	}
	if errors.Is(err, fs.ErrNotExist) && !relay.IsPermanent(err) {
		t.Errorf("not-exist error is not permanent: %v", err)
	}
}

func testOverwrite(t *testing.T, cfg Config, f Fixture) {
	long := RandomBytes(300_000)
	MustPut(t, f.Relay, "o/x", long)
	short := []byte("short")
	MustPut(t, f.Relay, "o/x", short)
	if got := MustGet(t, f.Relay, "o/x"); !bytes.Equal(got, short) {
		t.Errorf("after overwrite with a shorter object: got %d bytes, want %q", len(got), short)
	}
	MustPut(t, f.Relay, "o/x", long)
	if got := MustGet(t, f.Relay, "o/x"); !bytes.Equal(got, long) {
		t.Errorf("after overwrite with a longer object: got %d bytes, want %d", len(got), len(long))
	}
	if names := ListNames(t, f.Relay, ""); !slices.Equal(names, []string{"o/x"}) {
		t.Errorf("after overwrites: list = %v, want [o/x]", names)
	}
}

func testParents(t *testing.T, cfg Config, f Fixture) {
	name := "p/q/r/s/t/deep"
	MustPut(t, f.Relay, name, []byte("deep"))
	if got := MustGet(t, f.Relay, name); string(got) != "deep" {
		t.Errorf("deep object: got %q", got)
	}
	MustPut(t, f.Relay, "p/q/sibling", []byte("s"))
	if got := ListNames(t, f.Relay, "p/q"); !slices.Equal(got, []string{"p/q/r/s/t/deep", "p/q/sibling"}) {
		t.Errorf("list p/q = %v", got)
	}
}

func testNestedList(t *testing.T, cfg Config, f Fixture) {
	want := []string{"a/1", "a/2", "a/b/3", "a/b/c/4", "a/b/c/5", "ab/6", "top"}
	for _, n := range want {
		MustPut(t, f.Relay, n, []byte(n))
	}
	if got := ListNames(t, f.Relay, ""); !slices.Equal(got, want) {
		t.Errorf("list root = %v, want %v", got, want)
	}
	if got := ListNames(t, f.Relay, "a"); !slices.Equal(got, want[:5]) {
		t.Errorf("list a = %v, want %v (a directory, not a string prefix)", got, want[:5])
	}
	if got := ListNames(t, f.Relay, "a/b/c"); !slices.Equal(got, want[3:5]) {
		t.Errorf("list a/b/c = %v, want %v", got, want[3:5])
	}
	infos := listInfos(t, f.Relay, "")
	for _, n := range want {
		if infos[n].Size != int64(len(n)) {
			t.Errorf("list: %q size %d, want %d", n, infos[n].Size, len(n))
		}
	}
	// Many entries in one directory (listing pagination, long LIST replies).
	for i := range 120 {
		MustPut(t, f.Relay, fmt.Sprintf("many/%04d", i), []byte{byte(i)})
	}
	if got := ListNames(t, f.Relay, "many"); len(got) != 120 {
		t.Errorf("list many: %d names, want 120", len(got))
	}
}

// AwkwardNames are object names that trip up naive URL and command quoting.
var AwkwardNames = []string{
	"unicode/été ünïcødé 日本語",
	"spaces/with  two spaces and trailing ",
	"punct/#%?&+'\"",
	"punct/a;b=c,d[e]f{g}h~i!j@k$l(m)n*o",
	"punct/%20%2F%zz",
	".hidden",
	"dir/.dotfile",
	"long/" + strings.Repeat("x", 200),
	"-leading-dash",
}

func testAwkwardNames(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	var want []string
	for _, n := range AwkwardNames {
		data := []byte("content of " + n)
		MustPut(t, f.Relay, n, data)
		if got := MustGet(t, f.Relay, n); !bytes.Equal(got, data) {
			t.Errorf("%q: got %q", n, got)
		}
		st, err := f.Relay.Stat(ctx, n)
		if err != nil || st.Size != int64(len(data)) || st.Name != n {
			t.Errorf("stat %q = %+v, %v", n, st, err)
		}
		want = append(want, n)
	}
	slices.Sort(want)
	if got := ListNames(t, f.Relay, ""); !slices.Equal(got, want) {
		t.Errorf("list = %q\nwant   %q", got, want)
	}
	for _, n := range AwkwardNames {
		if err := f.Relay.Delete(ctx, n); err != nil {
			t.Errorf("delete %q: %v", n, err)
		}
	}
	if got := ListNames(t, f.Relay, ""); len(got) != 0 {
		t.Errorf("after deleting all: list = %q", got)
	}
}

func testInvalidNames(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	bad := []string{"", "/abs", "a/../b", "..", "a//b", "a/", "./a", "nul\x00byte", "back\\slash",
		"x/" + relay.TempPrefix + "123"}
	for _, n := range bad {
		if err := f.Relay.Put(ctx, n, relay.BytesPayload([]byte("x"))); !errors.Is(err, relay.ErrInvalidName) {
			t.Errorf("put %q: %v, want ErrInvalidName", n, err)
		}
		if _, err := f.Relay.Stat(ctx, n); !errors.Is(err, relay.ErrInvalidName) {
			t.Errorf("stat %q: %v, want ErrInvalidName", n, err)
		}
		err := f.Relay.Get(ctx, n, 0, -1, func(io.Reader) error { return nil })
		if !errors.Is(err, relay.ErrInvalidName) {
			t.Errorf("get %q: %v, want ErrInvalidName", n, err)
		}
		if err := f.Relay.Delete(ctx, n); !errors.Is(err, relay.ErrInvalidName) {
			t.Errorf("delete %q: %v, want ErrInvalidName", n, err)
		}
	}
	if err := f.Relay.List(ctx, "../up", func(relay.ObjectInfo) error { return nil }); !errors.Is(err, relay.ErrInvalidName) {
		t.Errorf("list ../up: %v, want ErrInvalidName", err)
	}
	if names := ListNames(t, f.Relay, ""); len(names) != 0 {
		t.Errorf("invalid names left objects: %q", names)
	}
}

func testDelete(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	MustPut(t, f.Relay, "d/keep", []byte("k"))
	MustPut(t, f.Relay, "d/gone", []byte("g"))
	if err := f.Relay.Delete(ctx, "d/gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := f.Relay.Stat(ctx, "d/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after delete: %v, want fs.ErrNotExist", err)
	}
	if err := f.Relay.Delete(ctx, "d/gone"); err != nil {
		t.Errorf("second delete of the same object: %v, want success", err)
	}
	if err := f.Relay.Delete(ctx, "never/was"); err != nil {
		t.Errorf("delete in a missing directory: %v, want success", err)
	}
	if got := ListNames(t, f.Relay, ""); !slices.Equal(got, []string{"d/keep"}) {
		t.Errorf("list after delete = %v", got)
	}
}

// testCreate checks relay.Creator where the relay has it: a new name is
// stored, an existing one is refused with fs.ErrExist and kept, and of
// creates that race exactly one wins, whole.
func testCreate(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	c, ok := f.Relay.(relay.Creator)
	if !ok {
		t.Skip("backend has no exclusive create")
	}
	err := c.Create(ctx, "cr/dir/one", relay.BytesPayload([]byte("first")))
	if errors.Is(err, relay.ErrUnsupported) {
		t.Skipf("backend has no exclusive create: %v", err)
	}
	if err != nil {
		t.Fatalf("create of a new name: %v", err)
	}
	if err := c.Create(ctx, "cr/dir/one", relay.BytesPayload([]byte("second"))); !errors.Is(err, fs.ErrExist) {
		t.Errorf("create of an existing name: %v, want fs.ErrExist", err)
	}
	if got := MustGet(t, f.Relay, "cr/dir/one"); string(got) != "first" {
		t.Errorf("after a refused create the object holds %q", got)
	}
	const n = 6
	datas := make([][]byte, n)
	errs := make([]error, n)
	var wg gosync.WaitGroup
	for i := range n {
		datas[i] = RandomBytes(10_000 + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Create(ctx, "cr/race", relay.BytesPayload(datas[i]))
		}()
	}
	wg.Wait()
	got := MustGet(t, f.Relay, "cr/race")
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			if !bytes.Equal(got, datas[i]) {
				t.Errorf("create %d succeeded, but the object holds another's content", i)
			}
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("racing create %d: %v, want success or fs.ErrExist", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d racing creates succeeded, want exactly 1", won, n)
	}
	if f.Raw != nil {
		for _, name := range f.Raw(t) {
			if strings.Contains(name, relay.TempPrefix) {
				t.Errorf("creates left the temporary file %s", name)
			}
		}
	}
}

func testRename(t *testing.T, cfg Config, f Fixture) {
	ctx := ctxFor(t)
	rn, ok := f.Relay.(relay.Renamer)
	if !ok {
		if !cfg.NoRename {
			t.Fatal("relay does not implement relay.Renamer; set NoRename if that is intended")
		}
		t.Skip("backend has no rename")
	}
	MustPut(t, f.Relay, "mv/src", []byte("source"))
	if err := rn.Rename(ctx, "mv/src", "mv/new/dir/dst"); err != nil {
		t.Fatalf("rename into a new directory: %v", err)
	}
	if got := MustGet(t, f.Relay, "mv/new/dir/dst"); string(got) != "source" {
		t.Errorf("renamed object = %q", got)
	}
	if _, err := f.Relay.Stat(ctx, "mv/src"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source after rename: %v, want fs.ErrNotExist", err)
	}
	MustPut(t, f.Relay, "mv/other", []byte("other"))
	if err := rn.Rename(ctx, "mv/other", "mv/new/dir/dst"); err != nil {
		t.Fatalf("rename over an existing object: %v", err)
	}
	if got := MustGet(t, f.Relay, "mv/new/dir/dst"); string(got) != "other" {
		t.Errorf("after rename over an existing object: %q, want %q", got, "other")
	}
	if err := rn.Rename(ctx, "mv/absent", "mv/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rename of a missing object: %v, want fs.ErrNotExist", err)
	}
	awk := AwkwardNames[2]
	if err := rn.Rename(ctx, "mv/new/dir/dst", awk); err != nil {
		t.Fatalf("rename to %q: %v", awk, err)
	}
	if got := ListNames(t, f.Relay, ""); !slices.Equal(got, []string{awk}) {
		t.Errorf("list after renames = %q, want [%q]", got, awk)
	}
	if err := rn.Rename(ctx, awk, "../escape"); !errors.Is(err, relay.ErrInvalidName) {
		t.Errorf("rename to ../escape: %v, want ErrInvalidName", err)
	}
}

// slowPayload yields its data in small pieces and calls hook once half of it
// has been read.
type slowPayload struct {
	data []byte
	off  int
	hook func() error
	hit  bool
}

func (p *slowPayload) Read(b []byte) (int, error) {
	if p.off >= len(p.data) {
		return 0, io.EOF
	}
	if !p.hit && p.off >= len(p.data)/2 {
		p.hit = true
		if err := p.hook(); err != nil {
			return 0, err
		}
	}
	n := copy(b[:min(len(b), 32<<10)], p.data[p.off:])
	p.off += n
	return n, nil
}
func (p *slowPayload) Length() int64 { return int64(len(p.data)) }
func (p *slowPayload) Rewind() error { p.off = 0; p.hit = false; return nil }

// checkNothingLeft asserts that name is absent or holds old, and that the
// storage holds no stray files besides the expected ones.
func checkNothingLeft(t *testing.T, f Fixture, name string, old []byte, expected []string) {
	t.Helper()
	ctx := context.Background()
	got, err := ReadAll(ctx, f.Relay, name, 0, -1)
	switch {
	case old == nil && !errors.Is(err, fs.ErrNotExist):
		t.Errorf("after the failed put, %q: %d bytes, err %v; want fs.ErrNotExist", name, len(got), err)
	case old != nil && (err != nil || !bytes.Equal(got, old)):
		t.Errorf("after the failed put, %q: %d bytes, err %v; want the old %d bytes", name, len(got), err, len(old))
	}
	if names := ListNames(t, f.Relay, ""); !slices.Equal(names, expected) {
		t.Errorf("after the failed put, list = %q, want %q", names, expected)
	}
	if f.Raw == nil {
		return
	}
	// Some servers remove their own staging files asynchronously after the
	// connection drops; wait for that with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw := f.Raw(t)
		slices.Sort(raw)
		if slices.Equal(raw, expected) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after the failed put, the storage holds %q, want only %q", raw, expected)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testCancelledPut(t *testing.T, cfg Config, f Fixture) {
	old := []byte("old version")
	MustPut(t, f.Relay, "c/existing", old)
	for _, tc := range []struct {
		name string
		old  []byte
	}{{"c/new", nil}, {"c/existing", old}} {
		ctx, cancel := context.WithCancel(context.Background())
		p := &slowPayload{data: RandomBytes(2 << 20), hook: func() error { cancel(); return nil }}
		err := f.Relay.Put(ctx, tc.name, p)
		cancel()
		if err == nil {
			t.Errorf("put %q with a context cancelled halfway succeeded", tc.name)
		} else if !errors.Is(err, context.Canceled) {
			t.Errorf("put %q with a context cancelled halfway: %v, want an error wrapping context.Canceled", tc.name, err)
		}
		checkNothingLeft(t, f, tc.name, tc.old, []string{"c/existing"})
	}
	// A context cancelled before the call does nothing at all.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Relay.Put(ctx, "c/never", relay.BytesPayload([]byte("x"))); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: %v, want context.Canceled", err)
	}
	checkNothingLeft(t, f, "c/never", nil, []string{"c/existing"})
}

var errPayload = errors.New("payload source failed")

func testFailingPayload(t *testing.T, cfg Config, f Fixture) {
	if !f.Relay.Properties().AtomicPut {
		t.Skip("backend does not claim atomic puts")
	}
	old := RandomBytes(1000)
	MustPut(t, f.Relay, "fp/existing", old)
	for _, tc := range []struct {
		name string
		old  []byte
	}{{"fp/new", nil}, {"fp/existing", old}} {
		p := &slowPayload{data: RandomBytes(1 << 20), hook: func() error { return errPayload }}
		err := f.Relay.Put(context.Background(), tc.name, p)
		if err == nil {
			t.Errorf("put %q of a payload that fails halfway succeeded", tc.name)
		}
		checkNothingLeft(t, f, tc.name, tc.old, []string{"fp/existing"})
	}
	// A payload shorter than its declared length must not be stored either.
	short := &lyingPayload{Payload: relay.BytesPayload(RandomBytes(1000)), claim: 5000}
	if err := f.Relay.Put(context.Background(), "fp/short", short); err == nil {
		t.Errorf("put of a payload shorter than its length succeeded")
	}
	checkNothingLeft(t, f, "fp/short", nil, []string{"fp/existing"})
}

// testNewObjects: a Put of a new object (relay.NewObjects) stores it whole,
// under its name and in its parent directories, and one that fails or is
// cancelled halfway leaves nothing, as any Put.
func testNewObjects(t *testing.T, cfg Config, f Fixture) {
	ctx := relay.NewObjects(context.Background())
	data := RandomBytes(3 << 20)
	if err := f.Relay.Put(ctx, "n/b/blob", relay.BytesPayload(data)); err != nil {
		t.Fatalf("put of a new object: %v", err)
	}
	if got := MustGet(t, f.Relay, "n/b/blob"); !bytes.Equal(got, data) {
		t.Errorf("new object read back: %d bytes, want the %d put", len(got), len(data))
	}
	p := &slowPayload{data: RandomBytes(2 << 20), hook: func() error { return errPayload }}
	if err := f.Relay.Put(ctx, "n/b/failed", p); err == nil {
		t.Error("put of a new object whose payload fails halfway succeeded")
	}
	checkNothingLeft(t, f, "n/b/failed", nil, []string{"n/b/blob"})
	cctx, cancel := context.WithCancel(ctx)
	p = &slowPayload{data: RandomBytes(2 << 20), hook: func() error { cancel(); return nil }}
	if err := f.Relay.Put(cctx, "n/b/cancelled", p); !errors.Is(err, context.Canceled) {
		t.Errorf("put of a new object cancelled halfway: %v, want an error wrapping context.Canceled", err)
	}
	cancel()
	// A cancelled Put returns at once; what it wrote is removed in the
	// background.
	waitGone(t, f.Relay, "n/b/cancelled")
	checkNothingLeft(t, f, "n/b/cancelled", nil, []string{"n/b/blob"})
}

// waitGone waits, with a deadline, until name is not in r.
func waitGone(t *testing.T, r relay.Relay, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Stat(context.Background(), name)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%q still there 10 s after a failed put: %v", name, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lyingPayload struct {
	relay.Payload
	claim int64
}

func (p *lyingPayload) Length() int64 { return p.claim }

func testConcurrentPuts(t *testing.T, cfg Config, f Fixture) {
	const n = 8
	datas := make([][]byte, n)
	var wg gosync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		datas[i] = RandomBytes(100_000 + mrand.IntN(100_000))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Relay.Put(context.Background(), fmt.Sprintf("cc/sub%d/obj%d", i%3, i), relay.BytesPayload(datas[i]))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent put %d: %v", i, err)
		}
	}
	for i := range n {
		if got := MustGet(t, f.Relay, fmt.Sprintf("cc/sub%d/obj%d", i%3, i)); !bytes.Equal(got, datas[i]) {
			t.Errorf("object %d read back wrong (%d bytes)", i, len(got))
		}
	}
	// Concurrent puts of the same name: one complete version wins.
	wg = gosync.WaitGroup{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Relay.Put(context.Background(), "cc/same", relay.BytesPayload(datas[i]))
		}()
	}
	wg.Wait()
	got := MustGet(t, f.Relay, "cc/same")
	found := false
	for i := range n {
		if errs[i] == nil && bytes.Equal(got, datas[i]) {
			found = true
		}
	}
	if !found {
		t.Errorf("after concurrent puts of one name, its %d bytes match no successful put (errors %v)", len(got), errs)
	}
	if names := ListNames(t, f.Relay, "cc"); len(names) != n+1 {
		t.Errorf("list cc: %d names, want %d: %q", len(names), n+1, names)
	}
	// Concurrent readers.
	var rg gosync.WaitGroup
	for i := range n {
		rg.Add(1)
		go func() {
			defer rg.Done()
			b, err := ReadAll(context.Background(), f.Relay, fmt.Sprintf("cc/sub%d/obj%d", i%3, i), 10, 1000)
			if err != nil || !bytes.Equal(b, datas[i][10:1010]) {
				t.Errorf("concurrent ranged read %d: %d bytes, %v", i, len(b), err)
			}
		}()
	}
	rg.Wait()
}

func testStopListing(t *testing.T, cfg Config, f Fixture) {
	for i := range 5 {
		MustPut(t, f.Relay, path.Join("s", fmt.Sprint(i)), []byte("x"))
	}
	stop := errors.New("enough")
	calls := 0
	err := f.Relay.List(context.Background(), "s", func(relay.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("list with fn returning an error: err %v after %d calls; want that error after 1 call", err, calls)
	}
	// The relay must still work after an interrupted listing.
	if got := ListNames(t, f.Relay, "s"); len(got) != 5 {
		t.Errorf("list after an interrupted listing: %q", got)
	}
	// And after a Get whose fn stops reading early.
	MustPut(t, f.Relay, "s/big", RandomBytes(3<<20))
	err = f.Relay.Get(context.Background(), "s/big", 0, -1, func(r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 1000))
		return err
	})
	if err != nil {
		t.Errorf("get that stops reading early: %v", err)
	}
	if got := MustGet(t, f.Relay, "s/0"); string(got) != "x" {
		t.Errorf("get after an early-closed get: %q", got)
	}
}

func testProperties(t *testing.T, cfg Config, f Fixture) {
	p := f.Relay.Properties()
	if p.Scheme == "" || p.Location == "" {
		t.Errorf("properties lack scheme or location: %+v", p)
	}
	if cfg.Secret != "" && strings.Contains(p.Location, cfg.Secret) {
		t.Errorf("location includes the password: %q", p.Location)
	}
}
