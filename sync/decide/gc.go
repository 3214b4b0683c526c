package decide

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/escalefs/escalefs/crypto"
)

// Record is one record of this node's log: its sequence number and the
// blobs it introduced.
type Record struct {
	Seq   uint64
	Blobs []crypto.BlobID
}

// GCInput is what Collectable looks at. The caller lists this node's own
// records and its peers' view of them; this node is not one of Pullers.
type GCInput struct {
	Records []Record
	// Pullers are the peers registered to pull this node's log, in
	// registration order (duplicates after the first are ignored).
	Pullers []crypto.NodeID
	// N is the configured puller count, as Escale's "puller count": a
	// record is collected once N active pullers, whichever they are, acked
	// it. 0 means every active puller.
	N int
	// Acks is, per peer, the highest sequence number of this node's log the
	// peer acked (proto.Log.Acks of the peer's latest record). A missing
	// peer has acked nothing.
	Acks map[crypto.NodeID]uint64
	// LastSeen is, per peer, when it was last seen writing to the relay. A
	// peer missing here counts as silent forever: pass its registration
	// time until it first writes.
	LastSeen map[crypto.NodeID]time.Time
	// LockTimeout is how long a peer may stay silent and still hold GC
	// back; a peer with Now − LastSeen > LockTimeout is not active. 0 or
	// less disables the timeout: every puller is active.
	LockTimeout time.Duration
	Now         time.Time
}

// Holder is an active puller whose ack holds GC back.
type Holder struct {
	Node crypto.NodeID
	Ack  uint64
}

// GCResult is what may be deleted from the relay, and why not more.
type GCResult struct {
	// UpTo is the highest sequence number that enough active pullers (N,
	// or all) acked; 0 when nothing is collectable.
	UpTo uint64
	// Seqs are the sequence numbers of the collectable records, ascending.
	Seqs []uint64
	// Blobs are the blobs introduced only by collectable records, sorted by
	// their bytes, without duplicates. A blob also listed by a record that
	// is not collectable is kept.
	Blobs []crypto.BlobID
	// Required are the active pullers, whose acks count, in registration
	// order.
	Required []crypto.NodeID
	// Inactive are the pullers that are silent beyond LockTimeout (or never
	// seen), in registration order; they hold nothing back.
	Inactive []crypto.NodeID
	// HeldBy are the active pullers that have not acked the last record,
	// in registration order, when too few have for it to be collected;
	// empty when everything is collectable. When no
	// puller is active, HeldBy is empty and NoActivePullers is set.
	HeldBy []Holder
	// NoActivePullers is set when no puller is active: then nothing is
	// collectable, as nobody is known to have fetched anything.
	NoActivePullers bool
}

// Collectable returns which of this node's records and blobs may be deleted
// from the relay.
//
// A puller is active unless Now − LastSeen > LockTimeout (or it was never
// seen, with a positive LockTimeout); an inactive puller is passed over. A
// record, and the blobs it introduced, is collectable when N active
// pullers, whichever they are (every active puller when N is 0 or when
// fewer than N are active), acked at least its sequence number. With no
// active puller nothing is collectable: data no one is known to have
// fetched is never deleted.
func Collectable(in GCInput) GCResult {
	var res GCResult
	seen := make(map[crypto.NodeID]bool, len(in.Pullers))
	for _, p := range in.Pullers {
		if seen[p] {
			continue
		}
		seen[p] = true
		if !active(in, p) {
			res.Inactive = append(res.Inactive, p)
			continue
		}
		res.Required = append(res.Required, p)
	}
	if len(res.Required) == 0 {
		res.NoActivePullers = true
		return res
	}
	need := len(res.Required)
	if in.N > 0 && in.N < need {
		need = in.N
	}
	var acks []uint64
	for _, p := range res.Required {
		if a, ok := in.Acks[p]; ok {
			acks = append(acks, a)
		}
	}
	slices.SortFunc(acks, func(a, b uint64) int { return cmp.Compare(b, a) })
	acked := len(acks) >= need
	var upTo uint64
	if acked {
		upTo = acks[need-1] // need pullers acked at least this far
	}
	res.UpTo = upTo

	var last uint64
	for _, r := range in.Records {
		last = max(last, r.Seq)
	}
	if !acked || upTo < last {
		for _, p := range res.Required {
			if a := in.Acks[p]; a < last {
				res.HeldBy = append(res.HeldBy, Holder{Node: p, Ack: a})
			}
		}
	}

	kept := make(map[crypto.BlobID]bool)
	drop := make(map[crypto.BlobID]bool)
	for _, r := range in.Records {
		if acked && r.Seq <= upTo {
			res.Seqs = append(res.Seqs, r.Seq)
			for _, b := range r.Blobs {
				drop[b] = true
			}
		} else {
			for _, b := range r.Blobs {
				kept[b] = true
			}
		}
	}
	for b := range drop {
		if !kept[b] {
			res.Blobs = append(res.Blobs, b)
		}
	}
	slices.Sort(res.Seqs)
	res.Seqs = slices.Compact(res.Seqs)
	slices.SortFunc(res.Blobs, func(a, b crypto.BlobID) int { return bytes.Compare(a[:], b[:]) })
	return res
}

// active reports whether puller p still holds GC back.
func active(in GCInput, p crypto.NodeID) bool {
	if in.LockTimeout <= 0 {
		return true
	}
	t, ok := in.LastSeen[p]
	if !ok {
		return false
	}
	return in.Now.Sub(t) <= in.LockTimeout
}
