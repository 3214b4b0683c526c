package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"log/slog"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// Getter is the part of relay.Relay that downloads need.
type Getter interface {
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error
}

// Downloader reads file content from blobs on the relay. It is safe for
// concurrent use.
type Downloader struct {
	relay Getter
	keys  *crypto.Keys
	log   *slog.Logger
	bufs  bufPool // of GetChunks
}

// NewDownloader returns a downloader reading from r. keys nil means a
// repository without a secret; log nil discards everything.
func NewDownloader(r Getter, keys *crypto.Keys, log *slog.Logger) *Downloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Downloader{relay: r, keys: keys, log: log}
}

// GetPack reads the pack blob ref, written by node writer, once and
// splits its plaintext into files: dst(i) is called, in order, when the
// content of files[i] begins, and the writer it returns receives that
// content and is closed by GetPack. files must all name ref, be in
// increasing order of offset and not overlap; they must lie within the
// pack. Any error, notably one wrapping crypto.ErrBlobCorrupt or
// crypto.ErrBlobTruncated, means that none of the content written is to
// be trusted: install the files only when GetPack returns nil.
func (d *Downloader) GetPack(ctx context.Context, ref crypto.BlobRef, writer crypto.NodeID, files []proto.PackRef, dst func(i int) (io.WriteCloser, error)) (err error) {
	var end int64
	for i, f := range files {
		switch {
		case f.Blob != ref:
			return fmt.Errorf("pack %s: file %d refers to blob %s", ref.ID, i, f.Blob.ID)
		case f.Offset < 0 || f.Length < 1 || f.Offset > maxInt64-f.Length:
			return fmt.Errorf("pack %s: file %d: bad range offset %d length %d", ref.ID, i, f.Offset, f.Length)
		case f.Offset < end:
			return fmt.Errorf("pack %s: file %d at offset %d overlaps or precedes the file before it (ending at %d)", ref.ID, i, f.Offset, end)
		}
		end = f.Offset + f.Length
	}
	s := &splitter{files: files, dst: dst}
	defer func() {
		if cerr := s.closeCurrent(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := d.stream(ctx, writer, ref, s); err != nil {
		return err
	}
	if s.next < len(files) {
		return fmt.Errorf("pack %s: file %d lies past the end of the pack's %d bytes of plaintext", ref.ID, s.next, s.pos)
	}
	d.log.Debug("pack fetched", "blob", ref.ID, "files", len(files))
	return nil
}

// GetParts reads the blobs refs, written by node writer, in order and
// writes their plaintext to dst. As with GetPack, dst holds trustworthy
// content only when GetParts returns nil.
func (d *Downloader) GetParts(ctx context.Context, writer crypto.NodeID, refs []crypto.BlobRef, dst io.Writer) error {
	for i, ref := range refs {
		if err := d.stream(ctx, writer, ref, dst); err != nil {
			return fmt.Errorf("part %d of %d: %w", i+1, len(refs), err)
		}
	}
	d.log.Debug("parts fetched", "parts", len(refs))
	return nil
}

// stream writes the verified plaintext of blob ref to w. When the relay
// calls back more than once, each call reads the blob from its start: the
// plaintext already written is compared (by hash) with the new one and
// only the rest is written.
func (d *Downloader) stream(ctx context.Context, writer crypto.NodeID, ref crypto.BlobRef, w io.Writer) error {
	out := &hashWriter{w: w, h: sha256.New()}
	return d.relay.Get(ctx, layout.BlobName(writer, ref.ID), 0, -1, func(r io.Reader) error {
		pr, err := crypto.OpenBlob(d.keys, ctxReader{ctx, r}, ref)
		if err != nil {
			return err
		}
		if out.n > 0 {
			h := sha256.New()
			n, err := io.CopyN(h, pr, out.n)
			if err != nil {
				if err == io.EOF {
					return fmt.Errorf("%w: blob %s ends after %d bytes of plaintext on a second read, %d on the first", crypto.ErrBlobCorrupt, ref.ID, n, out.n)
				}
				return err
			}
			if !bytes.Equal(h.Sum(nil), out.h.Sum(nil)) {
				return fmt.Errorf("%w: blob %s changed between two reads", crypto.ErrBlobCorrupt, ref.ID)
			}
		}
		_, err = io.Copy(out, pr)
		return err
	})
}

// hashWriter counts and hashes what w accepted.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// splitter writes a pack's plaintext to the files' writers.
type splitter struct {
	files []proto.PackRef
	dst   func(int) (io.WriteCloser, error)
	pos   int64          // plaintext offset of the next byte
	next  int            // index of the current or next file
	cur   io.WriteCloser // the writer of files[next], once it began
}

func (s *splitter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if s.next == len(s.files) {
			s.pos += int64(len(p)) // after the last file: read on to verify
			break
		}
		f := s.files[s.next]
		if s.pos < f.Offset { // a gap: skip
			k := int(min(int64(len(p)), f.Offset-s.pos))
			p = p[k:]
			s.pos += int64(k)
			continue
		}
		if s.cur == nil {
			w, err := s.dst(s.next)
			if err != nil {
				return total - len(p), fmt.Errorf("pack file %d: %w", s.next, err)
			}
			if w == nil {
				return total - len(p), fmt.Errorf("pack file %d: no writer", s.next)
			}
			s.cur = w
		}
		k := int(min(int64(len(p)), f.Offset+f.Length-s.pos))
		n, err := s.cur.Write(p[:k])
		p = p[n:]
		s.pos += int64(n)
		if err == nil && n < k {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total - len(p), fmt.Errorf("pack file %d: %w", s.next, err)
		}
		if s.pos == f.Offset+f.Length {
			if err := s.closeCurrent(); err != nil {
				return total - len(p), err
			}
			s.next++
		}
	}
	return total, nil
}

func (s *splitter) closeCurrent() error {
	if s.cur == nil {
		return nil
	}
	w := s.cur
	s.cur = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("pack file %d: %w", s.next, err)
	}
	return nil
}
