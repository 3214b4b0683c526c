package cache

import (
	"bytes"
	"fmt"
)

// MaxKeyLen is the longest node ID or metadata key, in bytes.
const MaxKeyLen = 255

// validKey checks a node ID or metadata key; what names what it is.
func validKey(what, k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Errorf("%s %q: must be 1 to %d bytes: %w", what, k, MaxKeyLen, ErrInvalidKey)
	}
	return nil
}

// PeerSeq returns the sequence number of the last record of node's log that
// this node applied. ok is false if none was recorded. The cache does not
// check that sequence numbers only grow; the sync engine does.
func (t *Tx) PeerSeq(node string) (seq uint64, ok bool, err error) {
	if err := validKey("node ID", node); err != nil {
		return 0, false, err
	}
	b, err := t.bucket(bucketPeerSeq)
	if err != nil {
		return 0, false, err
	}
	seq, ok, err = getUint64(b, []byte(node))
	if err != nil {
		return 0, false, fmt.Errorf("sequence of peer %q: %w", node, err)
	}
	return seq, ok, nil
}

// SetPeerSeq records seq as the last record of node's log applied. Set it
// in the same Update that applies the record.
func (t *Tx) SetPeerSeq(node string, seq uint64) error {
	if err := validKey("node ID", node); err != nil {
		return err
	}
	b, err := t.writable(bucketPeerSeq, "set sequence of peer "+quote(node))
	if err != nil {
		return err
	}
	if err := putUint64(b, []byte(node), seq); err != nil {
		return fmt.Errorf("set sequence of peer %q: %w", node, err)
	}
	return nil
}

// PeerSeqs returns the applied sequence number of every peer with one.
func (t *Tx) PeerSeqs() (map[string]uint64, error) {
	b, err := t.bucket(bucketPeerSeq)
	if err != nil {
		return nil, err
	}
	m := make(map[string]uint64)
	err = b.ForEach(func(k, _ []byte) error {
		seq, _, err := getUint64(b, k)
		if err != nil {
			return fmt.Errorf("sequence of peer %q: %w", k, err)
		}
		m[string(k)] = seq
		return nil
	})
	return m, err
}

// PeerState returns the bytes last stored with SetPeerState for node
// (last-seen time and the like, opaque to the cache). ok is false if none.
func (t *Tx) PeerState(node string) (state []byte, ok bool, err error) {
	if err := validKey("node ID", node); err != nil {
		return nil, false, err
	}
	b, err := t.bucket(bucketPeerState)
	if err != nil {
		return nil, false, err
	}
	v := b.Get([]byte(node))
	if v == nil {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// SetPeerState stores state for node, replacing what was there. A nil
// state is stored as empty; use DeletePeer to forget a peer.
func (t *Tx) SetPeerState(node string, state []byte) error {
	if err := validKey("node ID", node); err != nil {
		return err
	}
	b, err := t.writable(bucketPeerState, "set state of peer "+quote(node))
	if err != nil {
		return err
	}
	if err := b.Put([]byte(node), append([]byte{}, state...)); err != nil {
		return fmt.Errorf("set state of peer %q: %w", node, err)
	}
	return nil
}

// DeletePeer forgets node's sequence number and state. Deleting an unknown
// peer succeeds.
func (t *Tx) DeletePeer(node string) error {
	if err := validKey("node ID", node); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketPeerSeq, bucketPeerState} {
		b, err := t.writable(name, "delete peer "+quote(node))
		if err != nil {
			return err
		}
		if err := b.Delete([]byte(node)); err != nil {
			return fmt.Errorf("delete peer %q: %w", node, err)
		}
	}
	return nil
}

// Well-known metadata keys, for the facts every node keeps. The cache does
// not interpret their values.
const (
	MetaNodeID     = "node-id"     // this node's ID
	MetaNextSeq    = "next-seq"    // the sequence number of this node's next log record
	MetaConfigHash = "config-hash" // hash of the escale.json this node joined
	MetaNodeName   = "node-name"   // the name this node last ran under
)

// Meta returns the value stored under key. ok is false if there is none.
func (t *Tx) Meta(key string) (value []byte, ok bool, err error) {
	if err := validKey("metadata key", key); err != nil {
		return nil, false, err
	}
	b, err := t.bucket(bucketMeta)
	if err != nil {
		return nil, false, err
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// SetMeta stores value under key, replacing what was there. A nil value is
// stored as empty; use DeleteMeta to remove a key.
func (t *Tx) SetMeta(key string, value []byte) error {
	if err := validKey("metadata key", key); err != nil {
		return err
	}
	b, err := t.writable(bucketMeta, "set metadata "+quote(key))
	if err != nil {
		return err
	}
	if err := b.Put([]byte(key), append([]byte{}, value...)); err != nil {
		return fmt.Errorf("set metadata %q: %w", key, err)
	}
	return nil
}

// DeleteMeta removes key. Removing a missing key succeeds.
func (t *Tx) DeleteMeta(key string) error {
	if err := validKey("metadata key", key); err != nil {
		return err
	}
	b, err := t.writable(bucketMeta, "delete metadata "+quote(key))
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete metadata %q: %w", key, err)
	}
	return nil
}

// MetaUint64 returns the number stored under key by SetMetaUint64. A value
// that is not 8 bytes fails with ErrCorrupt.
func (t *Tx) MetaUint64(key string) (n uint64, ok bool, err error) {
	if err := validKey("metadata key", key); err != nil {
		return 0, false, err
	}
	b, err := t.bucket(bucketMeta)
	if err != nil {
		return 0, false, err
	}
	n, ok, err = getUint64(b, []byte(key))
	if err != nil {
		return 0, false, fmt.Errorf("metadata %q: %w", key, err)
	}
	return n, ok, nil
}

// SetMetaUint64 stores n under key as 8 big-endian bytes.
func (t *Tx) SetMetaUint64(key string, n uint64) error {
	if err := validKey("metadata key", key); err != nil {
		return err
	}
	b, err := t.writable(bucketMeta, "set metadata "+quote(key))
	if err != nil {
		return err
	}
	if err := putUint64(b, []byte(key), n); err != nil {
		return fmt.Errorf("set metadata %q: %w", key, err)
	}
	return nil
}
