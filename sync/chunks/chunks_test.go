package chunks

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/pseudo"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

func split(t *testing.T, c *Chunker, data []byte) []Chunk {
	t.Helper()
	var out []Chunk
	err := c.Split(bytes.NewReader(data), func(k Chunk, b []byte) error {
		if int64(len(b)) != k.Length {
			t.Fatalf("chunk at %d: %d bytes handed for a length of %d", k.Offset, len(b), k.Length)
		}
		if !bytes.Equal(b, data[k.Offset:k.Offset+k.Length]) {
			t.Fatalf("chunk at %d: bytes differ from the content's", k.Offset)
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newChunker(t *testing.T, keys *crypto.Keys) *Chunker {
	t.Helper()
	c, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testKeys are the keys of a fixed secret: where content is cut, and so
// how many chunks an edit touches, does not change from run to run.
func testKeys(t *testing.T) *crypto.Keys { return keysOf(t, 0x5c) }

// keysOf are the keys of the secret made of the byte b.
func keysOf(t *testing.T, b byte) *crypto.Keys {
	t.Helper()
	secret, err := crypto.Key(bytes.Repeat([]byte{b}, crypto.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	_, keys, err := crypto.NewConfig(bytes.NewReader(make([]byte, 64)), secret, crypto.EncryptionAge, crypto.KDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestSplitCovers: the chunks cover the content, in order, without gaps,
// within the bounds, each named by its keyed hash; empty content has none.
func TestSplitCovers(t *testing.T) {
	keys := testKeys(t)
	c := newChunker(t, keys)
	if got := split(t, c, nil); len(got) != 0 {
		t.Errorf("empty content: %d chunks", len(got))
	}
	data := pseudo.Bytes("covers", 20<<20+12345)
	chunks := split(t, c, data)
	var off int64
	for i, k := range chunks {
		if k.Offset != off {
			t.Fatalf("chunk %d at %d, want %d", i, k.Offset, off)
		}
		if k.Length > MaxSize || k.Length < MinSize && i != len(chunks)-1 {
			t.Errorf("chunk %d: %d bytes, outside [%d, %d]", i, k.Length, MinSize, MaxSize)
		}
		if k.ID != keys.ChunkIDOf(data[k.Offset:k.Offset+k.Length]) {
			t.Errorf("chunk %d: ID is not the keyed hash of its bytes", i)
		}
		off += k.Length
	}
	if off != int64(len(data)) {
		t.Errorf("the chunks cover %d bytes of %d", off, len(data))
	}
	if n := len(chunks); n < 10 || n > 40 {
		t.Errorf("%d chunks for 20 MiB, want about 20 (1 MiB on average)", n)
	}
	fail := errors.New("stop")
	if err := c.Split(bytes.NewReader(data), func(Chunk, []byte) error { return fail }); !errors.Is(err, fail) {
		t.Errorf("Split returned %v, want fn's error", err)
	}
	// Short content is one chunk, up to MinSize and one byte past it.
	for _, n := range []int{1, MinSize - 1, MinSize, MinSize + 1} {
		got := split(t, c, data[:n])
		if len(got) != 1 || got[0].Length != int64(n) || got[0].ID != keys.ChunkIDOf(data[:n]) {
			t.Errorf("%d bytes: chunks %+v, want one of %d bytes", n, got, n)
		}
	}
	// A read error in the middle ends Split with it.
	broken := io.MultiReader(bytes.NewReader(data[:3<<20]), iotest.ErrReader(fail))
	if err := c.Split(broken, func(Chunk, []byte) error { return nil }); !errors.Is(err, fail) {
		t.Errorf("a read error after 3 MiB: Split returned %v, want it", err)
	}
}

// TestSplitLocal: an edit in the middle changes the chunks around it
// only, and an insertion at the start shifts no boundary after it.
func TestSplitLocal(t *testing.T) {
	c := newChunker(t, testKeys(t))
	data := pseudo.Bytes("local", 32<<20)
	before := ids(split(t, c, data))

	edited := bytes.Clone(data)
	copy(edited[16<<20:], pseudo.Bytes("edit", 1<<20))
	if n := missing(before, ids(split(t, c, edited))); n > 3 {
		t.Errorf("1 MiB changed in the middle: %d new chunks, want at most 3", n)
	}
	inserted := append(pseudo.Bytes("insert", 1<<20), data...)
	if n := missing(before, ids(split(t, c, inserted))); n > 3 {
		t.Errorf("1 MiB inserted at the start: %d new chunks, want at most 3", n)
	}
	// Another repository cuts the same content elsewhere.
	other := newChunker(t, keysOf(t, 0xa3))
	if other.Gear() == c.Gear() {
		t.Error("two repositories drew the same gear table")
	}
}

func ids(chunks []Chunk) map[crypto.ChunkID]bool {
	m := make(map[crypto.ChunkID]bool)
	for _, k := range chunks {
		m[k.ID] = true
	}
	return m
}

// missing counts the chunks of after that before lacks.
func missing(before, after map[crypto.ChunkID]bool) int {
	n := 0
	for id := range after {
		if !before[id] {
			n++
		}
	}
	return n
}

type vectorChunk struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	ID     string `json:"id_hex"`
}

type vectors struct {
	Repository string        `json:"repository"`
	Gear       []string      `json:"gear_first_8_hex"`
	Content    string        `json:"content"`
	Chunks     []vectorChunk `json:"chunks"`
	// ContentHash is the content's hash by its chunks
	// (crypto.ChunkedSum).
	ContentHash string `json:"content_hash_hex"`
}

// TestVectors pins the format: for a repository without a secret, the
// first words of the gear table, the chunks of 12 MiB of content drawn from a fixed seed,
// and their content hash. Regenerate (only for a deliberate format change) with -update.
func TestVectors(t *testing.T) {
	const seed = "escalefs chunk vectors"
	c := newChunker(t, nil)
	var gear []string
	table := c.Gear()
	for _, g := range table[:8] {
		gear = append(gear, fmt.Sprintf("%016x", g))
	}
	v := vectors{
		Repository: "without a secret",
		Gear:       gear,
		Content:    `12 MiB: SHA-256("` + seed + `" ‖ counter), counter 0, 1, 2… as 8 bytes little-endian`,
	}
	sum := crypto.NewChunkedSum()
	for _, k := range split(t, c, pseudo.Bytes(seed, 12<<20)) {
		v.Chunks = append(v.Chunks, vectorChunk{k.Offset, k.Length, hex.EncodeToString(k.ID[:])})
		sum.Add(k.ID, k.Length)
	}
	h := sum.Sum()
	v.ContentHash = hex.EncodeToString(h[:])
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the chunks changed:\n got %s\nwant %s", got, want)
	}
}

// TestSplitAtCutsAsSplit: cut in parallel segments, the content is cut
// exactly as one pass cuts it: random content (the segments' cuttings
// meet within a chunk or two), a long run of zeros (cuts only at MaxSize,
// which never meet: the true cutting goes on alone), and mixes, at sizes
// that are and are not multiples of the segment, with segments smaller
// and larger than a chunk.
func TestSplitAtCutsAsSplit(t *testing.T) {
	keys := testKeys(t)
	zeros := make([]byte, 30<<20)
	mixed := append(append(pseudo.Bytes("mix1", 7<<20+3), make([]byte, 19<<20)...), pseudo.Bytes("mix2", 9<<20)...)
	contents := map[string][]byte{
		"random":  pseudo.Bytes("parallel", 41<<20+777),
		"zeros":   zeros,
		"mixed":   mixed,
		"one":     {1},
		"small":   pseudo.Bytes("small", MinSize+1),
		"exactly": pseudo.Bytes("exactly", 24<<20),
	}
	for name, data := range contents {
		want := split(t, newChunker(t, keys), data)
		for _, seg := range []int64{1 << 20, 3 << 20, 8 << 20, 64 << 20} {
			c := newChunker(t, keys)
			c.segment = seg
			var got []Chunk
			err := c.SplitAt(t.Context(), bytes.NewReader(data), int64(len(data)), func(k Chunk) error {
				got = append(got, k)
				return nil
			})
			if err != nil {
				t.Fatalf("%s, segments of %d: %v", name, seg, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s, segments of %d: %d chunks, one pass cuts %d", name, seg, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s, segments of %d: chunk %d is %+v, one pass cuts %+v", name, seg, i, got[i], want[i])
				}
			}
		}
	}
}

// TestSplitAtErrors: content shorter than said, and an error of fn, end
// SplitAt with them.
func TestSplitAtErrors(t *testing.T) {
	c := newChunker(t, testKeys(t))
	c.segment = 2 << 20
	data := pseudo.Bytes("short", 10<<20)
	err := c.SplitAt(t.Context(), bytes.NewReader(data), int64(len(data))+5, func(Chunk) error { return nil })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("content 5 bytes short: %v, want io.ErrUnexpectedEOF", err)
	}
	stop := errors.New("stop")
	calls := 0
	err = c.SplitAt(t.Context(), bytes.NewReader(data), int64(len(data)), func(Chunk) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("fn failing at its third call: %v after %d calls", err, calls)
	}
}

// BenchmarkSplit cuts 256 MiB held in memory, with IDs: in one pass (Split)
// and in parallel segments (SplitAt), one CPU per worker.
func BenchmarkSplit(b *testing.B) {
	keys, err := func() (*crypto.Keys, error) {
		_, k, err := crypto.NewConfig(bytes.NewReader(make([]byte, 64)), crypto.GenerateKey(), crypto.EncryptionAge, crypto.KDFParams{})
		return k, err
	}()
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(keys)
	if err != nil {
		b.Fatal(err)
	}
	data := pseudo.Bytes("bench", 256<<20)
	b.Run("one-pass", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := c.Split(bytes.NewReader(data), func(Chunk, []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := c.SplitAt(b.Context(), bytes.NewReader(data), int64(len(data)), func(Chunk) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
