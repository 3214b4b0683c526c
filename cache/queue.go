package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueItem is one entry of the push queue: a path the sync engine has yet
// to push, with whatever the engine needs to remember about it.
type QueueItem struct {
	// ID identifies the item for Remove. IDs grow with every Enqueue and
	// are never reused, across restarts too.
	ID       uint64
	Path     string
	Payload  []byte    // opaque to the cache; nil when empty
	Enqueued time.Time // when Enqueue stored this item (UTC, from Options.Now)
}

// Queue item encoding, version 1 (see the package documentation).
const queueV1 byte = 1

func encodeItem(path string, payload []byte, at time.Time) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(path)+len(payload))
	b = append(b, queueV1)
	b = binary.AppendVarint(b, at.Unix())
	b = binary.AppendUvarint(b, uint64(at.Nanosecond()))
	b = appendString(b, path)
	return append(b, payload...)
}

func decodeItem(id uint64, b []byte) (QueueItem, error) {
	it := QueueItem{ID: id}
	if len(b) == 0 || b[0] != queueV1 {
		return it, fmt.Errorf("queue item %d: unknown encoding: %w", id, ErrCorrupt)
	}
	d := decoder{b: b[1:]}
	sec, nsec := d.varint(), d.uvarint()
	it.Path = d.string()
	if d.err == nil && nsec >= 1e9 {
		d.fail("nanoseconds %d out of range", nsec)
	}
	if d.err == nil {
		if err := ValidPath(it.Path); err != nil {
			d.fail("%v", err)
		}
	}
	if d.err != nil {
		return QueueItem{ID: id}, fmt.Errorf("queue item %d: %v: %w", id, d.err, ErrCorrupt)
	}
	it.Enqueued = time.Unix(sec, int64(nsec)).UTC()
	if len(d.b) > 0 {
		it.Payload = bytes.Clone(d.b)
	}
	return it, nil
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Enqueue appends path to the push queue with payload and returns the new
// item's ID. The queue holds at most one item per path: if path is already
// queued, its old item is removed and the new one goes to the back, so the
// latest payload wins and a path being rewritten does not hold up the paths
// queued after it. The enqueue time comes from Options.Now.
func (t *Tx) Enqueue(path string, payload []byte) (uint64, error) {
	if err := ValidPath(path); err != nil {
		return 0, err
	}
	q, err := t.writable(bucketQueue, "enqueue "+quote(path))
	if err != nil {
		return 0, err
	}
	qp, err := t.bucket(bucketQueuePaths)
	if err != nil {
		return 0, err
	}
	sys, err := t.bucket(bucketSys)
	if err != nil {
		return 0, err
	}
	pk := []byte(path)
	// A damaged index value is simply overwritten below.
	if old := bytes.Clone(qp.Get(pk)); len(old) == 8 && q.Get(old) != nil {
		if err := q.Delete(old); err != nil {
			return 0, fmt.Errorf("enqueue %q: %w", path, err)
		}
	} else if err := t.addQueueLen(sys, 1); err != nil {
		return 0, fmt.Errorf("enqueue %q: %w", path, err)
	}
	id, err := q.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("enqueue %q: %w", path, err)
	}
	if err := q.Put(idKey(id), encodeItem(path, payload, t.s.now())); err != nil {
		return 0, fmt.Errorf("enqueue %q: %w", path, err)
	}
	if err := qp.Put(pk, idKey(id)); err != nil {
		return 0, fmt.Errorf("enqueue %q: %w", path, err)
	}
	return id, nil
}

// Peek returns up to n items from the front of the queue, oldest first,
// without removing them; n <= 0 returns them all. If an item cannot be
// decoded, Peek returns the items before it and an error wrapping
// ErrCorrupt that names the item's ID, which Remove still accepts.
func (t *Tx) Peek(n int) ([]QueueItem, error) {
	q, err := t.bucket(bucketQueue)
	if err != nil {
		return nil, err
	}
	var items []QueueItem
	c := q.Cursor()
	for k, v := c.First(); k != nil && (n <= 0 || len(items) < n); k, v = c.Next() {
		if len(k) != 8 {
			return items, fmt.Errorf("queue key %x: %w", k, ErrCorrupt)
		}
		it, err := decodeItem(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return items, err
		}
		items = append(items, it)
	}
	return items, nil
}

// Remove deletes the items with the given IDs, typically once they are
// pushed. IDs not in the queue are ignored, so Remove is idempotent, and an
// item that was replaced by a newer Enqueue of its path stays removed
// without touching the newer item.
func (t *Tx) Remove(ids ...uint64) error {
	q, err := t.writable(bucketQueue, "remove queue items")
	if err != nil {
		return err
	}
	qp, err := t.bucket(bucketQueuePaths)
	if err != nil {
		return err
	}
	sys, err := t.bucket(bucketSys)
	if err != nil {
		return err
	}
	for _, id := range ids {
		k := idKey(id)
		v := q.Get(k)
		if v == nil {
			continue
		}
		if err := q.Delete(k); err != nil {
			return fmt.Errorf("remove queue item %d: %w", id, err)
		}
		if err := unindex(qp, id, v); err != nil {
			return fmt.Errorf("remove queue item %d: %w", id, err)
		}
		if err := t.addQueueLen(sys, -1); err != nil {
			return fmt.Errorf("remove queue item %d: %w", id, err)
		}
	}
	return nil
}

// unindex deletes the path index entry of the item id (stored as v) if it
// still points to id. An item too damaged to name its path can still be
// removed: the index is then searched for id.
func unindex(qp *bolt.Bucket, id uint64, v []byte) error {
	k := idKey(id)
	if it, err := decodeItem(id, v); err == nil {
		if !bytes.Equal(qp.Get([]byte(it.Path)), k) {
			return nil
		}
		return qp.Delete([]byte(it.Path))
	}
	var stale [][]byte
	err := qp.ForEach(func(p, v []byte) error {
		if bytes.Equal(v, k) {
			stale = append(stale, bytes.Clone(p))
		}
		return nil
	})
	for _, p := range stale {
		if err == nil {
			err = qp.Delete(p)
		}
	}
	return err
}

// QueueLen returns the number of items in the queue. It reads one counter.
func (t *Tx) QueueLen() (int, error) {
	sys, err := t.bucket(bucketSys)
	if err != nil {
		return 0, err
	}
	n, _, err := getUint64(sys, keyQueueLen)
	if err != nil {
		return 0, fmt.Errorf("queue length: %w", err)
	}
	return int(n), nil
}

func (t *Tx) addQueueLen(sys *bolt.Bucket, d int) error {
	n, _, err := getUint64(sys, keyQueueLen)
	if err != nil {
		return fmt.Errorf("queue length: %w", err)
	}
	if d < 0 && n == 0 {
		return fmt.Errorf("queue length below zero: %w", ErrCorrupt)
	}
	return putUint64(sys, keyQueueLen, uint64(int64(n)+int64(d)))
}
