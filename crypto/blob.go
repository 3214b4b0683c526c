package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"
)

// BlobID names a blob on the relay. It is random: it says nothing about the
// content, the file or its path.
type BlobID [16]byte

// String returns the ID in hex, the form used in object names.
func (b BlobID) String() string { return hex.EncodeToString(b[:]) }

// NewBlobID returns a random blob ID.
func NewBlobID() BlobID {
	var b BlobID
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return b
}

// ParseBlobID parses a blob ID in hex.
func ParseBlobID(s string) (BlobID, error) {
	var b BlobID
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != len(b) {
		return b, fmt.Errorf("blob ID %q: expected %d hex digits", s, 2*len(b))
	}
	copy(b[:], d)
	return b, nil
}

// BlobRef is what a record says about a blob: enough to check that the
// bytes the relay returns are the ones that were written.
type BlobRef struct {
	ID   BlobID
	Size int64 // bytes stored on the relay (ciphertext)
	// SHA256 is of the bytes stored on the relay; all zero for a blob
	// whose content is checked otherwise (NewUnhashedBlobWriter).
	SHA256 [32]byte
}

// encrypting reports whether blobs are age-encrypted under k. A nil k (a
// repository without a secret) stores blobs in the clear.
func (k *Keys) encrypting() bool { return k != nil && k.encryption == EncryptionAge }

// BlobWriter turns a plaintext stream into the bytes of a blob, in constant
// memory, and computes the blob's BlobRef.
type BlobWriter struct {
	id  BlobID
	out *hashCounter
	enc io.WriteCloser
	ref *BlobRef
	err error // the first Write error: the blob can no longer be finished
}

// NewBlobWriter returns a writer that encrypts what is written to it into
// dst (an age file for the repository's recipient, with a fresh random file
// key, or the plaintext itself when encryption is off). Close must be
// called to finish the blob; Ref is valid after that.
func NewBlobWriter(k *Keys, id BlobID, dst io.Writer) (*BlobWriter, error) {
	return newBlobWriter(k, id, dst, sha256.New())
}

// NewUnhashedBlobWriter is NewBlobWriter for a blob whose reader checks
// what it reads otherwise: a chunk blob, each of whose chunks is checked
// against its keyed ID. Its Ref has no SHA256, which saves hashing the
// blob once more.
func NewUnhashedBlobWriter(k *Keys, id BlobID, dst io.Writer) (*BlobWriter, error) {
	return newBlobWriter(k, id, dst, nil)
}

func newBlobWriter(k *Keys, id BlobID, dst io.Writer, h hash.Hash) (*BlobWriter, error) {
	w := &BlobWriter{id: id, out: &hashCounter{w: dst, h: h}}
	if !k.encrypting() {
		w.enc = nopCloser{w.out}
		return w, nil
	}
	enc, err := age.Encrypt(w.out, k.recipient)
	if err != nil {
		return nil, fmt.Errorf("starting blob encryption: %w", err)
	}
	w.enc = enc
	return w, nil
}

// Write encrypts p.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.enc.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Close finishes the blob (the authenticated last chunk) and computes its
// reference.
func (w *BlobWriter) Close() error {
	if w.ref != nil {
		return nil
	}
	if w.err != nil {
		return fmt.Errorf("finishing blob: %w", w.err)
	}
	if err := w.enc.Close(); err != nil {
		return fmt.Errorf("finishing blob: %w", err)
	}
	ref := BlobRef{ID: w.id, Size: w.out.n}
	if w.out.h != nil {
		w.out.h.Sum(ref.SHA256[:0])
	}
	w.ref = &ref
	return nil
}

// Ref returns the blob's reference; it panics before Close.
func (w *BlobWriter) Ref() BlobRef {
	if w.ref == nil {
		panic("crypto: BlobWriter.Ref before Close")
	}
	return *w.ref
}

type hashCounter struct {
	w io.Writer
	h hash.Hash // nil: counts only
	n int64
}

func (hc *hashCounter) Write(p []byte) (int, error) {
	n, err := hc.w.Write(p)
	if hc.h != nil {
		hc.h.Write(p[:n])
	}
	hc.n += int64(n)
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// OpenBlob returns a reader of the plaintext of the blob that src holds,
// checking it against ref as it goes: its size, its SHA-256 and, when
// encrypted, every chunk's authentication tag and the authenticated end of
// stream (a ref without a SHA-256, from NewUnhashedBlobWriter, is checked
// by the rest alone). Any mismatch makes Read fail with an error wrapping
// ErrBlobTruncated or ErrBlobCorrupt; a caller must treat what it read
// before such an error as garbage (escalefs writes blobs to a temporary file
// and installs it only after io.EOF).
func OpenBlob(k *Keys, src io.Reader, ref BlobRef) (io.Reader, error) {
	v := &verifier{r: src, ref: ref}
	if ref.SHA256 != [32]byte{} {
		v.h = sha256.New()
	}
	if !k.encrypting() {
		return v, nil
	}
	r, err := age.Decrypt(v, k.identity)
	if err != nil {
		return nil, blobError(ref.ID, err)
	}
	return &errMapper{r: r, id: ref.ID}, nil
}

// verifier checks a blob's size and hash while it is read.
type verifier struct {
	r   io.Reader
	ref BlobRef
	h   hash.Hash // nil: no hash to check
	n   int64
	err error
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	v.n += int64(n)
	if v.n > v.ref.Size {
		v.err = fmt.Errorf("%w: blob %s is longer than the %d bytes its record says", ErrBlobCorrupt, v.ref.ID, v.ref.Size)
		return 0, v.err
	}
	if err == io.EOF {
		if v.n < v.ref.Size {
			v.err = fmt.Errorf("%w: blob %s ends after %d of its %d bytes", ErrBlobTruncated, v.ref.ID, v.n, v.ref.Size)
			return n, v.err
		}
		var sum [32]byte
		if v.h != nil {
			v.h.Sum(sum[:0])
		}
		if sum != v.ref.SHA256 {
			v.err = fmt.Errorf("%w: blob %s does not match the SHA-256 in its record (altered or swapped)", ErrBlobCorrupt, v.ref.ID)
			return n, v.err
		}
	}
	if err != nil && err != io.EOF {
		v.err = &readError{err}
		return n, v.err
	}
	return n, err
}

// readError marks an error of the reader or ReaderAt a blob is read from,
// so that blobError passes it on instead of calling the blob corrupt.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// markErrorsAt marks the errors of a ReaderAt other than io.EOF.
type markErrorsAt struct{ ra io.ReaderAt }

func (m markErrorsAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.ra.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// errMapper turns age's errors into this package's.
type errMapper struct {
	r  io.Reader
	id BlobID
}

func (m *errMapper) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		err = blobError(m.id, err)
	}
	return n, err
}

// blobError classifies a decryption failure. Errors of the verifier and of
// the underlying reader pass through; age's own become ErrBlobCorrupt or
// ErrBlobTruncated with what went wrong.
func blobError(id BlobID, err error) error {
	var noMatch *age.NoIdentityMatchError
	var re *readError
	switch {
	case errors.Is(err, ErrBlobTruncated), errors.Is(err, ErrBlobCorrupt):
		return err
	case errors.As(err, &re):
		return fmt.Errorf("reading blob %s: %w", id, re.err)
	case errors.As(err, &noMatch):
		return fmt.Errorf("%w: blob %s was not encrypted for this repository", ErrBlobCorrupt, id)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: blob %s ends in the middle of its header or a chunk", ErrBlobTruncated, id)
	}
	return fmt.Errorf("%w: blob %s failed authentication (altered, chunks swapped or truncated): %v", ErrBlobCorrupt, id, err)
}

// BlobReaderAt gives random access to the plaintext of an encrypted blob of
// encryptedSize bytes, reading only the chunks each ReadAt needs: for
// resuming a transfer and reading parts of a large blob. Each chunk read is
// authenticated; that proves the bytes come from a blob of this repository,
// while only a full OpenBlob read proves they come from the blob a record
// names. Errors wrap ErrBlobCorrupt or ErrBlobTruncated. With encryption
// off, src is returned as is.
func BlobReaderAt(k *Keys, id BlobID, src io.ReaderAt, encryptedSize int64) (io.ReaderAt, int64, error) {
	if !k.encrypting() {
		return src, encryptedSize, nil
	}
	ra, size, err := age.DecryptReaderAt(markErrorsAt{src}, encryptedSize, k.identity)
	if err != nil {
		return nil, 0, blobError(id, err)
	}
	return &errMapperAt{ra: ra, id: id}, size, nil
}

type errMapperAt struct {
	ra io.ReaderAt
	id BlobID
}

func (m *errMapperAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.ra.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = blobError(m.id, err)
	}
	return n, err
}
