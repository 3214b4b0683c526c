// Package pseudo makes deterministic pseudo-random content for tests and
// benchmarks: the same bytes on every machine, so that test vectors and
// figures can be compared.
package pseudo

import (
	"crypto/sha256"
	"encoding/binary"
)

// Bytes returns n bytes drawn from seed: SHA-256(seed ‖ counter) for
// counter 0, 1, 2… as 8 bytes little-endian, concatenated.
func Bytes(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := uint64(0); len(out) < n; i++ {
		var ctr [8]byte
		binary.LittleEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}
