// Package chunks cuts file content into chunks at places the content
// decides (content-defined chunking), so that an edit changes only the
// chunks it touches and an insertion shifts no boundary after it: the
// basis of delta sync (docs/format.md, chunks).
//
// The cutting is restic's Rabin chunker (github.com/restic/chunker), with
// an irreducible polynomial drawn from the repository's secret, so that
// another repository cuts the same content elsewhere; each chunk is named
// by a keyed hash (crypto.ChunkID).
package chunks

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/restic/chunker"

	"github.com/escalefs/escalefs/crypto"
)

// Bounds of a chunk: at least MinSize bytes (but the last), at most
// MaxSize, about AvgSize on average: a cut is looked for from MinSize on,
// and found with probability 2^-avgBits at each byte.
const (
	MinSize  = 512 << 10
	MaxSize  = 8 << 20
	avgBits  = 19
	AvgSize  = MinSize + 1<<avgBits
	bufLimit = MaxSize
)

// Chunk is one chunk of a file's content.
type Chunk struct {
	ID     crypto.ChunkID
	Offset int64 // in the file
	Length int64 // > 0
}

// Chunker cuts content for one repository. It is safe for concurrent use:
// each Split has its own state.
type Chunker struct {
	pol     chunker.Pol
	hash    func() hash.Hash
	segment int64 // SplitAt's segments; 0: segmentSize
}

// New returns the chunker of the repository whose keys are keys (nil: a
// repository without a secret).
func New(keys *crypto.Keys) (*Chunker, error) {
	pol, err := chunker.DerivePolynomial(keys.ChunkerSeed())
	if err != nil {
		return nil, fmt.Errorf("the chunker's polynomial: %w", err)
	}
	return &Chunker{pol: pol, hash: keys.ChunkHasher}, nil
}

// Polynomial is the chunker's polynomial, for the format's test vectors.
func (c *Chunker) Polynomial() uint64 { return uint64(c.pol) }

// Split reads r to its end and calls fn with each chunk and its bytes, in
// order. The bytes are valid only during the call. An empty r has no
// chunk. An error of r or fn ends Split with it.
func (c *Chunker) Split(r io.Reader, fn func(Chunk, []byte) error) error {
	var w walker
	_, err := c.cut(context.Background(), &w, r, 0, func(k Chunk, data []byte) (bool, error) {
		return true, fn(k, data)
	})
	return err
}

// walker holds the buffers of one cutting at a time, reused by the next.
type walker struct {
	ch  *chunker.Chunker
	buf []byte
}

// cut reads r, whose first byte is at offset start of the content, as if a
// chunk began there, and calls fn with each chunk, its ID and its bytes
// (valid during the call), until fn returns false or r ends. It returns
// where the last chunk handed to fn ends.
func (c *Chunker) cut(ctx context.Context, w *walker, r io.Reader, start int64, fn func(Chunk, []byte) (bool, error)) (int64, error) {
	if w.ch == nil {
		w.ch = chunker.NewWithBoundaries(r, c.pol, MinSize, MaxSize)
		w.buf = make([]byte, 0, bufLimit)
	} else {
		w.ch.ResetWithBoundaries(r, c.pol, MinSize, MaxSize)
	}
	w.ch.SetAverageBits(avgBits)
	off := start
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		piece, err := w.ch.Next(w.buf[:0])
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		h := c.hash() // not Reset: the hash without a secret starts with a prefix
		h.Write(piece.Data)
		k := Chunk{Offset: off, Length: int64(piece.Length)}
		h.Sum(k.ID[:0])
		off += k.Length
		if more, err := fn(k, piece.Data); err != nil || !more {
			return off, err
		}
	}
}
