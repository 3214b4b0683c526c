package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"maps"
	"sync/atomic"
	"testing"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/pseudo"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/chunks"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/sync/transfer"
)

// gettingRelay counts the bytes Get delivers.
type gettingRelay struct {
	relay.Relay
	got, gets atomic.Int64
}

func (g *gettingRelay) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	g.gets.Add(1)
	return g.Relay.Get(ctx, name, off, n, func(r io.Reader) error {
		return fn(io.TeeReader(r, countWriter{&g.got}))
	})
}

// largestWrite records the largest write through it.
type largestWrite struct {
	w   io.Writer
	max int
}

func (l *largestWrite) Write(p []byte) (int, error) {
	l.max = max(l.max, len(p))
	return l.w.Write(p)
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// sameChunks fails t unless got has want's chunks, in want's blobs.
func sameChunks(t *testing.T, what string, got, want *proto.ChunkList) {
	t.Helper()
	if len(got.Chunks) != len(want.Chunks) {
		t.Fatalf("%s: %d chunks, as a stream %d", what, len(got.Chunks), len(want.Chunks))
	}
	for i, k := range want.Chunks {
		if g := got.Chunks[i]; g.ID != k.ID || g.Length != k.Length || g.Offset != k.Offset || g.Blob != k.Blob {
			t.Fatalf("%s: chunk %d %+v, as a stream %+v", what, i, g, k)
		}
	}
}

// TestChunksRoundTrip: PutChunks stores the chunks asked for in chunk
// blobs, a repeated chunk once; GetChunks rebuilds the content from the
// chunks held locally and the others read from their blobs, reading no
// more of the relay than the chunks it lacks (and the window around them).
func TestChunksRoundTrip(t *testing.T) {
	forKeys(t, func(t *testing.T, keys *crypto.Keys) {
		e := newEnv(t, keys)
		ch, err := chunks.New(keys)
		if err != nil {
			t.Fatal(err)
		}
		// The old version ends in a run of zeros longer than three
		// chunks at most: whatever the key's cuts, the chunks that start
		// in the run repeat, and each is stored once. The new version
		// changes 1 MiB in the middle.
		old := append(pseudo.Bytes("old", 24<<20), make([]byte, 3*chunks.MaxSize+1)...)
		data := bytes.Clone(old)
		copy(data[12<<20:], pseudo.Bytes("edit", 1<<20))

		list, err := e.up.PutChunks(t.Context(), opener(data), int64(len(data)), ch, transfer.ChunkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Cut as a file, in parallel: the same chunks, in the same order.
		fileList, err := e.up.PutChunks(t.Context(), fileOpener(data), int64(len(data)), ch, transfer.ChunkOptions{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, "cut as a file", fileList, list)
		// Given the chunks as a scan cut them, the file is not cut
		// again: the same chunks.
		cut := make([]chunks.Chunk, len(list.Chunks))
		var off int64
		for i, k := range list.Chunks {
			cut[i] = chunks.Chunk{ID: k.ID, Offset: off, Length: k.Length}
			off += k.Length
		}
		given, err := e.up.PutChunks(t.Context(), fileOpener(data), int64(len(data)), ch, transfer.ChunkOptions{Chunks: cut})
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, "given its chunks", given, list)
		// Nor hashed: a chunk that is not what its ID says goes up as
		// it is, unless Verify checks each chunk stored.
		changed := bytes.Clone(data)
		changed[cut[1].Offset] ^= 1
		if _, err := e.up.PutChunks(t.Context(), fileOpener(changed), int64(len(data)), ch, transfer.ChunkOptions{Chunks: cut}); err != nil {
			t.Errorf("given its chunks, without Verify: %v", err)
		}
		if _, err := e.up.PutChunks(t.Context(), fileOpener(changed), int64(len(data)), ch,
			transfer.ChunkOptions{Chunks: cut, Verify: true}); !errors.Is(err, transfer.ErrChanged) {
			t.Errorf("given its chunks, with Verify, a chunk changed: %v, want ErrChanged", err)
		}
		if _, err := e.up.PutChunks(t.Context(), fileOpener(changed), int64(len(data)), ch, transfer.ChunkOptions{Verify: true}); err != nil {
			t.Errorf("cut anew, with Verify, the changed file: %v", err)
		}
		var rebuilt bytes.Buffer
		pieces := &largestWrite{w: &rebuilt}
		if _, err := e.down.GetChunks(t.Context(), e.node, fileList, keys.ChunkIDOf, transfer.GetOptions{}, pieces); err != nil ||
			!bytes.Equal(rebuilt.Bytes(), data) {
			t.Fatalf("the chunks stored as a file read back: %v, %d bytes, equal %v", err, rebuilt.Len(), bytes.Equal(rebuilt.Bytes(), data))
		}
		// Written in pieces of 1 MiB at most: the kernel backs larger
		// writes with large folios, slow to fault in on some VMs.
		if pieces.max > 1<<20 {
			t.Errorf("a write of %d bytes to the destination, want 1 MiB at most", pieces.max)
		}
		sum := sha256.Sum256(data)
		if err := (proto.Change{Op: proto.OpPut, Path: "f", Version: map[string]uint64{e.node.String(): 1},
			Size: int64(len(data)), Hash: sum, Chunks: list}).Validate(); err != nil {
			t.Fatalf("the chunk list does not validate: %v", err)
		}
		var inBlobs int64
		seen := make(map[crypto.ChunkID]bool)
		for _, k := range list.Chunks {
			if !seen[k.ID] {
				inBlobs += k.Length
			}
			seen[k.ID] = true
		}
		if inBlobs >= int64(len(data)) {
			t.Errorf("%d bytes stored for %d of content with a repeated chunk", inBlobs, len(data))
		}
		var blobBytes int64
		for _, b := range list.Blobs {
			blobBytes += b.Size
		}
		if blobBytes > inBlobs+256<<10 {
			t.Errorf("%d bytes of chunk blobs for %d bytes of distinct chunks: a repeated chunk stored twice?", blobBytes, inBlobs)
		}
		if n := int64(len(list.Blobs)); n < inBlobs/transfer.ChunkBlobSize || n > inBlobs/transfer.ChunkBlobSize+2 {
			t.Errorf("%d chunk blobs for %d bytes, want 8 MiB each", n, inBlobs)
		}
		e.checkScratchEmpty(t)

		// A puller holding the old version rebuilds the new one.
		have := make(map[crypto.ChunkID][]byte)
		if err := ch.Split(bytes.NewReader(old), func(k chunks.Chunk, b []byte) error {
			have[k.ID] = bytes.Clone(b)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		g := &gettingRelay{Relay: e.relay}
		down := transfer.NewDownloader(g, keys, nil)
		var out bytes.Buffer
		h := sha256.New()
		fetched, err := down.GetChunks(t.Context(), e.node, list, keys.ChunkIDOf, transfer.GetOptions{
			Local: func(k proto.ChunkRef, buf []byte) bool { return copy(buf, have[k.ID]) == len(buf) },
			Hash:  h,
		}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("the rebuilt content differs")
		}
		if [32]byte(h.Sum(nil)) != sum {
			t.Fatal("the hash beside the writing is not the content's")
		}
		// Exactly the chunks not held come from the relay, each read
		// once, with little more than age's framing around them.
		var lacking int64
		for _, k := range list.Chunks {
			if have[k.ID] == nil {
				lacking += k.Length
			}
		}
		if fetched != lacking || lacking == 0 || lacking > int64(len(data))/2 {
			t.Errorf("fetched %d bytes of chunks; the chunks not held hold %d of %d", fetched, lacking, len(data))
		}
		if got := g.got.Load(); got > lacking+lacking/50+int64(len(list.Blobs))*(200<<10) {
			t.Errorf("read %d bytes of the relay for %d bytes of chunks", got, lacking)
		}
		// Without a local copy, everything comes from the relay: each
		// blob whole, in one request (and the repeated chunks again).
		out.Reset()
		g.gets.Store(0)
		if _, err := down.GetChunks(t.Context(), e.node, list, keys.ChunkIDOf, transfer.GetOptions{}, &out); err != nil {
			t.Fatal(err)
		}
		repeats := len(list.Chunks) - len(seen) // each read where it was stored
		if n := g.gets.Load(); n > int64(len(list.Blobs)+repeats) {
			t.Errorf("%d requests for %d chunk blobs read whole and %d repeated chunks", n, len(list.Blobs), repeats)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("the content read from the relay alone differs")
		}
		// A local copy that changed underneath is not used.
		out.Reset()
		bad := func(k proto.ChunkRef, buf []byte) bool {
			if copy(buf, have[k.ID]) != len(buf) {
				return false
			}
			buf[0] ^= 1
			return true
		}
		if _, err := down.GetChunks(t.Context(), e.node, list, keys.ChunkIDOf, transfer.GetOptions{Local: bad}, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("with altered local chunks: %v", err)
		}
	})
}

// TestChunksHeldAndMissing: a chunk that need does not ask for is in no
// blob; rebuilding without it fails with ErrChunkMissing, and a chunk
// blob altered on the relay with ErrBlobCorrupt or ErrBlobTruncated.
func TestChunksHeldAndMissing(t *testing.T) {
	e := newEnv(t, testKeys)
	ch, err := chunks.New(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	data := pseudo.Bytes("held", 6<<20)
	first := true
	list, err := e.up.PutChunks(t.Context(), opener(data), int64(len(data)), ch, transfer.ChunkOptions{Known: func(crypto.ChunkID) (transfer.Known, bool) {
		held := first
		first = false
		return transfer.Known{Held: true}, held // the first chunk is held by every puller
	}})
	if err != nil {
		t.Fatal(err)
	}
	if list.Chunks[0].Blob != proto.NoBlob || list.Chunks[1].Blob == proto.NoBlob {
		t.Fatalf("chunks %+v, want the first in no blob", list.Chunks[:2])
	}
	_, err = e.down.GetChunks(t.Context(), e.node, list, testKeys.ChunkIDOf, transfer.GetOptions{}, io.Discard)
	if !errors.Is(err, transfer.ErrChunkMissing) {
		t.Errorf("rebuilding without the held chunk: %v, want ErrChunkMissing", err)
	}
	// The file changed while it was read, as a stream and as a file.
	for name, open := range map[string]func([]byte) func() (io.ReadCloser, error){"stream": opener, "file": fileOpener} {
		_, err = e.up.PutChunks(t.Context(), open(data[:5<<20]), int64(len(data)), ch, transfer.ChunkOptions{})
		if !errors.Is(err, transfer.ErrChanged) {
			t.Errorf("%s shorter than its size: %v, want ErrChanged", name, err)
		}
		_, err = e.up.PutChunks(t.Context(), open(data), int64(len(data))-1, ch, transfer.ChunkOptions{})
		if !errors.Is(err, transfer.ErrChanged) {
			t.Errorf("%s longer than its size: %v, want ErrChanged", name, err)
		}
	}
}

// TestChunksReuseBlobs: chunks already in chunk blobs on the relay are
// referred to there, not stored again: a new version stores only its new
// chunks, and reads back whole from the relay.
func TestChunksReuseBlobs(t *testing.T) {
	e := newEnv(t, testKeys)
	ch, err := chunks.New(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	data := pseudo.Bytes("reuse", 20<<20)
	first, err := e.up.PutChunks(t.Context(), opener(data), int64(len(data)), ch, transfer.ChunkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	where := make(map[crypto.ChunkID]transfer.Known)
	for _, k := range first.Chunks {
		where[k.ID] = transfer.Known{Blob: first.Blobs[k.Blob], Offset: k.Offset}
	}
	edited := bytes.Clone(data)
	copy(edited[10<<20:], pseudo.Bytes("new", 64<<10))
	puts := e.relay.puts.Load()
	list, err := e.up.PutChunks(t.Context(), opener(edited), int64(len(edited)), ch, transfer.ChunkOptions{Known: func(id crypto.ChunkID) (transfer.Known, bool) {
		k, ok := where[id]
		return k, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.relay.puts.Load() - puts; n != 1 {
		t.Errorf("%d blobs stored for 64 KiB changed, want 1", n)
	}
	var out bytes.Buffer
	if _, err := e.down.GetChunks(t.Context(), e.node, list, testKeys.ChunkIDOf, transfer.GetOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), edited) {
		t.Error("the new version reads back otherwise")
	}
}

// failingReader yields n bytes of r, then fails.
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection lost")
	}
	p = p[:min(int64(len(p)), f.n)]
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// TestChunksResume: the blobs an interrupted PutChunks stored are reported
// as they are stored; a second PutChunks that knows them stores only the
// rest.
func TestChunksResume(t *testing.T) {
	e := newEnv(t, testKeys)
	ch, err := chunks.New(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	data := pseudo.Bytes("resume", 40<<20)
	where := make(map[crypto.ChunkID]transfer.Known)
	stored := transfer.ChunkOptions{
		Known: func(id crypto.ChunkID) (transfer.Known, bool) { k, ok := where[id]; return k, ok },
		Stored: func(b crypto.BlobRef, offs map[crypto.ChunkID]int64) error {
			for id, off := range offs {
				where[id] = transfer.Known{Blob: b, Offset: off}
			}
			return nil
		},
	}
	cut := func() (io.ReadCloser, error) {
		return io.NopCloser(&failingReader{r: bytes.NewReader(data), n: 30 << 20}), nil
	}
	if _, err := e.up.PutChunks(t.Context(), cut, int64(len(data)), ch, stored); err == nil {
		t.Fatal("an upload whose file read failed succeeded")
	}
	if len(where) == 0 {
		t.Fatal("no stored chunk reported before the failure")
	}
	// What was stored before the failure: the 30 MiB read, but for the
	// blob being filled (8 MiB at most) and the chunk being cut.
	before := maps.Clone(where)
	var storedBefore int64
	if err := ch.Split(bytes.NewReader(data), func(k chunks.Chunk, _ []byte) error {
		if _, ok := before[k.ID]; ok {
			storedBefore += k.Length
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if storedBefore < 30<<20-transfer.ChunkBlobSize-chunks.MaxSize {
		t.Errorf("%d bytes of chunks reported stored before a failure at 30 MiB", storedBefore)
	}
	var again int
	resumed := stored
	resumed.Stored = func(b crypto.BlobRef, offs map[crypto.ChunkID]int64) error {
		for id := range offs {
			if _, ok := before[id]; ok {
				again++
			}
		}
		return stored.Stored(b, offs)
	}
	list, err := e.up.PutChunks(t.Context(), opener(data), int64(len(data)), ch, resumed)
	if err != nil {
		t.Fatal(err)
	}
	if again > 0 {
		t.Errorf("the resumed upload stored %d chunks stored before again", again)
	}
	var out bytes.Buffer
	if _, err := e.down.GetChunks(t.Context(), e.node, list, testKeys.ChunkIDOf, transfer.GetOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Error("the resumed upload reads back otherwise")
	}
}
