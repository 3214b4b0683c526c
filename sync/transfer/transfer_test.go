package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/sync/transfer"
)

// countingRelay counts Puts.
type countingRelay struct {
	relay.Relay
	puts atomic.Int64
}

func (c *countingRelay) Put(ctx context.Context, name string, p relay.Payload) error {
	c.puts.Add(1)
	return c.Relay.Put(ctx, name, p)
}

type env struct {
	relay   *countingRelay
	root    string
	scratch string
	node    crypto.NodeID
	up      *transfer.Uploader
	down    *transfer.Downloader
}

// testKeys are fixed (a fixed repository ID and salt): where content is
// cut into chunks depends on them, and so do the figures the chunk tests
// bound.
var testKeys = func() *crypto.Keys {
	_, k, err := crypto.NewConfig(bytes.NewReader(bytes.Repeat([]byte{0x11}, 48)), crypto.Passphrase("x"), crypto.EncryptionAge, crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1})
	if err != nil {
		panic(err)
	}
	return k
}()

func newEnv(t *testing.T, keys *crypto.Keys) *env {
	t.Helper()
	root := t.TempDir()
	r, err := file.New(t.Context(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{relay: &countingRelay{Relay: r}, root: root, scratch: t.TempDir(), node: crypto.NewNodeID()}
	e.up = transfer.NewUploader(e.relay, keys, e.node, e.scratch, nil)
	e.down = transfer.NewDownloader(e.relay, keys, nil)
	return e
}

// forKeys runs f with age keys and without a secret.
func forKeys(t *testing.T, f func(t *testing.T, keys *crypto.Keys)) {
	t.Run("age", func(t *testing.T) { f(t, testKeys) })
	t.Run("nosecret", func(t *testing.T) { f(t, nil) })
}

func (e *env) checkScratchEmpty(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(e.scratch)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		t.Errorf("left in scratch: %s", d.Name())
	}
}

// blobPath is where the file relay keeps a blob.
func (e *env) blobPath(id crypto.BlobID) string {
	return filepath.Join(e.root, filepath.FromSlash(layout.BlobName(e.node, id)))
}

func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// fileOpener opens b as a file opens: it reads at random too, so that
// PutChunks cuts it in parallel.
func fileOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return readAtCloser{bytes.NewReader(b)}, nil }
}

type readAtCloser struct{ *bytes.Reader }

func (readAtCloser) Close() error { return nil }

// bufCloser collects one file of a pack.
type bufCloser struct {
	bytes.Buffer
	closed bool
}

func (b *bufCloser) Close() error { b.closed = true; return nil }

func smallFiles(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
		rand.Read(out[i])
	}
	return out
}

func putPack(t *testing.T, e *env, contents [][]byte) ([]proto.PackRef, crypto.BlobRef) {
	t.Helper()
	files := make([]transfer.PackFile, len(contents))
	for i, c := range contents {
		files[i] = transfer.PackFile{Open: opener(c), Size: int64(len(c))}
	}
	refs, ref, err := e.up.PutPack(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	return refs, ref
}

func getPack(e *env, ctx context.Context, ref crypto.BlobRef, refs []proto.PackRef) ([]*bufCloser, error) {
	got := make([]*bufCloser, len(refs))
	err := e.down.GetPack(ctx, ref, e.node, refs, func(i int) (io.WriteCloser, error) {
		if got[i] != nil {
			return nil, fmt.Errorf("dst(%d) called twice", i)
		}
		got[i] = &bufCloser{}
		return got[i], nil
	})
	return got, err
}

func TestPackRoundTrip(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		contents := smallFiles(1000, 4096)
		refs, ref := putPack(t, e, contents)
		if n := e.relay.puts.Load(); n != 1 {
			t.Errorf("%d Puts for a pack, want 1", n)
		}
		e.checkScratchEmpty(t)
		if len(refs) != len(contents) {
			t.Fatalf("%d refs for %d files", len(refs), len(contents))
		}
		var off int64
		for i, r := range refs {
			if r.Blob != ref || r.Offset != off || r.Length != 4096 {
				t.Fatalf("ref %d = %+v, want offset %d length 4096 in %s", i, r, off, ref.ID)
			}
			off += r.Length
		}
		if st, err := os.Stat(e.blobPath(ref.ID)); err != nil || st.Size() != ref.Size {
			t.Fatalf("stored pack: %v (want %d bytes)", err, ref.Size)
		}
		got, err := getPack(e, t.Context(), ref, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range contents {
			if got[i] == nil || !got[i].closed || !bytes.Equal(got[i].Bytes(), contents[i]) {
				t.Fatalf("file %d differs or was not closed", i)
			}
		}

		// A subset with gaps, and the proto round trip of a ref.
		sub := []proto.PackRef{refs[3], refs[500], refs[999]}
		got, err = getPack(e, t.Context(), ref, sub)
		if err != nil {
			t.Fatal(err)
		}
		for i, j := range []int{3, 500, 999} {
			if !bytes.Equal(got[i].Bytes(), contents[j]) {
				t.Errorf("subset file %d (%d) differs", i, j)
			}
		}
	})
}

func TestPackRefsChecked(t *testing.T) {
	e := newEnv(t, nil)
	refs, ref := putPack(t, e, smallFiles(3, 10))
	other := ref
	other.ID = crypto.NewBlobID()
	beyond := refs[2]
	beyond.Offset = 100
	tests := map[string][]proto.PackRef{
		"out of order":  {refs[1], refs[0]},
		"overlap":       {refs[0], {Blob: ref, Offset: 5, Length: 10}},
		"other blob":    {{Blob: other, Offset: 0, Length: 10}},
		"empty":         {{Blob: ref, Offset: 0, Length: 0}},
		"past the end":  {refs[0], beyond},
		"negative":      {{Blob: ref, Offset: -1, Length: 10}},
		"overflow":      {{Blob: ref, Offset: 1 << 62, Length: 1<<63 - 1}},
		"duplicate":     {refs[0], refs[0]},
		"straddles end": {{Blob: ref, Offset: 25, Length: 10}},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := getPack(e, t.Context(), ref, files); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestPackSizeMismatch(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		for _, n := range []int{9, 11} {
			files := []transfer.PackFile{
				{Open: opener(make([]byte, 10)), Size: 10},
				{Open: opener(make([]byte, n)), Size: 10},
			}
			_, _, err := e.up.PutPack(t.Context(), files)
			if !errors.Is(err, transfer.ErrChanged) || !bytes.Contains([]byte(err.Error()), []byte("file 1")) {
				t.Errorf("file of %d bytes, size 10: err = %v, want ErrChanged naming file 1", n, err)
			}
		}
		if n := e.relay.puts.Load(); n != 0 {
			t.Errorf("%d Puts after failures", n)
		}
		e.checkScratchEmpty(t)
	})
}

func TestPartsRoundTrip(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		const partSize = 8 << 20
		content := make([]byte, 20<<20+3)
		rand.Read(content)
		refs, err := e.up.PutParts(t.Context(), opener(content), int64(len(content)), partSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 3 || e.relay.puts.Load() != 3 {
			t.Fatalf("%d parts, %d Puts; want 3", len(refs), e.relay.puts.Load())
		}
		e.checkScratchEmpty(t)
		var buf bytes.Buffer
		if err := e.down.GetParts(t.Context(), e.node, refs, &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), content) {
			t.Fatal("content differs")
		}

		// A small file is one part; partSize 0 means the default.
		refs, err = e.up.PutParts(t.Context(), opener(content[:100]), 100, 0)
		if err != nil || len(refs) != 1 {
			t.Fatalf("small file: %d parts, %v", len(refs), err)
		}
		buf.Reset()
		if err := e.down.GetParts(t.Context(), e.node, refs, &buf); err != nil || !bytes.Equal(buf.Bytes(), content[:100]) {
			t.Fatalf("small file round trip: %v", err)
		}
	})
}

func TestPartsSizeMismatch(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		for _, n := range []int{999, 1001, 950, 2000, 1} {
			_, err := e.up.PutParts(t.Context(), opener(make([]byte, n)), 1000, 100)
			if !errors.Is(err, transfer.ErrChanged) {
				t.Errorf("%d bytes, size 1000: err = %v, want ErrChanged", n, err)
			}
		}
		e.checkScratchEmpty(t)
	})
}

// flip changes one byte of the file at p.
func flip(t *testing.T, p string, at int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += int64(len(b))
	}
	b[at] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, p string, by int64) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, st.Size()-by); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedPack(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		for _, at := range []int64{0, 200, 5000, -1} {
			e := newEnv(t, keys)
			refs, ref := putPack(t, e, smallFiles(4, 4096))
			flip(t, e.blobPath(ref.ID), at)
			if _, err := getPack(e, t.Context(), ref, refs); !errors.Is(err, crypto.ErrBlobCorrupt) {
				t.Errorf("byte %d flipped: err = %v, want ErrBlobCorrupt", at, err)
			}
		}
		e := newEnv(t, keys)
		refs, ref := putPack(t, e, smallFiles(4, 4096))
		truncate(t, e.blobPath(ref.ID), 1)
		if _, err := getPack(e, t.Context(), ref, refs); !errors.Is(err, crypto.ErrBlobTruncated) {
			t.Errorf("truncated: err = %v, want ErrBlobTruncated", err)
		}
	})
}

func TestTamperedParts(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		content := make([]byte, 300<<10)
		rand.Read(content)
		put := func() (*env, []crypto.BlobRef) {
			e := newEnv(t, keys)
			refs, err := e.up.PutParts(t.Context(), opener(content), int64(len(content)), 100<<10)
			if err != nil {
				t.Fatal(err)
			}
			return e, refs
		}
		for _, at := range []int64{0, 1000, -1} {
			e, refs := put()
			flip(t, e.blobPath(refs[1].ID), at)
			if err := e.down.GetParts(t.Context(), e.node, refs, io.Discard); !errors.Is(err, crypto.ErrBlobCorrupt) {
				t.Errorf("byte %d of part 2 flipped: err = %v, want ErrBlobCorrupt", at, err)
			}
		}
		e, refs := put()
		truncate(t, e.blobPath(refs[2].ID), 10)
		if err := e.down.GetParts(t.Context(), e.node, refs, io.Discard); !errors.Is(err, crypto.ErrBlobTruncated) {
			t.Errorf("truncated: err = %v, want ErrBlobTruncated", err)
		}
		// A valid blob of this repository stored under another part's ID
		// does not match that part's ref.
		e, refs = put()
		b, err := os.ReadFile(e.blobPath(refs[0].ID))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.blobPath(refs[1].ID), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.down.GetParts(t.Context(), e.node, refs, io.Discard); !errors.Is(err, crypto.ErrBlobCorrupt) {
			t.Errorf("part replaced: err = %v, want ErrBlobCorrupt", err)
		}
	})
}

// genReader yields n deterministic bytes without holding them: a 64 KiB
// pattern, each repetition stamped with its number.
type genReader struct {
	n, off int64
}

var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i ^ i>>8 ^ i>>13)
	}
	return b
}()

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	n := 0
	for n < len(p) {
		at := (g.off + int64(n)) % int64(len(pattern))
		k := copy(p[n:], pattern[at:])
		if at == 0 && k >= 8 {
			binary.LittleEndian.PutUint64(p[n:], uint64(g.off+int64(n)))
		}
		n += k
	}
	g.off += int64(n)
	return n, nil
}

func (g *genReader) Close() error { return nil }

// discardRelay reads each payload to its end and keeps nothing.
type discardRelay struct {
	relay.Relay
	bytes atomic.Int64
}

func (d *discardRelay) Put(_ context.Context, _ string, p relay.Payload) error {
	n, err := io.Copy(io.Discard, p)
	d.bytes.Add(n)
	if err == nil && n != p.Length() {
		err = fmt.Errorf("payload of %d bytes, Length %d", n, p.Length())
	}
	return err
}

func TestPartsConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB")
	}
	const size = 256 << 20
	d := &discardRelay{}
	scratch := t.TempDir()
	up := transfer.NewUploader(d, testKeys, crypto.NewNodeID(), scratch, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		refs, err := up.PutParts(t.Context(), func() (io.ReadCloser, error) { return &genReader{n: size}, nil }, size, 0)
		if err != nil {
			t.Error(err)
		} else if len(refs) != size/transfer.DefaultPartSize {
			t.Errorf("%d parts", len(refs))
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			runtime.ReadMemStats(&after)
			peak = max(peak, after.HeapInuse)
		}
	}
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapInuse)
	grew := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap in use grew by at most %d KiB", grew>>10)
	if grew > 32<<20 {
		t.Errorf("heap in use grew by %d MiB", grew>>20)
	}
	if d.bytes.Load() < size {
		t.Errorf("%d bytes stored", d.bytes.Load())
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("%d files left in scratch", len(ents))
	}
}

// TestTempRemovedOnCancel cancels while a file is read and during a Put.
func TestTempRemovedOnCancel(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		ctx, cancel := context.WithCancel(t.Context())
		content := make([]byte, 1<<20)
		cancelling := func() (io.ReadCloser, error) {
			cancel()
			return io.NopCloser(bytes.NewReader(content)), nil
		}
		files := []transfer.PackFile{{Open: opener(content), Size: int64(len(content))}, {Open: cancelling, Size: int64(len(content))}}
		if _, _, err := e.up.PutPack(ctx, files); !errors.Is(err, context.Canceled) {
			t.Errorf("PutPack: err = %v, want context.Canceled", err)
		}
		e.checkScratchEmpty(t)

		ctx, cancel = context.WithCancel(t.Context())
		if _, err := e.up.PutParts(ctx, cancelling, int64(len(content)), 100<<10); !errors.Is(err, context.Canceled) {
			t.Errorf("PutParts: err = %v, want context.Canceled", err)
		}
		e.checkScratchEmpty(t)

		// Cancelled during the Put itself.
		ctx, cancel = context.WithCancel(t.Context())
		e.up = transfer.NewUploader(cancelPut{e.relay, cancel}, keys, e.node, e.scratch, nil)
		if _, _, err := e.up.PutPack(ctx, files[:1]); !errors.Is(err, context.Canceled) {
			t.Errorf("PutPack, cancelled Put: err = %v, want context.Canceled", err)
		}
		e.checkScratchEmpty(t)
		if n := e.relay.puts.Load(); n != 1 {
			t.Errorf("%d Puts", n)
		}
		if err := e.relay.List(t.Context(), "", func(o relay.ObjectInfo) error {
			return fmt.Errorf("object %s left on the relay", o.Name)
		}); err != nil {
			t.Error(err)
		}
	})
}

type cancelPut struct {
	relay.Relay
	cancel context.CancelFunc
}

func (c cancelPut) Put(ctx context.Context, name string, p relay.Payload) error {
	c.cancel()
	return c.Relay.Put(ctx, name, p)
}

// flakyRelay breaks the first read of every Get halfway and calls fn again,
// as relay/retry does after a broken connection.
type flakyRelay struct {
	relay.Relay
	swap []byte // if set, served on the second call instead
}

var errBroken = errors.New("connection reset")

type breakAfter struct {
	r    io.Reader
	left int
}

func (b *breakAfter) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errBroken
	}
	p = p[:min(len(p), b.left)]
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

func (f *flakyRelay) Get(ctx context.Context, name string, off, length int64, fn func(io.Reader) error) error {
	var whole []byte
	err := f.Relay.Get(ctx, name, off, length, func(r io.Reader) error {
		var err error
		whole, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return err
	}
	if err := fn(&breakAfter{r: bytes.NewReader(whole), left: len(whole) / 2}); !errors.Is(err, errBroken) {
		return fmt.Errorf("first call: %v, want the broken read", err)
	}
	if f.swap != nil {
		whole = f.swap
	}
	return fn(bytes.NewReader(whole))
}

func TestGetCalledAgain(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		contents := smallFiles(50, 3000)
		refs, ref := putPack(t, e, contents)
		fr := &flakyRelay{Relay: e.relay}
		e.down = transfer.NewDownloader(fr, keys, nil)
		got, err := getPack(e, t.Context(), ref, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range contents {
			if !bytes.Equal(got[i].Bytes(), contents[i]) {
				t.Fatalf("file %d differs", i)
			}
		}

		content := make([]byte, 500<<10)
		rand.Read(content)
		prefs, err := e.up.PutParts(t.Context(), opener(content), int64(len(content)), 200<<10)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := e.down.GetParts(t.Context(), e.node, prefs, &buf); err != nil || !bytes.Equal(buf.Bytes(), content) {
			t.Fatalf("parts over a flaky relay: %v", err)
		}

		// Another blob on the second call: what was delivered no longer
		// matches.
		if keys == nil {
			fr.swap = bytes.Repeat([]byte{0xaa}, int(ref.Size))
			if _, err := getPack(e, t.Context(), ref, refs); !errors.Is(err, crypto.ErrBlobCorrupt) {
				t.Errorf("swapped on retry: err = %v, want ErrBlobCorrupt", err)
			}
		}
	})
}
