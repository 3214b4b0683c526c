package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
)

// Subkey purposes of content-defined chunking (docs/format.md, chunks).
const (
	purposeChunkIDs = "chunk-ids"
	purposeChunker  = "chunker"
)

// ChunkID names a chunk of file content: a keyed hash, so that equal chunks
// have equal IDs on every node while the relay, which never sees an ID in
// the clear anyway, could not test a guess of the content against one.
type ChunkID [32]byte

// ChunkHasher returns the hash that computes chunk IDs: HMAC-SHA256 under
// the chunk-ids subkey; without a secret, SHA-256 of a fixed prefix and
// the chunk.
func (k *Keys) ChunkHasher() hash.Hash {
	if k == nil {
		h := sha256.New()
		h.Write([]byte("escalefs/1 chunk\x00"))
		return h
	}
	return hmac.New(sha256.New, k.chunkIDs[:])
}

// ChunkIDOf computes the ID of one chunk.
func (k *Keys) ChunkIDOf(data []byte) ChunkID {
	h := k.ChunkHasher()
	h.Write(data)
	var id ChunkID
	h.Sum(id[:0])
	return id
}

// ChunkerSeed returns the endless byte stream from which the chunker's
// gear table is drawn: SHA-256(seed ‖ counter) for counter 0, 1, 2…
// (8 bytes, little-endian), where seed is the chunker subkey, or the bytes
// "escalefs/1 chunker" without a secret. Every node of a repository cuts
// the same content at the same places; another repository cuts it
// elsewhere, so chunk lengths say little of the content.
func (k *Keys) ChunkerSeed() io.Reader {
	seed := []byte("escalefs/1 chunker")
	if k != nil {
		seed = k.chunker[:]
	}
	return &counterStream{seed: seed}
}

// counterStream is SHA-256 in counter mode.
type counterStream struct {
	seed  []byte
	n     uint64
	block []byte // what is left of the current block
}

func (s *counterStream) Read(p []byte) (int, error) {
	read := 0
	for read < len(p) {
		if len(s.block) == 0 {
			var ctr [8]byte
			binary.LittleEndian.PutUint64(ctr[:], s.n)
			s.n++
			sum := sha256.Sum256(append(append([]byte{}, s.seed...), ctr[:]...))
			s.block = sum[:]
		}
		c := copy(p[read:], s.block)
		s.block = s.block[c:]
		read += c
	}
	return read, nil
}

// ChunkedSum computes the content hash of a file stored as chunks
// (docs/format.md §8.2): the SHA-256 of the bytes "escalefs/1 chunked\x00",
// then, for each chunk in order, its ID and its length (8 bytes,
// little-endian). Each byte of the file is hashed once, for its chunk's
// ID; the file's hash follows from the IDs.
type ChunkedSum struct {
	h   hash.Hash
	buf [40]byte
}

// NewChunkedSum starts a content hash of chunks.
func NewChunkedSum() *ChunkedSum {
	s := &ChunkedSum{h: sha256.New()}
	s.h.Write([]byte("escalefs/1 chunked\x00"))
	return s
}

// Add appends a chunk.
func (s *ChunkedSum) Add(id ChunkID, length int64) {
	copy(s.buf[:], id[:])
	binary.LittleEndian.PutUint64(s.buf[32:], uint64(length))
	s.h.Write(s.buf[:])
}

// Sum returns the content hash of the chunks added so far.
func (s *ChunkedSum) Sum() [32]byte {
	var sum [32]byte
	s.h.Sum(sum[:0])
	return sum
}
