package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

// blobModes are the ways a repository stores blobs.
func blobModes(t *testing.T) []struct {
	name string
	keys *Keys
} {
	return []struct {
		name string
		keys *Keys
	}{
		{"age", testKeys(t, EncryptionAge)},
		{"off", testKeys(t, EncryptionOff)},
		{"nosecret", nil},
	}
}

// chunksFor is how many STREAM chunks age writes for n plaintext bytes.
func chunksFor(n int64) int64 {
	if n == 0 {
		return 1
	}
	return (n + ageChunk - 1) / ageChunk
}

func TestBlobRoundTrip(t *testing.T) {
	sizes := []int64{
		0, 1,
		ageChunk - 1, ageChunk, ageChunk + 1,
		2*ageChunk - 1, 2 * ageChunk, 2*ageChunk + 1,
		mib + 7,
		100 * mib,
	}
	for _, m := range blobModes(t) {
		for _, size := range sizes {
			if size == 100*mib && m.keys == nil {
				continue // the same path as "off"
			}
			t.Run(fmt.Sprintf("%s/%d", m.name, size), func(t *testing.T) {
				if size == 100*mib && testing.Short() {
					t.Skip("100 MiB blob in -short mode")
				}
				t.Parallel()
				blobRoundTrip(t, m.keys, size)
			})
		}
	}
}

// blobRoundTrip streams size pseudo-random bytes through a BlobWriter into
// a file and back through OpenBlob, in constant memory, comparing hashes.
func blobRoundTrip(t *testing.T, k *Keys, size int64) {
	path := filepath.Join(t.TempDir(), "blob")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id := NewBlobID()
	w, err := NewBlobWriter(k, id, f)
	if err != nil {
		t.Fatal(err)
	}
	// An odd buffer size makes writes straddle chunk boundaries.
	buf := make([]byte, 7919)
	if size >= 100*mib {
		buf = make([]byte, mib)
	}
	plainHash := sha256.New()
	n, err := io.CopyBuffer(w, io.TeeReader(io.LimitReader(prng(uint64(size)), size), plainHash), buf)
	if err != nil || n != size {
		t.Fatalf("writing the blob: %d bytes, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ref := w.Ref()
	if ref.ID != id {
		t.Errorf("ref ID %s, want %s", ref.ID, id)
	}

	// The ref describes the stored bytes exactly.
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != ref.Size {
		t.Errorf("ref says %d bytes, the file has %d", ref.Size, st.Size())
	}
	storedHash := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(storedHash, f, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storedHash.Sum(nil), ref.SHA256[:]) {
		t.Error("ref SHA-256 is not the hash of the stored bytes")
	}

	// Stored form: the plaintext itself, or an age file of the expected
	// size for an X25519 recipient.
	if k.encrypting() {
		head := make([]byte, 4096)
		hn, _ := f.ReadAt(head, 0)
		head = head[:hn]
		if !bytes.HasPrefix(head, []byte("age-encryption.org/v1\n-> X25519 ")) {
			t.Fatalf("stored blob does not start like an X25519 age file: %q", head[:min(len(head), 40)])
		}
		want := int64(ageHeaderLen(t, head)) + ageNonce + size + ageTag*chunksFor(size)
		if ref.Size != want {
			t.Errorf("encrypted size %d, want header+nonce+%d+%d tags = %d", ref.Size, size, chunksFor(size), want)
		}
	} else {
		if ref.Size != size || !bytes.Equal(storedHash.Sum(nil), plainHash.Sum(nil)) {
			t.Error("with encryption off the stored blob is not the plaintext")
		}
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	r, err := OpenBlob(k, f, ref)
	if err != nil {
		t.Fatal(err)
	}
	gotHash := sha256.New()
	n, err = io.CopyBuffer(gotHash, r, buf)
	if err != nil {
		t.Fatalf("reading the blob back: %v", err)
	}
	if n != size || !bytes.Equal(gotHash.Sum(nil), plainHash.Sum(nil)) {
		t.Fatalf("read back %d bytes that differ from the %d written", n, size)
	}
}

func TestBlobRefBeforeClose(t *testing.T) {
	w, err := NewBlobWriter(testKeys(t, EncryptionAge), NewBlobID(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Ref before Close did not panic")
		}
	}()
	w.Ref()
}

// TestBlobReaders reads blobs through readers that return data with
// io.EOF, one byte at a time, or half of what is asked: the size and hash
// checks must hold for every legal io.Reader behaviour.
func TestBlobReaders(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"plain":   func(r io.Reader) io.Reader { return r },
		"dataerr": iotest.DataErrReader,
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
	}
	for _, m := range blobModes(t) {
		for _, size := range []int{0, 100, ageChunk, 2*ageChunk + 5} {
			pt := prngBytes(uint64(size), size)
			blob, ref := sealBlob(t, m.keys, pt)
			other, _ := sealBlob(t, m.keys, prngBytes(99, size))
			for rname, wrap := range readers {
				t.Run(fmt.Sprintf("%s/%d/%s", m.name, size, rname), func(t *testing.T) {
					r, err := OpenBlob(m.keys, wrap(bytes.NewReader(blob)), ref)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("genuine blob: %d bytes, %v", len(got), err)
					}
					// Same size, other content: only the hash tells.
					if bytes.Equal(other, blob) {
						return // two empty plaintext blobs
					}
					if r, err = OpenBlob(m.keys, wrap(bytes.NewReader(other)), ref); err == nil {
						_, err = io.ReadAll(r)
					}
					if len(other) == len(blob) {
						wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String())
					} else {
						wantErr(t, err, errs(ErrBlobCorrupt, ErrBlobTruncated), ref.ID.String())
					}
					if len(blob) > 0 {
						if r, err = OpenBlob(m.keys, wrap(bytes.NewReader(blob[:len(blob)-1])), ref); err == nil {
							_, err = io.ReadAll(r)
						}
						wantErr(t, err, errs(ErrBlobTruncated), "ends after")
					}
				})
			}
		}
	}
}

// TestBlobReadError: an error of the relay's reader reaches the caller.
func TestBlobReadError(t *testing.T) {
	for _, m := range blobModes(t) {
		blob, ref := sealBlob(t, m.keys, prngBytes(1, 3*ageChunk))
		_, err := openAll(m.keys, blob, ref) // sanity
		if err != nil {
			t.Fatal(err)
		}
		r, err := OpenBlob(m.keys, iotest.TimeoutReader(bytes.NewReader(blob)), ref)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if !errors.Is(err, iotest.ErrTimeout) {
			t.Errorf("%s: error %v, want the reader's %v", m.name, err, iotest.ErrTimeout)
		}
		// A failing relay is not a tampering one.
		if errors.Is(err, ErrBlobCorrupt) || errors.Is(err, ErrBlobTruncated) {
			t.Errorf("%s: a read error reported as %v", m.name, err)
		}
	}

	// The same through BlobReaderAt, when opening and when reading.
	k := testKeys(t, EncryptionAge)
	blob, ref := sealBlob(t, k, prngBytes(1, 3*ageChunk))
	failAt := int64(-1)
	src := readerAtFunc(func(p []byte, off int64) (int, error) {
		if failAt >= 0 && off+int64(len(p)) > failAt {
			return 0, iotest.ErrTimeout
		}
		return bytes.NewReader(blob).ReadAt(p, off)
	})
	failAt = 0
	_, _, err := BlobReaderAt(k, ref.ID, src, ref.Size)
	if !errors.Is(err, iotest.ErrTimeout) || errors.Is(err, ErrBlobCorrupt) {
		t.Errorf("opening through a failing ReaderAt: %v", err)
	}
	failAt = -1
	ra, _, err := BlobReaderAt(k, ref.ID, src, ref.Size)
	if err != nil {
		t.Fatal(err)
	}
	failAt = int64(len(blob)) - 2*ageEncChunk // inside chunk 1
	_, err = ra.ReadAt(make([]byte, 10), ageChunk+5)
	if !errors.Is(err, iotest.ErrTimeout) || errors.Is(err, ErrBlobCorrupt) {
		t.Errorf("reading through a failing ReaderAt: %v", err)
	}
}

type readerAtFunc func(p []byte, off int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func TestBlobReaderAt(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	pt := prngBytes(7, 5*mib+123)
	blob, ref := sealBlob(t, k, pt)
	src := &countingReaderAt{r: bytes.NewReader(blob)}
	ra, size, err := BlobReaderAt(k, ref.ID, src, ref.Size)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(pt)) {
		t.Fatalf("plaintext size %d, want %d", size, len(pt))
	}
	// Opening reads the header and authenticates the final chunk, no more.
	if n := src.n.Load(); n > 4096+ageEncChunk {
		t.Errorf("opening read %d bytes of a %d-byte blob", n, len(blob))
	}

	type span struct{ off, n int64 }
	spans := []span{
		{0, 1}, {0, 0}, {0, ageChunk}, {ageChunk - 1, 2}, {ageChunk, 1},
		{ageChunk - 10, ageChunk + 20}, {3*ageChunk - 1, 1}, {size - 1, 1},
		{size - 200, 200}, {size - 200, 1000}, {size, 10}, {0, size},
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 200 {
		off := rng.Int64N(size)
		spans = append(spans, span{off, rng.Int64N(3*ageChunk) + 1})
	}
	for _, s := range spans {
		src.n.Store(0)
		p := make([]byte, s.n)
		n, err := ra.ReadAt(p, s.off)
		want := min(s.n, size-s.off)
		if int64(n) != want {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, want %d (%v)", s.n, s.off, n, want, err)
		}
		switch {
		case err == io.EOF && s.off+s.n >= size:
		case err == nil && s.off+s.n < size:
		case err == nil && s.n == 0:
		default:
			t.Fatalf("ReadAt(%d bytes at %d): %v", s.n, s.off, err)
		}
		if !bytes.Equal(p[:n], pt[s.off:s.off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d) returned other bytes than were written", s.n, s.off)
		}
		// Only the chunks the range touches are read (the last one read
		// may be cached).
		var chunks int64
		if n > 0 {
			chunks = (s.off+int64(n)-1)/ageChunk - s.off/ageChunk + 1
		}
		if got := src.n.Load(); got > chunks*ageEncChunk {
			t.Fatalf("ReadAt(%d bytes at %d) read %d bytes of the blob; its %d chunks are %d bytes",
				s.n, s.off, got, chunks, chunks*ageEncChunk)
		}
	}

	// A small range of a fresh reader costs a few chunks, not the blob.
	src.n.Store(0)
	ra, _, err = BlobReaderAt(k, ref.ID, src, ref.Size)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if _, err := ra.ReadAt(p, 2*mib+ageChunk-50); err != nil {
		t.Fatal(err)
	}
	if n := src.n.Load(); n > 4096+3*ageEncChunk || n > int64(len(blob))/10 {
		t.Errorf("reading 100 bytes read %d of the %d-byte blob", n, len(blob))
	}

	// Concurrent readers see the right bytes (run with -race).
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(g), 3))
			for range 20 {
				off := rng.Int64N(size)
				p := make([]byte, rng.Int64N(2*ageChunk)+1)
				n, err := ra.ReadAt(p, off)
				if err != nil && err != io.EOF {
					t.Errorf("concurrent ReadAt: %v", err)
					return
				}
				if !bytes.Equal(p[:n], pt[off:off+int64(n)]) {
					t.Errorf("concurrent ReadAt at %d returned other bytes", off)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBlobReaderAtOff(t *testing.T) {
	for _, k := range []*Keys{nil, testKeys(t, EncryptionOff)} {
		pt := prngBytes(3, 3*ageChunk)
		blob, ref := sealBlob(t, k, pt)
		ra, size, err := BlobReaderAt(k, ref.ID, bytes.NewReader(blob), ref.Size)
		if err != nil || size != int64(len(pt)) {
			t.Fatalf("BlobReaderAt: %d, %v", size, err)
		}
		p := make([]byte, 1000)
		if _, err := ra.ReadAt(p, ageChunk-500); err != nil || !bytes.Equal(p, pt[ageChunk-500:ageChunk+500]) {
			t.Fatalf("ReadAt with encryption off: %v", err)
		}
	}
}

func TestBlobReaderAtDetects(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	pt := prngBytes(11, 4*ageChunk+300)
	blob, ref := sealBlob(t, k, pt)
	ps := ageHeaderLen(t, blob) + ageNonce
	chunk := func(i int) int { return ps + i*ageEncChunk }

	readAt := func(data []byte, size int64, off int64) error {
		ra, _, err := BlobReaderAt(k, ref.ID, bytes.NewReader(data), size)
		if err != nil {
			return err
		}
		p := make([]byte, 10)
		_, err = ra.ReadAt(p, off)
		return err
	}

	flipped := bytes.Clone(blob)
	flipped[chunk(2)+100] ^= 1
	if err := readAt(flipped, ref.Size, 0); err != nil {
		t.Errorf("an intact chunk of a damaged blob: %v", err)
	}
	wantErr(t, readAt(flipped, ref.Size, 2*ageChunk+5), errs(ErrBlobCorrupt), ref.ID.String(), "failed authentication")

	swapped := bytes.Clone(blob)
	copy(swapped[chunk(1):chunk(2)], blob[chunk(2):chunk(3)])
	copy(swapped[chunk(2):chunk(3)], blob[chunk(1):chunk(2)])
	wantErr(t, readAt(swapped, ref.Size, ageChunk+5), errs(ErrBlobCorrupt), "failed authentication")
	wantErr(t, readAt(swapped, ref.Size, 2*ageChunk+5), errs(ErrBlobCorrupt), "failed authentication")

	lastFlipped := bytes.Clone(blob)
	lastFlipped[len(blob)-1] ^= 0x80
	wantErr(t, readAt(lastFlipped, ref.Size, 0), errs(ErrBlobCorrupt), "failed authentication")

	// Truncated: the source is shorter than its record says, or the size
	// given is the truncated one (no longer a valid STREAM length or the
	// final chunk fails to authenticate as final).
	wantErr(t, readAt(blob[:len(blob)-10], ref.Size, 0), errs(ErrBlobTruncated), ref.ID.String())
	for _, cut := range []int{chunk(4), chunk(3), chunk(3) + 1, len(blob) - 1, ps, ps - 5, 20} {
		wantErr(t, readAt(blob[:cut], int64(cut), 0), errs(ErrBlobCorrupt, ErrBlobTruncated), ref.ID.String())
	}

	other := testKeys(t, EncryptionAge)
	otherBlob, _ := sealBlob(t, other, pt)
	wantErr(t, readAt(otherBlob, int64(len(otherBlob)), 0), errs(ErrBlobCorrupt), "not encrypted for this repository")
	wantErr(t, readAt(pt, int64(len(pt)), 0), errs(ErrBlobCorrupt), ref.ID.String())
}

// blobCuts returns the points at which TestBlobTruncated cuts a blob whose
// payload starts at ps: inside the header, the nonce, at and around every
// chunk boundary and inside the last tag. The second result marks the
// chunk boundaries.
func blobCuts(blobLen, ps int) (cuts []int, boundary map[int]bool) {
	hl := ps - ageNonce
	cuts = []int{0, 1, 10, 21, 22, hl / 2, hl - 2, hl - 1, hl, hl + 8, ps - 1}
	boundary = map[int]bool{}
	for b := ps; b < blobLen; b += ageEncChunk {
		boundary[b] = true
		cuts = append(cuts, b, b+1, b+ageEncChunk/2, b+ageEncChunk-ageTag, b+ageEncChunk-1)
	}
	cuts = append(cuts, blobLen-ageTag, blobLen-ageTag+1, blobLen-1)
	var out []int
	seen := map[int]bool{}
	for _, c := range cuts {
		if c >= 0 && c < blobLen && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, boundary
}

// saysTruncated reports whether an error message says data is missing.
func saysTruncated(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "truncated") || strings.Contains(err.Error(), "ends "))
}

func TestBlobTruncated(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	for _, size := range []int{0, 1000, ageChunk, 2*ageChunk + 1000, 3 * ageChunk} {
		pt := prngBytes(uint64(size), size)
		blob, ref := sealBlob(t, k, pt)
		ps := ageHeaderLen(t, blob) + ageNonce
		cuts, boundary := blobCuts(len(blob), ps)
		for _, cut := range cuts {
			t.Run(fmt.Sprintf("%d/cut%d", size, cut), func(t *testing.T) {
				trunc := blob[:cut]
				// (a) The record's ref: the size check says how much is
				// missing.
				got, err := openAll(k, trunc, ref)
				wantErr(t, err, errs(ErrBlobTruncated), ref.ID.String(), fmt.Sprintf("ends after %d of its %d bytes", cut, len(blob)))
				if err == nil {
					t.Errorf("accepted %d bytes", len(got))
				}
				// (b) A ref forged over the truncated bytes: age's
				// authenticated end of stream catches it.
				fake := refOver(ref.ID, trunc)
				_, err = openAll(k, trunc, fake)
				if boundary[cut] {
					wantErr(t, err, errs(ErrBlobTruncated), ref.ID.String(), "ends in the middle")
				} else {
					wantErr(t, err, errs(ErrBlobTruncated, ErrBlobCorrupt), ref.ID.String())
					if !saysTruncated(err) {
						t.Errorf("error %q does not say the blob may be truncated", err)
					}
				}
			})
		}
	}

	// Encryption off: the record's size and hash are all there is.
	for _, k := range []*Keys{nil, testKeys(t, EncryptionOff)} {
		pt := prngBytes(5, 2*ageChunk)
		blob, ref := sealBlob(t, k, pt)
		for _, cut := range []int{0, 1, ageChunk, len(blob) - 1} {
			_, err := openAll(k, blob[:cut], ref)
			wantErr(t, err, errs(ErrBlobTruncated), fmt.Sprintf("ends after %d of its %d bytes", cut, len(blob)))
		}
	}
}

func TestBlobTooLong(t *testing.T) {
	for _, m := range blobModes(t) {
		for _, size := range []int{ageChunk + 7, 2 * ageChunk} {
			blob, ref := sealBlob(t, m.keys, prngBytes(2, size))
			long := append(bytes.Clone(blob), 'x')
			_, err := openAll(m.keys, long, ref)
			wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String(), "longer than")
			if !m.keys.encrypting() {
				continue
			}
			// A byte after age's final chunk, with a forged ref: a short
			// final chunk no longer authenticates, a full one is followed
			// by trailing data.
			_, err = openAll(m.keys, long, refOver(ref.ID, long))
			if size%ageChunk == 0 {
				wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String(), "trailing data")
			} else {
				wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String(), "failed authentication")
			}
			// A whole extra chunk after the final one.
			extra := append(bytes.Clone(blob), blob[len(blob)-ageEncChunk:]...)
			_, err = openAll(m.keys, extra, refOver(ref.ID, extra))
			wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String())
		}
	}
}

// flipPositions returns the byte positions TestBlobBitFlip alters in a
// blob whose payload starts at ps: all of the header and nonce, the first
// and last bytes of every chunk (its tag), and a sample in between.
func flipPositions(blobLen, ps int) []int {
	seen := map[int]bool{}
	var out []int
	add := func(p int) {
		if p >= 0 && p < blobLen && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for p := range ps + 8 {
		add(p)
	}
	for b := ps; b < blobLen; b += ageEncChunk {
		end := min(b+ageEncChunk, blobLen)
		for p := b; p < b+24; p++ {
			add(p)
		}
		for p := end - ageTag - 8; p < end; p++ {
			add(p)
		}
	}
	for p := 0; p < blobLen; p += 251 {
		add(p)
	}
	add(blobLen - 1)
	return out
}

func TestBlobBitFlip(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	pt := prngBytes(3, 2*ageChunk+1000) // three chunks
	blob, ref := sealBlob(t, k, pt)
	ps := ageHeaderLen(t, blob) + ageNonce
	positions := flipPositions(len(blob), ps)
	if len(positions) < ps+3*40 {
		t.Fatalf("only %d positions", len(positions))
	}
	bad := bytes.Clone(blob)
	for i, p := range positions {
		bit := byte(1) << (i % 8)
		bad[p] ^= bit
		for _, forged := range []bool{false, true} {
			r := ref
			if forged {
				r = refOver(ref.ID, bad)
			}
			got, err := openAll(k, bad, r)
			if err == nil {
				t.Fatalf("flipping bit %#02x at %d (forged ref %v) went unnoticed", bit, p, forged)
			}
			if !errors.Is(err, ErrBlobCorrupt) || !strings.Contains(err.Error(), ref.ID.String()) {
				t.Fatalf("flipping bit %#02x at %d (forged ref %v): %v", bit, p, forged, err)
			}
			if bytes.Equal(got, pt) {
				t.Fatalf("flipping bit %#02x at %d: error, but all of the plaintext returned", bit, p)
			}
		}
		bad[p] ^= bit
	}
	if !bytes.Equal(bad, blob) {
		t.Fatal("test bug: blob not restored")
	}

	// Encryption off: the hash catches any flipped bit.
	for _, k := range []*Keys{nil, testKeys(t, EncryptionOff)} {
		blob, ref := sealBlob(t, k, pt)
		for _, p := range []int{0, 1, ageChunk, len(blob) / 2, len(blob) - 1} {
			bad := bytes.Clone(blob)
			bad[p] ^= 0x10
			_, err := openAll(k, bad, ref)
			wantErr(t, err, errs(ErrBlobCorrupt), "does not match the SHA-256")
		}
	}
}

func TestBlobChunksRearranged(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	pt := prngBytes(4, 4*ageChunk+100) // four full chunks and a short one
	blob, ref := sealBlob(t, k, pt)
	ps := ageHeaderLen(t, blob) + ageNonce
	hdr := blob[:ps]
	var chunks [][]byte
	for b := ps; b < len(blob); b += ageEncChunk {
		chunks = append(chunks, blob[b:min(b+ageEncChunk, len(blob))])
	}
	if len(chunks) != 5 {
		t.Fatalf("%d chunks, want 5", len(chunks))
	}
	otherBlob, _ := sealBlob(t, k, prngBytes(5, 4*ageChunk+100))
	otherChunk1 := otherBlob[ps+ageEncChunk : ps+2*ageEncChunk]
	otherHdr := otherBlob[:ps]

	build := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{hdr}, parts...), nil) }
	c := chunks
	cases := map[string][]byte{
		"swap 0 and 1":             build(c[1], c[0], c[2], c[3], c[4]),
		"swap 2 and 3":             build(c[0], c[1], c[3], c[2], c[4]),
		"duplicate 0 over 1":       build(c[0], c[0], c[2], c[3], c[4]),
		"drop 1":                   build(c[0], c[2], c[3], c[4]),
		"final chunk moved up":     build(c[0], c[1], c[2], c[4], c[3]),
		"final chunk dropped+dup":  build(c[0], c[1], c[2], c[3], c[3]),
		"chunk of another blob":    build(c[0], otherChunk1, c[2], c[3], c[4]),
		"header of another blob":   bytes.Join([][]byte{otherHdr, c[0], c[1], c[2], c[3], c[4]}, nil),
		"body under other header":  bytes.Join([][]byte{otherHdr, otherBlob[ps : ps+ageEncChunk], c[1], c[2], c[3], c[4]}, nil),
		"final chunk only":         build(c[4]),
		"first chunk + final only": build(c[0], c[4]),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(data, blob) {
				t.Fatal("test bug: the blob is unchanged")
			}
			_, err := openAll(k, data, refOver(ref.ID, data))
			wantErr(t, err, errs(ErrBlobCorrupt, ErrBlobTruncated), ref.ID.String())
			// And with the record's ref, which the hash alone refutes.
			_, err = openAll(k, data, ref)
			wantErr(t, err, errs(ErrBlobCorrupt, ErrBlobTruncated), ref.ID.String())
		})
	}
	// Swapped chunks are an authentication failure, not a truncation.
	_, err := openAll(k, cases["swap 0 and 1"], refOver(ref.ID, cases["swap 0 and 1"]))
	wantErr(t, err, errs(ErrBlobCorrupt), "failed authentication")
}

func TestBlobSwappedWhole(t *testing.T) {
	for _, m := range blobModes(t) {
		t.Run(m.name, func(t *testing.T) {
			a, refA := sealBlob(t, m.keys, prngBytes(1, 1000))
			b, refB := sealBlob(t, m.keys, prngBytes(2, 1000))
			if len(a) != len(b) {
				t.Fatalf("test bug: sizes %d and %d", len(a), len(b))
			}
			got, err := openAll(m.keys, b, refA)
			wantErr(t, err, errs(ErrBlobCorrupt), refA.ID.String(), "does not match the SHA-256", "swapped")
			if err == nil {
				t.Fatalf("accepted blob B (%d bytes) for A", len(got))
			}
			// A longer blob of the same repository.
			c, _ := sealBlob(t, m.keys, prngBytes(3, 5000))
			_, err = openAll(m.keys, c, refB)
			wantErr(t, err, errs(ErrBlobCorrupt), refB.ID.String(), "longer than")
			// A shorter one.
			d, _ := sealBlob(t, m.keys, prngBytes(4, 10))
			_, err = openAll(m.keys, d, refB)
			wantErr(t, err, errs(ErrBlobTruncated), refB.ID.String(), "ends after")
		})
	}
}

func TestBlobOtherRepository(t *testing.T) {
	mine := testKeys(t, EncryptionAge)
	theirs := testKeys(t, EncryptionAge)
	pt := prngBytes(6, ageChunk+1)
	blob, ref := sealBlob(t, theirs, pt)

	got, err := openAll(mine, blob, ref)
	wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String(), "not encrypted for this repository")
	if got != nil {
		t.Errorf("returned %d bytes", len(got))
	}
	_, _, err = BlobReaderAt(mine, ref.ID, bytes.NewReader(blob), ref.Size)
	wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String(), "not encrypted for this repository")

	// A plaintext blob (as a repository with encryption off writes) put in
	// an encrypted repository.
	plain, pref := sealBlob(t, nil, []byte("age-encryption.org/v1\n-> X25519 abc\n"))
	_, err = openAll(mine, plain, pref)
	wantErr(t, err, errs(ErrBlobCorrupt), pref.ID.String())
	plain, pref = sealBlob(t, nil, pt)
	_, err = openAll(mine, plain, pref)
	wantErr(t, err, errs(ErrBlobCorrupt), pref.ID.String())
}

// failWriter accepts limit bytes, then fails.
type failWriter struct{ limit int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errDiskFull
	}
	w.limit -= len(p)
	return len(p), nil
}

// TestBlobWriteError: a failing destination fails the blob, which then has
// no ref.
func TestBlobWriteError(t *testing.T) {
	for _, m := range blobModes(t) {
		for _, limit := range []int{0, 100, ageChunk + 500} {
			t.Run(fmt.Sprintf("%s/%d", m.name, limit), func(t *testing.T) {
				w, err := NewBlobWriter(m.keys, NewBlobID(), &failWriter{limit: limit})
				if err != nil {
					if !errors.Is(err, errDiskFull) {
						t.Fatalf("NewBlobWriter: %v", err)
					}
					return
				}
				_, werr := w.Write(prngBytes(1, 3*ageChunk))
				cerr := w.Close()
				if !errors.Is(werr, errDiskFull) && !errors.Is(cerr, errDiskFull) {
					t.Fatalf("Write: %v, Close: %v", werr, cerr)
				}
				if cerr == nil {
					t.Fatal("Close succeeded after a failed write")
				}
				defer func() {
					if recover() == nil {
						t.Error("a failed blob has a ref")
					}
				}()
				w.Ref()
			})
		}
	}
}

// TestUnhashedBlob: a blob written without its SHA-256 (a chunk blob) has
// a Ref with the size and an all-zero hash; it reads back whole and at
// random, and age's authentication still catches a flipped bit, a
// truncation and an extension, which the size check reports as well.
func TestUnhashedBlob(t *testing.T) {
	k := testKeys(t, EncryptionAge)
	pt := prngBytes(9, 2*ageChunk+777)
	blob, ref := sealBlobWith(t, NewUnhashedBlobWriter, k, pt)
	if ref.SHA256 != [32]byte{} || ref.Size != int64(len(blob)) {
		t.Fatalf("ref %+v for a blob of %d bytes, want its size and no hash", ref, len(blob))
	}
	got, err := openAll(k, blob, ref)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, pt))
	}
	ra, size, err := BlobReaderAt(k, ref.ID, bytes.NewReader(blob), ref.Size)
	if err != nil || size != int64(len(pt)) {
		t.Fatalf("BlobReaderAt: size %d, %v", size, err)
	}
	part := make([]byte, 1000)
	if _, err := ra.ReadAt(part, ageChunk-500); err != nil || !bytes.Equal(part, pt[ageChunk-500:ageChunk+500]) {
		t.Fatalf("ReadAt across a chunk boundary: %v", err)
	}
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 0x04
	_, err = openAll(k, bad, ref)
	wantErr(t, err, errs(ErrBlobCorrupt), ref.ID.String())
	_, err = openAll(k, blob[:len(blob)-10], ref)
	wantErr(t, err, errs(ErrBlobTruncated), ref.ID.String())
	_, err = openAll(k, append(bytes.Clone(blob), 0), ref)
	wantErr(t, err, errs(ErrBlobCorrupt), "longer than")
}
