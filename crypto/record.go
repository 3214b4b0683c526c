package crypto

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// NodeID identifies a node of a repository on the relay. It is random, so
// it says nothing about the node's name or host.
type NodeID [16]byte

// String returns the ID in hex, the form used in object names.
func (n NodeID) String() string { return hex.EncodeToString(n[:]) }

// NewNodeID returns a random node ID.
func NewNodeID() NodeID {
	var n NodeID
	if _, err := rand.Read(n[:]); err != nil {
		panic(err)
	}
	return n
}

// ParseNodeID parses a node ID in hex.
func ParseNodeID(s string) (NodeID, error) {
	var n NodeID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, fmt.Errorf("node ID %q: expected %d hex digits", s, 2*len(n))
	}
	copy(n[:], b)
	return n, nil
}

// RecordContext is where a record belongs. It is not stored in the record
// but bound to it: a record opened under any other context fails, which is
// how replayed, reordered and moved records are caught.
type RecordContext struct {
	Node NodeID // the writing node
	Seq  uint64 // its sequence number in that node's stream
	Kind string // what the record is, e.g. "log" or "snapshot" (at most 255 bytes)
}

// Record framing constants (docs/format.md).
const (
	recordMagic       = "ESR1"
	recordSealed byte = 1 // XChaCha20-Poly1305 under the records subkey
	recordPlain  byte = 2 // no secret: plaintext and a SHA-256 checksum
	recordHeader      = len(recordMagic) + 1
	// MaxRecordSize bounds a record's plaintext, so that a hostile relay
	// cannot make a node allocate without limit.
	MaxRecordSize = 64 << 20
)

// associatedData binds a record to its repository and context.
func associatedData(repo RepoID, rc RecordContext) []byte {
	b := make([]byte, 0, 64+len(rc.Kind))
	b = append(b, "escalefs/1 record\x00"...)
	b = append(b, repo[:]...)
	b = append(b, rc.Node[:]...)
	b = binary.BigEndian.AppendUint64(b, rc.Seq)
	b = append(b, byte(len(rc.Kind)))
	return append(b, rc.Kind...)
}

// RecordSealer seals and opens the records of one repository.
type RecordSealer struct {
	repo RepoID
	aead interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
		NonceSize() int
		Overhead() int
	}
	rand io.Reader
}

// NewRecordSealer returns the sealer for keys' repository. With nil keys
// (a repository without a secret) records are checksummed, not
// authenticated; repo must then be the repository ID. rnd supplies nonces
// (crypto/rand.Reader outside known-answer tests).
func NewRecordSealer(keys *Keys, repo RepoID, rnd io.Reader) *RecordSealer {
	s := &RecordSealer{repo: repo, rand: rnd}
	if keys != nil {
		s.repo = keys.repo
		aead, err := chacha20poly1305.NewX(keys.records[:])
		if err != nil {
			panic(err) // the key has the right size by construction
		}
		s.aead = aead
	}
	return s
}

// Seal returns the bytes of a record holding plaintext in context rc.
func (s *RecordSealer) Seal(rc RecordContext, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxRecordSize {
		return nil, fmt.Errorf("record of %d bytes exceeds the %d-byte limit", len(plaintext), MaxRecordSize)
	}
	if len(rc.Kind) > 255 {
		return nil, fmt.Errorf("record kind %q is longer than 255 bytes", rc.Kind)
	}
	ad := associatedData(s.repo, rc)
	out := append([]byte(recordMagic), 0)
	if s.aead == nil {
		out[len(recordMagic)] = recordPlain
		out = append(out, plaintext...)
		sum := sha256.Sum256(append(ad, plaintext...))
		return append(out, sum[:]...), nil
	}
	out[len(recordMagic)] = recordSealed
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("generating a nonce: %w", err)
	}
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, ad), nil
}

// Open checks a record against the context it was read from and returns
// its plaintext. Every failure wraps ErrRecordCorrupt and no plaintext is
// returned with it.
func (s *RecordSealer) Open(rc RecordContext, record []byte) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: record %d of node %s (%s): "+format,
			append([]any{ErrRecordCorrupt, rc.Seq, rc.Node, rc.Kind}, args...)...)
	}
	if len(record) < recordHeader || !bytes.Equal(record[:len(recordMagic)], []byte(recordMagic)) {
		return nil, bad("not an escalefs record (bad magic)")
	}
	ad := associatedData(s.repo, rc)
	body := record[recordHeader:]
	switch mode := record[len(recordMagic)]; {
	case mode == recordSealed && s.aead != nil:
		ns := s.aead.NonceSize()
		if len(body) < ns+s.aead.Overhead() {
			return nil, bad("truncated: %d bytes", len(record))
		}
		if len(body)-ns-s.aead.Overhead() > MaxRecordSize {
			return nil, bad("larger than the %d-byte limit", MaxRecordSize)
		}
		pt, err := s.aead.Open(nil, body[:ns], body[ns:], ad)
		if err != nil {
			return nil, bad("forged, altered, truncated, replayed or moved from another place in the log")
		}
		return pt, nil
	case mode == recordPlain && s.aead == nil:
		if len(body) < sha256.Size {
			return nil, bad("truncated: %d bytes", len(record))
		}
		if len(body)-sha256.Size > MaxRecordSize {
			return nil, bad("larger than the %d-byte limit", MaxRecordSize)
		}
		pt, sum := body[:len(body)-sha256.Size], body[len(body)-sha256.Size:]
		want := sha256.Sum256(append(ad, pt...))
		if subtle.ConstantTimeCompare(sum, want[:]) != 1 {
			return nil, bad("checksum mismatch: altered, truncated, replayed or moved")
		}
		return bytes.Clone(pt), nil
	case mode == recordPlain:
		// A relay must not downgrade a keyed repository to checksums.
		return nil, bad("unauthenticated record in a repository that has a secret")
	case mode == recordSealed:
		return nil, bad("sealed record in a repository without a secret")
	default:
		return nil, bad("unknown record mode %d", mode)
	}
}
