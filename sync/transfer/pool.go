package transfer

import (
	"math/bits"
	gosync "sync"
)

// bufPool recycles the large buffers of chunked transfers (chunks, runs of
// chunks, chunk blobs), so that a transfer of gigabytes touches a few tens
// of megabytes of memory, not a fresh buffer per chunk. Buffers come in
// classes of 1 MiB × 2^i; a larger one is not kept.
type bufPool struct {
	classes [poolClasses]gosync.Pool
}

const (
	poolMin     = 1 << 20
	poolClasses = 5 // 1 MiB to 16 MiB
)

// class is the index of the smallest class that holds n bytes, or -1.
func class(n int) int {
	if n <= poolMin {
		return 0
	}
	c := bits.Len(uint(n-1)) - bits.Len(uint(poolMin-1))
	if c >= poolClasses {
		return -1
	}
	return c
}

// get returns a buffer of length n.
func (p *bufPool) get(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, poolMin<<c)
}

// put gives b back; nothing may use it afterwards.
func (p *bufPool) put(b []byte) {
	c := class(cap(b))
	if c < 0 || poolMin<<c != cap(b) {
		return // not one of ours
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
