//go:build !race

package fs

// manyEntries is the number of entries of the big directory of
// TestPrograms.
const manyEntries = 100_000
