package sync

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/proto"
)

// Keys of the engine's facts in the cache's meta bucket. The values are JSON,
// private to this package; none of them ever reaches the relay.
const (
	metaLogState = "sync/log"     // logState
	metaAckDue   = "sync/ack-due" // present: applied peer changes not yet acknowledged
	outboxPrefix = "sync/outbox/" // + seq in hex: a sealed record not yet on the relay
)

// logState is what this node knows of its own log on the relay.
type logState struct {
	// Records are this node's records that are on the relay or in the
	// outbox, in ascending sequence order.
	Records []ownRecord `json:"records,omitempty"`
	// Snapshot is the sequence number the latest published snapshot
	// covers; HasSnapshot says whether there is one.
	Snapshot    uint64 `json:"snapshot,omitempty"`
	HasSnapshot bool   `json:"has_snapshot,omitempty"`
	// OldSnapshots are snapshots superseded but not yet deleted.
	OldSnapshots []uint64 `json:"old_snapshots,omitempty"`
	// Peers are the nodes seen in the relay's listing, in the order they
	// were first seen: the pullers, in registration order.
	Peers []string `json:"peers,omitempty"`
	// LastWrite is when this node last published a record.
	LastWrite time.Time `json:"last_write"`
	// LastCompaction is when records were last compacted into a snapshot.
	LastCompaction time.Time `json:"last_compaction"`
}

// ownRecord is one record of this node's log.
type ownRecord struct {
	Seq uint64 `json:"seq"`
	// Blobs are the blobs the record names: the ones it introduced and the
	// ones it reuses (a renamed file keeps its blob), so that none is
	// collected while a record still needs it.
	Blobs []crypto.BlobID `json:"blobs,omitempty"`
	// Published is set once the relay has the record.
	Published bool `json:"published,omitempty"`
	// Collected is set once the blobs the record alone held are deleted; the
	// record itself stays until the next compaction.
	Collected bool `json:"collected,omitempty"`
	// Size and Sum (SHA-256) are those of the sealed record, and ModTime
	// the relay's time of it at the first listing that showed it: a node
	// checks its own records on the relay against them (ensureOwnLog).
	// Records sealed by older versions have none.
	Size    int64     `json:"size,omitempty"`
	Sum     []byte    `json:"sum,omitempty"`
	ModTime time.Time `json:"mtime,omitzero"`
}

// liveBlobs returns the set of this node's blobs that are still on the relay.
func (s *logState) liveBlobs() map[crypto.BlobID]bool {
	live := make(map[crypto.BlobID]bool)
	for _, r := range s.Records {
		if r.Collected {
			continue
		}
		for _, b := range r.Blobs {
			live[b] = true
		}
	}
	return live
}

func loadLogState(tx *cache.Tx) (logState, error) {
	var s logState
	b, ok, err := tx.Meta(metaLogState)
	if err != nil || !ok {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("engine state %q: %w: %w", metaLogState, err, cache.ErrCorrupt)
	}
	return s, nil
}

func saveLogState(tx *cache.Tx, s logState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return tx.SetMeta(metaLogState, b)
}

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%016x", outboxPrefix, seq) }

// peerState is what this node remembers of a peer, in the cache's peer
// state.
type peerState struct {
	Name string `json:"name,omitempty"`
	// Mode is the peer's mode, as its latest record said.
	Mode proto.Mode `json:"mode,omitempty"`
	// FirstSeen is when this node first saw the peer's log: the order of
	// registration among pullers.
	FirstSeen time.Time `json:"first_seen"`
	// LastSeen is when this node last saw the peer write a new record.
	LastSeen time.Time `json:"last_seen"`
	// MaxSeq is the highest sequence number seen in the peer's log.
	MaxSeq uint64 `json:"max_seq"`
	// Acked is the highest sequence number of this node's log that the
	// peer acknowledged; HasAcked says whether it acknowledged anything.
	Acked    uint64 `json:"acked,omitempty"`
	HasAcked bool   `json:"has_acked,omitempty"`
	// AckedOf is how far the peer acknowledged each node's log, by node,
	// as its records said: whether it holds what another node pushed.
	AckedOf map[string]uint64 `json:"acked_of,omitempty"`
}

func loadPeer(tx *cache.Tx, node string) (peerState, bool, error) {
	var p peerState
	b, ok, err := tx.PeerState(node)
	if err != nil || !ok {
		return p, ok, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, false, fmt.Errorf("peer %s state: %w: %w", node, err, cache.ErrCorrupt)
	}
	return p, true, nil
}

func savePeer(tx *cache.Tx, node string, p peerState) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return tx.SetPeerState(node, b)
}

// remoteRef is what Entry.Remote holds: where the content of the entry's
// version is on the relay, as the record that brought or pushed it said.
type remoteRef struct {
	Node string `json:"node"` // the blobs' writer
	// Seq is the record of Node's log that carried a pulled version (nil:
	// pushed by this node, or pulled before it was kept): once every
	// other puller acknowledged it, they all hold its chunks.
	Seq  *uint64  `json:"seq,omitempty"`
	Hash [32]byte `json:"hash"` // the content they hold
	// Path is the path whose version the reference came with: peers hold
	// this content there, so a later mode or mtime change of the same
	// content needs no upload.
	Path   string           `json:"path"`
	Pack   *proto.PackRef   `json:"pack,omitempty"`
	Parts  []crypto.BlobRef `json:"parts,omitempty"`
	Chunks *proto.ChunkList `json:"chunks,omitempty"`
}

func decodeRemote(b []byte) (remoteRef, bool) {
	var r remoteRef
	if len(b) == 0 || json.Unmarshal(b, &r) != nil {
		return remoteRef{}, false
	}
	return r, true
}

func encodeRemote(r remoteRef) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain struct of marshalable fields
	}
	return b
}

// blobs returns the IDs of the blobs r names.
func (r remoteRef) blobs() []crypto.BlobID {
	var ids []crypto.BlobID
	if r.Pack != nil {
		ids = append(ids, r.Pack.Blob.ID)
	}
	for _, p := range r.Parts {
		ids = append(ids, p.ID)
	}
	if r.Chunks != nil {
		for _, b := range r.Chunks.Blobs {
			ids = append(ids, b.ID)
		}
	}
	return ids
}

// reusable reports whether r still describes content of hash on the relay,
// written by node self, with every blob in live.
func (r remoteRef) reusable(self string, hash [32]byte, live map[crypto.BlobID]bool) bool {
	if r.Node != self || r.Hash != hash || (r.Pack == nil && len(r.Parts) == 0 && r.Chunks == nil) {
		return false
	}
	return !slices.ContainsFunc(r.blobs(), func(id crypto.BlobID) bool { return !live[id] })
}
