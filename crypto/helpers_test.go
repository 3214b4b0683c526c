package crypto

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// update rewrites the known-answer vectors under testdata/kat instead of
// checking them: go test ./crypto/ -run TestKnownAnswer -update
var update = flag.Bool("update", false, "rewrite the known-answer vectors in testdata/kat")

// cheapKDF is the cheapest Argon2id setting ParseConfig accepts, so that
// tests (and fuzzing) that unlock passphrase repositories stay fast.
var cheapKDF = KDFParams{Time: 1, MemoryKiB: minKDFMemoryKiB, Threads: 1}

// testKeys returns the keys of a new key-file repository with encryption
// enc: no Argon2, so it is cheap.
func testKeys(t testing.TB, enc Encryption) *Keys {
	t.Helper()
	_, k, err := NewConfig(rand.Reader, GenerateKey(), enc, KDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// prng returns a deterministic stream of pseudo-random bytes.
func prng(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	return mrand.NewChaCha8(s)
}

// prngBytes returns n deterministic pseudo-random bytes.
func prngBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(prng(seed), b)
	return b
}

// sealBlob writes plaintext as a blob under k and returns its bytes and ref.
func sealBlob(t testing.TB, k *Keys, plaintext []byte) ([]byte, BlobRef) {
	t.Helper()
	return sealBlobWith(t, NewBlobWriter, k, plaintext)
}

// sealBlobWith is sealBlob with another BlobWriter constructor.
func sealBlobWith(t testing.TB, newWriter func(*Keys, BlobID, io.Writer) (*BlobWriter, error), k *Keys, plaintext []byte) ([]byte, BlobRef) {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(k, NewBlobID(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.Ref()
}

// openAll reads a whole blob through OpenBlob.
func openAll(k *Keys, data []byte, ref BlobRef) ([]byte, error) {
	r, err := OpenBlob(k, bytes.NewReader(data), ref)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// refOver is the ref a relay would have to forge for data to pass the
// size and hash check: it leaves only age to catch the change.
func refOver(id BlobID, data []byte) BlobRef {
	return BlobRef{ID: id, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
}

// wantErr fails t unless err wraps one of sentinels and its message holds
// every one of words.
func wantErr(t testing.TB, err error, sentinels []error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one wrapping %v", sentinels)
	}
	ok := false
	for _, s := range sentinels {
		ok = ok || errors.Is(err, s)
	}
	if !ok {
		t.Errorf("error %q wraps none of %v", err, sentinels)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// errs is shorthand for a list of acceptable sentinels.
func errs(e ...error) []error { return e }

// ageHeaderLen returns the length of an age file's header, up to and
// including the "---" MAC line; the 16-byte payload nonce follows it.
func ageHeaderLen(t testing.TB, blob []byte) int {
	t.Helper()
	i := bytes.Index(blob, []byte("\n--- "))
	if i < 0 {
		t.Fatal("no age header MAC line")
	}
	j := bytes.IndexByte(blob[i+1:], '\n')
	if j < 0 {
		t.Fatal("unterminated age header MAC line")
	}
	return i + 1 + j + 1
}

// Sizes of age's STREAM framing.
const (
	ageChunk    = 64 << 10          // plaintext bytes per chunk
	ageTag      = 16                // Poly1305 tag per chunk
	ageEncChunk = ageChunk + ageTag // ciphertext bytes per full chunk
	ageNonce    = 16                // payload nonce after the header
	mib         = 1 << 20
)
