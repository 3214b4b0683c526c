package transfer

import "testing"

// Test vectors, as in docs/format.md.
func TestPadme(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{
		{0, 0}, {1, 1}, {2, 2}, {9, 10}, {100, 104}, {1000, 1024}, {1100, 1152},
		{1200, 1216}, {4097, 4352}, {65536, 65536}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<15},
	} {
		if got := Padme(tc.n); got != tc.want {
			t.Errorf("Padme(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	for n := int64(1); n < 1<<16; n++ {
		p := Padme(n)
		if p < n || float64(p-n) > 0.12*float64(n)+1 {
			t.Fatalf("Padme(%d) = %d: below it, or over 12%% above", n, p)
		}
	}
}
