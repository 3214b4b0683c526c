package cache

import bolt "go.etcd.io/bbolt"

// Hooks for the tests of package cache_test.

// Decoded returns how many entries s has decoded so far.
func (s *Store) Decoded() int64 { return s.decoded.Load() }

// DecodeEntry and EncodeEntry expose the entry codec.
func DecodeEntry(path string, b []byte) (Entry, error) { return decodeEntry(path, b) }
func EncodeEntry(e Entry) []byte                       { return encodeEntry(&e) }

// PathKey is the bbolt key of a path in the entries bucket.
func PathKey(p string) []byte { return pathKey(p) }

// OpenSchema opens path as if this package's schema were target, reached
// from version 1 through steps.
func OpenSchema(path string, opts Options, target uint64, steps ...func(*bolt.Tx) error) (*Store, error) {
	ms := make([]migration, len(steps))
	for i, f := range steps {
		ms[i] = f
	}
	return open(path, opts, target, ms)
}
