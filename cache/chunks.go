package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The chunk index tells where this node holds each chunk of file content
// (sync/chunks), so that a pulled file is rebuilt from the chunks it
// already has and only the others are downloaded. Two buckets keep it:
//
//	chunks       chunk ID (32 bytes) ‖ path key → offset, length (uvarints)
//	path-chunks  path key → local stat, then the chunk IDs of the path
//
// and a third tells where the chunks this node pushed are on the relay
// (SetSent, Sent):
//
//	sent-chunks  chunk ID → blob ID (16), SHA-256 (32), size, offset (uvarints)
//
// A path's chunks are replaced as a whole (SetChunks) and dropped with it
// (DropChunks); FindChunk lists the places of one chunk. The index is a
// hint: the file may have changed since, so a reader checks the bytes it
// takes against the chunk's ID.

var (
	bucketChunks     = []byte("chunks")
	bucketPathChunks = []byte("path-chunks")
	bucketSentChunks = []byte("sent-chunks")
)

// SentChunk is where a chunk this node pushed is on the relay: at Offset
// of the plaintext of the chunk blob ID (of Size bytes on the relay, with
// the SHA-256 Sum), named by a record of this node.
type SentChunk struct {
	Blob   [16]byte
	Size   int64
	Sum    [32]byte
	Offset int64
}

// SetSent records where the chunk id that this node pushed is.
func (t *Tx) SetSent(id [32]byte, s SentChunk) error {
	b, err := t.writable(bucketSentChunks, "set sent chunk")
	if err != nil {
		return err
	}
	v := append(append(s.Blob[:0:0], s.Blob[:]...), s.Sum[:]...)
	v = binary.AppendUvarint(v, uint64(s.Size))
	v = binary.AppendUvarint(v, uint64(s.Offset))
	return b.Put(id[:], v)
}

// Sent returns where the chunk id that this node pushed is, if it did.
func (t *Tx) Sent(id [32]byte) (SentChunk, bool, error) {
	b, err := t.bucket(bucketSentChunks)
	if err != nil {
		return SentChunk{}, false, err
	}
	v := b.Get(id[:])
	if v == nil {
		return SentChunk{}, false, nil
	}
	var s SentChunk
	if len(v) < 48 {
		return SentChunk{}, false, fmt.Errorf("cache %s: sent chunk: %w", t.s.path, ErrCorrupt)
	}
	copy(s.Blob[:], v)
	copy(s.Sum[:], v[16:])
	size, n := binary.Uvarint(v[48:])
	off, m := binary.Uvarint(v[48+max(n, 0):])
	if n <= 0 || m <= 0 || 48+n+m != len(v) {
		return SentChunk{}, false, fmt.Errorf("cache %s: sent chunk: %w", t.s.path, ErrCorrupt)
	}
	s.Size, s.Offset = int64(size), int64(off)
	return s, true, nil
}

// ChunkSpan is one chunk of a file: Length bytes at Offset.
type ChunkSpan struct {
	ID     [32]byte
	Offset int64
	Length int64
}

// ChunkPlace is where a chunk is: in the file Path, which had the
// fingerprint Local when it was indexed.
type ChunkPlace struct {
	Path   string
	Offset int64
	Length int64
	Local  LocalStat
}

// SetChunks records the chunks of the file at path, whose fingerprint is
// local, in place of those recorded before.
func (t *Tx) SetChunks(path string, local LocalStat, spans []ChunkSpan) error {
	if err := ValidPath(path); err != nil {
		return err
	}
	if err := t.DropChunks(path); err != nil {
		return err
	}
	idx, err := t.writable(bucketChunks, "set chunks")
	if err != nil {
		return err
	}
	byPath, err := t.writable(bucketPathChunks, "set chunks")
	if err != nil {
		return err
	}
	pk := pathKey(path)
	rec := appendLocal(nil, local)
	for _, s := range spans {
		if s.Offset < 0 || s.Length <= 0 {
			return fmt.Errorf("set chunks of %q: chunk at %d of %d bytes", path, s.Offset, s.Length)
		}
		v := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(s.Offset)), uint64(s.Length))
		if err := idx.Put(chunkKey(s.ID, pk), v); err != nil {
			return err
		}
		rec = append(rec, s.ID[:]...)
	}
	return byPath.Put(pk, rec)
}

// DropChunks forgets the chunks of the file at path.
func (t *Tx) DropChunks(path string) error {
	byPath, err := t.writable(bucketPathChunks, "drop chunks")
	if err != nil {
		return err
	}
	idx, err := t.writable(bucketChunks, "drop chunks")
	if err != nil {
		return err
	}
	pk := pathKey(path)
	rec := byPath.Get(pk)
	if rec == nil {
		return nil
	}
	_, ids, err := splitPathChunks(rec)
	if err != nil {
		return fmt.Errorf("cache %s: chunks of %q: %w", t.s.path, path, err)
	}
	for i := 0; i < len(ids); i += 32 {
		if err := idx.Delete(chunkKey([32]byte(ids[i:i+32]), pk)); err != nil {
			return err
		}
	}
	return byPath.Delete(pk)
}

// FindChunk lists the places of the chunk id, by path.
func (t *Tx) FindChunk(id [32]byte) ([]ChunkPlace, error) {
	idx, err := t.bucket(bucketChunks)
	if err != nil {
		return nil, err
	}
	byPath, err := t.bucket(bucketPathChunks)
	if err != nil {
		return nil, err
	}
	var out []ChunkPlace
	c := idx.Cursor()
	for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
		p, err := keyPath(k[32:])
		if err != nil {
			return nil, err
		}
		off, n := binary.Uvarint(v)
		length, m := binary.Uvarint(v[max(n, 0):])
		if n <= 0 || m <= 0 || n+m != len(v) {
			return nil, fmt.Errorf("cache %s: chunk place in %q: %w", t.s.path, p, ErrCorrupt)
		}
		local, _, err := splitPathChunks(byPath.Get(k[32:]))
		if err != nil {
			return nil, fmt.Errorf("cache %s: chunks of %q: %w", t.s.path, p, err)
		}
		out = append(out, ChunkPlace{Path: p, Offset: int64(off), Length: int64(length), Local: local})
	}
	return out, nil
}

// Chunks returns the chunks recorded for the file at path, in order, and
// the fingerprint it had then; none if there are none.
func (t *Tx) Chunks(path string) (LocalStat, []ChunkSpan, error) {
	if err := ValidPath(path); err != nil {
		return LocalStat{}, nil, err
	}
	idx, err := t.bucket(bucketChunks)
	if err != nil {
		return LocalStat{}, nil, err
	}
	byPath, err := t.bucket(bucketPathChunks)
	if err != nil {
		return LocalStat{}, nil, err
	}
	pk := pathKey(path)
	rec := byPath.Get(pk)
	if rec == nil {
		return LocalStat{}, nil, nil
	}
	local, ids, err := splitPathChunks(rec)
	if err != nil {
		return LocalStat{}, nil, fmt.Errorf("cache %s: chunks of %q: %w", t.s.path, path, err)
	}
	// The chunks are end to end. (A chunk met twice in the file has one
	// place in the index: its last.)
	spans := make([]ChunkSpan, 0, len(ids)/32)
	var off int64
	for i := 0; i < len(ids); i += 32 {
		id := [32]byte(ids[i : i+32])
		v := idx.Get(chunkKey(id, pk))
		_, n := binary.Uvarint(v)
		length, m := binary.Uvarint(v[max(n, 0):])
		if n <= 0 || m <= 0 || n+m != len(v) || length == 0 {
			return LocalStat{}, nil, fmt.Errorf("cache %s: chunk %d of %q: %w", t.s.path, i/32, path, ErrCorrupt)
		}
		spans = append(spans, ChunkSpan{ID: id, Offset: off, Length: int64(length)})
		off += int64(length)
	}
	return local, spans, nil
}

func chunkKey(id [32]byte, pk []byte) []byte {
	return append(append(make([]byte, 0, 32+len(pk)), id[:]...), pk...)
}

// appendLocal and splitPathChunks encode a path-chunks record: the local
// stat as four varints, then the chunk IDs.
func appendLocal(b []byte, l LocalStat) []byte {
	b = binary.AppendVarint(b, l.Size)
	b = binary.AppendVarint(b, l.MTimeNs)
	b = binary.AppendUvarint(b, l.Inode)
	return binary.AppendVarint(b, l.CTimeNs)
}

func splitPathChunks(rec []byte) (LocalStat, []byte, error) {
	if rec == nil {
		return LocalStat{}, nil, fmt.Errorf("no chunk record: %w", ErrCorrupt)
	}
	var l LocalStat
	vals := []*int64{&l.Size, &l.MTimeNs, nil, &l.CTimeNs}
	for i, p := range vals {
		var n int
		if p == nil {
			var u uint64
			u, n = binary.Uvarint(rec)
			l.Inode = u
		} else {
			*p, n = binary.Varint(rec)
		}
		if n <= 0 {
			return LocalStat{}, nil, fmt.Errorf("chunk record field %d: %w", i, ErrCorrupt)
		}
		rec = rec[n:]
	}
	if len(rec)%32 != 0 {
		return LocalStat{}, nil, fmt.Errorf("chunk record of %d ID bytes: %w", len(rec), ErrCorrupt)
	}
	return l, rec, nil
}
