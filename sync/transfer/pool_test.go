package transfer

import "testing"

// TestBufPool: a buffer comes in the smallest class that holds it, is
// reused once given back, and one larger than the classes is not kept.
func TestBufPool(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {poolMin, 0}, {poolMin + 1, 1}, {8 << 20, 3}, {8<<20 + 1, 4}, {16 << 20, 4}, {16<<20 + 1, -1},
	} {
		if got := class(tc.n); got != tc.class {
			t.Errorf("class(%d) = %d, want %d", tc.n, got, tc.class)
		}
	}
	var p bufPool
	b := p.get(3 << 20)
	if len(b) != 3<<20 || cap(b) != 4<<20 {
		t.Fatalf("get(3 MiB): len %d, cap %d", len(b), cap(b))
	}
	b[0] = 42
	p.put(b)
	if c := p.get(4 << 20); cap(c) != 4<<20 {
		t.Errorf("get(4 MiB) after a 4 MiB buffer came back: cap %d", cap(c))
	}
	big := p.get(20 << 20)
	if len(big) != 20<<20 {
		t.Fatalf("get(20 MiB): len %d", len(big))
	}
	p.put(big) // not kept, and no panic
	p.put(make([]byte, 3<<20))
}
