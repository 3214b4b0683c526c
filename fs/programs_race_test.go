//go:build race

package fs

// manyEntries is the number of entries of the big directory of
// TestPrograms: 10,000 under the race detector, where creating and
// removing an entry through the mount takes about 2.3 ms (the test runs
// 23 s; with 100,000 entries it would run about 4 minutes).
const manyEntries = 10_000
