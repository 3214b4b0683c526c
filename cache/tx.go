package cache

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Tx is a transaction of View or Update. Reads see the transaction's own
// writes. A Tx is valid only until the function it was passed to returns,
// and only in that function's goroutine; afterwards every method fails with
// ErrClosed. Write methods on the Tx of View fail with ErrReadOnly.
//
// Byte slices returned by a Tx are copies and stay valid after it ends;
// byte slices passed to it are copied, so the caller may reuse them.
type Tx struct {
	s       *Store
	tx      *bolt.Tx
	walking int // depth of running Walk/Children calls
}

// bucket returns the named bucket, or an error if the Tx is over. All
// buckets exist once Open has returned.
func (t *Tx) bucket(name []byte) (*bolt.Bucket, error) {
	if t.tx == nil {
		return nil, fmt.Errorf("cache %s: transaction used after it ended: %w", t.s.path, ErrClosed)
	}
	b := t.tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("cache %s: bucket %s missing: %w", t.s.path, name, ErrCorrupt)
	}
	return b, nil
}

// writable returns the named bucket for a write by op, or an error if the
// Tx is over or read-only.
func (t *Tx) writable(name []byte, op string) (*bolt.Bucket, error) {
	b, err := t.bucket(name)
	if err != nil {
		return nil, err
	}
	if !t.tx.Writable() {
		return nil, fmt.Errorf("cache %s: %s: %w", t.s.path, op, ErrReadOnly)
	}
	return b, nil
}

// decode decodes the entry stored under key k.
func (t *Tx) decode(k, v []byte) (Entry, error) {
	p, err := keyPath(k)
	if err != nil {
		return Entry{}, err
	}
	t.s.decoded.Add(1)
	return decodeEntry(p, v)
}

// Get returns the entry at path. ok is false, with a nil error, if there is
// none; a tombstone is an entry (Deleted set). An invalid path fails with
// ErrInvalidPath, an undecodable record with ErrCorrupt naming the path.
func (t *Tx) Get(path string) (e Entry, ok bool, err error) {
	if err := ValidPath(path); err != nil {
		return Entry{}, false, err
	}
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return Entry{}, false, err
	}
	v := b.Get(pathKey(path))
	if v == nil {
		return Entry{}, false, nil
	}
	t.s.decoded.Add(1)
	e, err = decodeEntry(path, v)
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Put stores e under e.Path, replacing any entry there. It fails with
// ErrInvalidPath or ErrInvalidEntry if e breaks a rule of Entry (see its
// fields), and with ErrWalking if called from a Walk or Children callback.
// Put does not require the parent directory to have an entry.
func (t *Tx) Put(e Entry) error {
	if err := e.validate(); err != nil {
		return err
	}
	b, err := t.writable(bucketEntries, "put "+quote(e.Path))
	if err != nil {
		return err
	}
	if t.walking > 0 {
		return fmt.Errorf("put %q: %w", e.Path, ErrWalking)
	}
	if err := b.Put(pathKey(e.Path), encodeEntry(&e)); err != nil {
		return fmt.Errorf("put %q: %w", e.Path, err)
	}
	if e.Deleted || e.Kind != KindFile {
		// Its chunks are gone with its content (chunks.go).
		return t.DropChunks(e.Path)
	}
	return nil
}

// Delete removes the entry at path itself (not a tombstone, and not its
// children); use it to forget a path, e.g. when collecting old tombstones.
// Deleting a missing entry succeeds. It fails with ErrWalking if called from
// a Walk or Children callback. Queue items for path are not touched.
func (t *Tx) Delete(path string) error {
	if err := ValidPath(path); err != nil {
		return err
	}
	b, err := t.writable(bucketEntries, "delete "+quote(path))
	if err != nil {
		return err
	}
	if t.walking > 0 {
		return fmt.Errorf("delete %q: %w", path, ErrWalking)
	}
	if err := t.DropChunks(path); err != nil {
		return err
	}
	if err := b.Delete(pathKey(path)); err != nil {
		return fmt.Errorf("delete %q: %w", path, err)
	}
	return nil
}

// Walk calls fn for the entry at prefix, if any, and every entry below it,
// in path order: components compare bytewise and a directory comes
// directly before its subtree, so "a", "a/b", "a/b/c", "a-b", "a0". A
// prefix names a whole subtree: "a/b" covers "a/b" and "a/b/c" but not
// "a/bc". The prefix "" walks everything. Tombstones are included. fn must
// not Put or Delete entries (ErrWalking); it may use the other methods.
// An error from fn stops the walk and is returned as is; a corrupt record
// stops it with ErrCorrupt.
func (t *Tx) Walk(prefix string, fn func(Entry) error) error {
	var key, sub []byte
	if prefix != "" {
		if err := ValidPath(prefix); err != nil {
			return err
		}
		key = pathKey(prefix)
		sub = append(bytes.Clone(key), 0)
	}
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return err
	}
	t.walking++
	defer func() { t.walking-- }()
	c := b.Cursor()
	k, v := c.First()
	if key != nil {
		k, v = c.Seek(key)
	}
	for ; k != nil; k, v = c.Next() {
		if key != nil && !bytes.Equal(k, key) && !bytes.HasPrefix(k, sub) {
			break
		}
		e, err := t.decode(k, v)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Children calls fn for each entry directly inside dir ("" for the root),
// in name order, tombstones included. It reads only those entries: the
// subtree of each child directory is skipped with one seek, so its cost
// does not grow with the size of those subtrees. Only stored entries are
// returned: a path whose parent has no entry is not reported as a child of
// the grandparent. fn must not Put or Delete entries (ErrWalking). Errors
// are as for Walk.
func (t *Tx) Children(dir string, fn func(Entry) error) error {
	var pfx []byte
	if dir != "" {
		if err := ValidPath(dir); err != nil {
			return err
		}
		pfx = append(pathKey(dir), 0)
	}
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return err
	}
	t.walking++
	defer func() { t.walking-- }()
	c := b.Cursor()
	k, v := c.First()
	if pfx != nil {
		k, v = c.Seek(pfx)
	}
	for k != nil && bytes.HasPrefix(k, pfx) {
		name := k[len(pfx):]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			// A descendant of child name[:i]: jump to the first key after
			// that child's subtree, name[:i] followed by a byte above NUL.
			next := make([]byte, 0, len(pfx)+i+1)
			next = append(append(append(next, pfx...), name[:i]...), 1)
			k, v = c.Seek(next)
			continue
		}
		e, err := t.decode(k, v)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
		k, v = c.Next()
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
