package transfer

import (
	"io"
	"math/bits"
)

// Padme returns the length a pack of n plaintext bytes is padded to: n
// rounded up so that only the top ⌊log₂ ⌊log₂ n⌋⌋ + 1 bits of it may be
// set (the Padmé scheme of PURBs, Nikitin et al. 2019). The overhead is at
// most 12 %, and the padded lengths of n of one magnitude are few, so
// that the relay cannot tell files apart by their exact sizes.
func Padme(n int64) int64 {
	if n < 2 {
		return n
	}
	e := bits.Len64(uint64(n)) - 1 // ⌊log₂ n⌋
	s := bits.Len64(uint64(e))     // ⌊log₂ e⌋ + 1
	mask := int64(1)<<(e-s) - 1
	return (n + mask) &^ mask
}

var zeros [32 << 10]byte

// writeZeros writes n zero bytes to w.
func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
