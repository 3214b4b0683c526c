package bench

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"

	"github.com/escalefs/escalefs/crypto"
)

const (
	streamSize = 1 << 30 // plaintext per operation
	chunkSize  = 1 << 20 // the reusable source buffer, and the copy buffer
)

// repeatReader yields size bytes by cycling through buf: a 1 GiB plaintext
// stream in 1 MiB of memory. Each Read is one copy out of buf, as a read
// from the page cache would be. It has no WriteTo, so that io.CopyBuffer
// drives every benchmark below through the same loop.
type repeatReader struct {
	buf  []byte
	left int64
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	r.left -= int64(n)
	return n, nil
}

// sink discards what is written to it, like io.Discard but without
// ReadFrom, so that io.CopyBuffer uses the buffer it is given rather than
// io.Discard's own 8 KiB one. Every 64 MiB it samples the heap (live and
// not yet collected objects, the whole process's) to report the largest
// seen: allocations per operation (B/op) say how much garbage is made,
// the peak heap whether memory stays constant.
type sink struct {
	n      int64
	peak   uint64
	sample []metrics.Sample
}

func newSink() *sink {
	runtime.GC() // start from the live heap, not the previous benchmark's garbage
	s := &sink{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	s.measure()
	return s
}

func (s *sink) Write(p []byte) (int, error) {
	before := s.n
	s.n += int64(len(p))
	if s.n>>26 != before>>26 {
		s.measure()
	}
	return len(p), nil
}

func (s *sink) measure() {
	metrics.Read(s.sample)
	s.peak = max(s.peak, s.sample[0].Value.Uint64())
}

func (s *sink) report(b *testing.B) {
	b.ReportMetric(float64(s.peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkCrypto measures the blob encryption of package crypto beside a
// plain io.Copy of the same bytes, each in 1 MiB reads and writes:
//
//   - seal-1GiB/escalefs: NewBlobWriter into a discarding writer, fed 1 GiB
//     from a 1 MiB buffer: age (ChaCha20-Poly1305 in 64 KiB chunks) plus the
//     SHA-256 of the ciphertext that goes into the blob's record.
//   - seal-1GiB/io.Copy: the same source copied to the same writer.
//   - open-1GiB/escalefs: OpenBlob over a file holding the sealed 1 GiB
//     (sealed once, before the timer starts), read to the end: the file
//     read, the size and SHA-256 check, age's decryption and authentication.
//   - open-1GiB/io.Copy: the same file copied to the discarding writer.
//     With enough free memory the file sits in the page cache, so both open
//     figures measure memory and CPU, not the disk.
//
// MB/s is of plaintext for seal and open, and of the bytes copied for
// io.Copy (the ciphertext is 16 bytes per 64 KiB chunk larger). B/op counts
// every allocation; peak-heap-MiB (see sink) shows that memory stays
// constant even where B/op grows with the stream: age's decrypting reader
// allocates a new 64 KiB buffer per chunk, which becomes garbage at once.
func BenchmarkCrypto(b *testing.B) {
	_, keys, err := crypto.NewConfig(rand.Reader, crypto.GenerateKey(), crypto.EncryptionAge, crypto.KDFParams{})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunkSize)
	rand.Read(buf)
	source := func() io.Reader { return &repeatReader{buf: buf, left: streamSize} }
	copyBuf := make([]byte, chunkSize)

	b.Run("seal-1GiB/escalefs", func(b *testing.B) {
		b.SetBytes(streamSize)
		b.ReportAllocs()
		out := newSink()
		for b.Loop() {
			w, err := crypto.NewBlobWriter(keys, crypto.NewBlobID(), out)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(w, source(), copyBuf); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		out.report(b)
	})
	b.Run("seal-1GiB/io.Copy", func(b *testing.B) {
		b.SetBytes(streamSize)
		b.ReportAllocs()
		out := newSink()
		for b.Loop() {
			if n, err := io.CopyBuffer(out, source(), copyBuf); err != nil || n != streamSize {
				b.Fatalf("copied %d bytes: %v", n, err)
			}
		}
		out.report(b)
	})

	// The sealed stream, written once for both open benchmarks.
	sealed := sync.OnceValues(func() (string, crypto.BlobRef) {
		path := filepath.Join(b.TempDir(), "blob")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		w, err := crypto.NewBlobWriter(keys, crypto.NewBlobID(), f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(w, source(), copyBuf); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		return path, w.Ref()
	})
	b.Run("open-1GiB/escalefs", func(b *testing.B) {
		path, ref := sealed()
		b.SetBytes(streamSize)
		b.ReportAllocs()
		out := newSink()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			r, err := crypto.OpenBlob(keys, f, ref)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(out, r, copyBuf)
			f.Close()
			if err != nil || n != streamSize {
				b.Fatalf("opened %d bytes: %v", n, err)
			}
		}
		out.report(b)
	})
	b.Run("open-1GiB/io.Copy", func(b *testing.B) {
		path, ref := sealed()
		b.SetBytes(ref.Size)
		b.ReportAllocs()
		out := newSink()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			// Hiding the file's WriteTo makes io.CopyBuffer read it in
			// 1 MiB reads, as in the other benchmarks.
			n, err := io.CopyBuffer(out, struct{ io.Reader }{f}, copyBuf)
			f.Close()
			if err != nil || n != ref.Size {
				b.Fatalf("copied %d bytes: %v", n, err)
			}
		}
		out.report(b)
	})
}
