package localdir

import (
	"bytes"
	"os"
)

// sparseBlock is the size and alignment of the blocks of zeros that
// SparseWriter leaves as holes: the page and usual file system block.
const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// SparseWriter writes a stream into a file from an offset on, leaving a
// hole wherever a whole aligned block holds only zeros, as cp
// --sparse=auto does: a sparse file stays sparse on every node, whatever
// carried its content. The file must hold nothing from the offset on (a new
// or truncated file). Finish gives the file its length, which a stream
// ending in zeros would not.
type SparseWriter struct {
	f   *os.File
	off int64
}

// NewSparseWriter returns a SparseWriter writing f from off on.
func NewSparseWriter(f *os.File, off int64) *SparseWriter {
	return &SparseWriter{f: f, off: off}
}

// Write writes p at the writer's offset, skipping whole blocks of zeros.
func (w *SparseWriter) Write(p []byte) (int, error) {
	start := 0 // of the bytes not yet written
	for i := 0; i < len(p); {
		n := min(sparseBlock-int((w.off+int64(i))%sparseBlock), len(p)-i)
		if n == sparseBlock && bytes.Equal(p[i:i+n], zeroBlock[:]) {
			if start < i {
				if _, err := w.f.WriteAt(p[start:i], w.off+int64(start)); err != nil {
					w.off += int64(start)
					return start, err
				}
			}
			start = i + n
		}
		i += n
	}
	if start < len(p) {
		if _, err := w.f.WriteAt(p[start:], w.off+int64(start)); err != nil {
			w.off += int64(start)
			return start, err
		}
	}
	w.off += int64(len(p))
	return len(p), nil
}

// Offset is where the next Write goes.
func (w *SparseWriter) Offset() int64 { return w.off }

// Finish sets the file's size to the writer's offset.
func (w *SparseWriter) Finish() error { return w.f.Truncate(w.off) }
