package chunks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	gosync "sync"
)

// segmentSize is how much content one worker of SplitAt cuts at a time.
const segmentSize = 64 << 20

// SplitAt cuts the size bytes of r exactly as Split would, and calls fn
// with each chunk, in order, without its bytes. The content is cut in
// segments, by as many workers as there are CPUs, each starting at its
// segment's start as if a chunk began there.
//
// That is sound because a cut depends only on where the chunk began and
// on the bytes since: two cuttings that once cut at the same place cut
// alike from there on. The true cutting, from offset 0, follows each
// segment's cuts from the first place where they meet; where they do not
// (a run of chunks ended only by MaxSize, as in long runs of one byte),
// the true cutting is carried on alone until they do. An error of r or
// fn, or r ending before size, ends SplitAt with it.
func (c *Chunker) SplitAt(ctx context.Context, r io.ReaderAt, size int64, fn func(Chunk) error) error {
	seg := c.segment
	if seg == 0 {
		seg = segmentSize
	}
	if size <= 0 {
		return nil
	}
	n := int((size + seg - 1) / seg)
	workers := min(runtime.GOMAXPROCS(0), n, 8)
	ctx, cancel := context.WithCancel(ctx)
	var wg gosync.WaitGroup
	defer func() {
		cancel() // the workers stop at their next chunk
		wg.Wait()
	}()

	// Each segment's cutting, delivered in order.
	results := make([]chan cutting, n)
	for i := range results {
		results[i] = make(chan cutting, 1)
	}
	next := make(chan int)
	wg.Go(func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			var w walker // its buffers serve every segment of this worker
			for i := range next {
				start := int64(i) * seg
				results[i] <- c.cutSegment(ctx, &w, r, start, min(start+seg, size), size)
			}
		})
	}

	// The cuttings received, and where each of their chunks starts (the
	// latest segment's, which reaches furthest).
	type at struct{ seg, idx int }
	var cuts [][]Chunk
	starts := make(map[int64]at)
	// reach receives the cuttings of the segments that start at or
	// before p.
	reach := func(p int64) error {
		for len(cuts) < n && int64(len(cuts))*seg <= p {
			var res cutting
			select {
			case res = <-results[len(cuts)]:
			case <-ctx.Done():
				return ctx.Err()
			}
			if res.err != nil {
				return res.err
			}
			for i, k := range res.chunks {
				starts[k.Offset] = at{len(cuts), i}
			}
			cuts = append(cuts, res.chunks)
		}
		return nil
	}
	var pos int64 // the end of the last chunk handed to fn: a true cut
	var alone walker
	for pos < size {
		if err := reach(pos); err != nil {
			return err
		}
		if a, ok := starts[pos]; ok {
			// A cutting that cut here cuts as the true one from here.
			for _, k := range cuts[a.seg][a.idx:] {
				if err := fn(k); err != nil {
					return err
				}
				pos += k.Length
			}
			continue
		}
		// No cutting cut here: carry on alone until one does.
		err := c.walk(ctx, &alone, r, pos, size, func(k Chunk) (bool, error) {
			if err := fn(k); err != nil {
				return false, err
			}
			pos += k.Length
			if err := reach(pos); err != nil {
				return false, err
			}
			_, met := starts[pos]
			return !met, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// cutting is a segment's chunks, cut from its start as if a chunk began
// there, up to the first cut at or past end (or the content's end).
type cutting struct {
	chunks []Chunk
	err    error
}

// cutSegment cuts r from start until a cut at or past end (or size).
func (c *Chunker) cutSegment(ctx context.Context, w *walker, r io.ReaderAt, start, end, size int64) cutting {
	var res cutting
	res.err = c.walk(ctx, w, r, start, size, func(k Chunk) (bool, error) {
		res.chunks = append(res.chunks, k)
		return k.Offset+k.Length < end, nil
	})
	return res
}

// walker holds the buffer of one cutting of a file at a time, reused by
// the next: a block of the file, not a whole chunk, as the chunk's bytes
// are not kept.
type walker struct {
	buf []byte
}

// blockSize is how much of a file a walker reads at a time.
const blockSize = 1 << 20

// walk cuts r from start (as if a chunk began there) to size and calls fn
// with each chunk, with its ID, until fn returns false or the content's
// end, which must be at size. It cuts as Split does (length), block by
// block: the fingerprint and the chunk's hash go on across blocks.
func (c *Chunker) walk(ctx context.Context, w *walker, r io.ReaderAt, start, size int64, fn func(Chunk) (bool, error)) error {
	if w.buf == nil {
		w.buf = make([]byte, blockSize)
	}
	from := start // the chunk's first byte
	h := c.hash()
	var fp uint64
	emit := func(end int64) (bool, error) {
		k := Chunk{Offset: from, Length: end - from}
		h.Sum(k.ID[:0])
		from, fp, h = end, 0, c.hash()
		return fn(k)
	}
	for pos := start; pos < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		block := w.buf[:min(int64(len(w.buf)), size-pos)]
		if n, err := r.ReadAt(block, pos); n < len(block) {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("chunks: %w: the content ends at %d, not %d", io.ErrUnexpectedEOF, pos+int64(n), size)
			}
			return err
		}
		for len(block) > 0 {
			in := pos - from // bytes of the chunk before block
			if in < MinSize {
				n := min(MinSize-in, int64(len(block)))
				h.Write(block[:n])
				block, pos = block[n:], pos+n
				continue
			}
			scan := block[:min(MaxSize-in, int64(len(block)))]
			var n int
			fp, n = c.roll(fp, scan)
			ends := n >= 0 || in+int64(len(scan)) == MaxSize
			if n < 0 {
				n = len(scan) // no cut in this block
			}
			h.Write(block[:n])
			block, pos = block[n:], pos+int64(n)
			if !ends {
				continue
			}
			if more, err := emit(pos); err != nil || !more {
				return err
			}
		}
	}
	if from < size {
		_, err := emit(size) // the last chunk
		return err
	}
	return nil
}
