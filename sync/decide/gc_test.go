package decide_test

import (
	"slices"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/decide"
)

var (
	p1 = crypto.NodeID{1}
	p2 = crypto.NodeID{2}
	p3 = crypto.NodeID{3}
)

func blob(b byte) crypto.BlobID { return crypto.BlobID{b} }

func TestCollectable(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	timeout := 10 * time.Minute
	fresh := now.Add(-time.Minute)
	stale := now.Add(-timeout - time.Second)
	records := []decide.Record{
		{Seq: 3, Blobs: []crypto.BlobID{blob(3)}},
		{Seq: 1, Blobs: []crypto.BlobID{blob(9), blob(1)}},
		{Seq: 2},
		{Seq: 4, Blobs: []crypto.BlobID{blob(4), blob(1)}}, // blob 1 also in a later record
	}
	allFresh := map[crypto.NodeID]time.Time{p1: fresh, p2: fresh, p3: fresh}
	for _, tc := range []struct {
		name     string
		pullers  []crypto.NodeID
		n        int
		acks     map[crypto.NodeID]uint64
		seen     map[crypto.NodeID]time.Time
		timeout  time.Duration
		seqs     []uint64
		blobs    []crypto.BlobID
		held     []decide.Holder
		inactive []crypto.NodeID
		none     bool
	}{
		{name: "all acked", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 4}, seen: allFresh,
			seqs: []uint64{1, 2, 3, 4}, blobs: []crypto.BlobID{blob(1), blob(3), blob(4), blob(9)}},
		{name: "acks beyond last seq", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 40, p2: 7}, seen: allFresh,
			seqs: []uint64{1, 2, 3, 4}, blobs: []crypto.BlobID{blob(1), blob(3), blob(4), blob(9)}},
		{name: "one lagging", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 2}, seen: allFresh,
			seqs: []uint64{1, 2}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p2, Ack: 2}}},
		{name: "one never acked", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4}, seen: allFresh,
			held: []decide.Holder{{Node: p2}}},
		{name: "lagging within lock timeout", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 1},
			seen: map[crypto.NodeID]time.Time{p1: fresh, p2: now.Add(-timeout)},
			seqs: []uint64{1}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p2, Ack: 1}}},
		{name: "lagging beyond lock timeout", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 1},
			seen: map[crypto.NodeID]time.Time{p1: fresh, p2: stale},
			seqs: []uint64{1, 2, 3, 4}, blobs: []crypto.BlobID{blob(1), blob(3), blob(4), blob(9)}, inactive: []crypto.NodeID{p2}},
		{name: "never seen is inactive", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 3},
			seen: map[crypto.NodeID]time.Time{p1: fresh},
			seqs: []uint64{1, 2, 3}, blobs: []crypto.BlobID{blob(3), blob(9)}, inactive: []crypto.NodeID{p2},
			held: []decide.Holder{{Node: p1, Ack: 3}}},
		{name: "no timeout: silent puller holds back", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 1},
			seen: map[crypto.NodeID]time.Time{p1: fresh}, timeout: -1,
			seqs: []uint64{1}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p2, Ack: 1}}},
		{name: "pullers=2 of 3, third lagging", pullers: []crypto.NodeID{p1, p2, p3}, n: 2,
			acks: map[crypto.NodeID]uint64{p1: 4, p2: 3, p3: 0}, seen: allFresh,
			seqs: []uint64{1, 2, 3}, blobs: []crypto.BlobID{blob(3), blob(9)}, held: []decide.Holder{{Node: p2, Ack: 3}, {Node: p3, Ack: 0}}},
		{name: "pullers=2 of 3, first lagging: any two count", pullers: []crypto.NodeID{p1, p2, p3}, n: 2,
			acks: map[crypto.NodeID]uint64{p1: 1, p2: 4, p3: 4}, seen: allFresh,
			seqs: []uint64{1, 2, 3, 4}, blobs: []crypto.BlobID{blob(1), blob(3), blob(4), blob(9)}},
		{name: "pullers=2 of 3, one never acked", pullers: []crypto.NodeID{p1, p2, p3}, n: 2,
			acks: map[crypto.NodeID]uint64{p2: 2, p3: 4}, seen: allFresh,
			seqs: []uint64{1, 2}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p1}, {Node: p2, Ack: 2}}},
		{name: "pullers=2 of 3, first stale: third counts", pullers: []crypto.NodeID{p1, p2, p3}, n: 2,
			acks: map[crypto.NodeID]uint64{p1: 0, p2: 4, p3: 2}, seen: map[crypto.NodeID]time.Time{p1: stale, p2: fresh, p3: fresh},
			seqs: []uint64{1, 2}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p3, Ack: 2}}, inactive: []crypto.NodeID{p1}},
		{name: "pullers=3, only 2 active", pullers: []crypto.NodeID{p1, p2, p3}, n: 3,
			acks: map[crypto.NodeID]uint64{p1: 4, p2: 4}, seen: map[crypto.NodeID]time.Time{p1: fresh, p2: fresh, p3: stale},
			seqs: []uint64{1, 2, 3, 4}, blobs: []crypto.BlobID{blob(1), blob(3), blob(4), blob(9)}, inactive: []crypto.NodeID{p3}},
		{name: "duplicate pullers", pullers: []crypto.NodeID{p1, p1, p2}, n: 2, acks: map[crypto.NodeID]uint64{p1: 4, p2: 1}, seen: allFresh,
			seqs: []uint64{1}, blobs: []crypto.BlobID{blob(9)}, held: []decide.Holder{{Node: p2, Ack: 1}}},
		{name: "no active pullers", pullers: []crypto.NodeID{p1, p2}, acks: map[crypto.NodeID]uint64{p1: 4, p2: 4},
			seen: map[crypto.NodeID]time.Time{p1: stale, p2: stale}, inactive: []crypto.NodeID{p1, p2}, none: true},
		{name: "no pullers", acks: map[crypto.NodeID]uint64{p1: 4}, seen: allFresh, none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := timeout
			if tc.timeout != 0 {
				to = tc.timeout
			}
			res := decide.Collectable(decide.GCInput{Records: records, Pullers: tc.pullers, N: tc.n, Acks: tc.acks,
				LastSeen: tc.seen, LockTimeout: to, Now: now})
			if !slices.Equal(res.Seqs, tc.seqs) || !slices.Equal(res.Blobs, tc.blobs) {
				t.Errorf("seqs %v blobs %v, want %v %v", res.Seqs, res.Blobs, tc.seqs, tc.blobs)
			}
			if !slices.Equal(res.HeldBy, tc.held) || !slices.Equal(res.Inactive, tc.inactive) || res.NoActivePullers != tc.none {
				t.Errorf("held %v inactive %v none %v, want %v %v %v", res.HeldBy, res.Inactive, res.NoActivePullers,
					tc.held, tc.inactive, tc.none)
			}
		})
	}
}

func TestCollectableSeqZero(t *testing.T) {
	in := decide.GCInput{Records: []decide.Record{{Seq: 0, Blobs: []crypto.BlobID{blob(1)}}}, Pullers: []crypto.NodeID{p1, p2},
		Acks: map[crypto.NodeID]uint64{p1: 0}, LockTimeout: -1}
	if res := decide.Collectable(in); len(res.Seqs) != 0 || len(res.Blobs) != 0 {
		t.Fatalf("record 0 collected without every ack: %+v", res)
	}
	in.Acks[p2] = 0
	if res := decide.Collectable(in); !slices.Equal(res.Seqs, []uint64{0}) || len(res.Blobs) != 1 {
		t.Fatalf("record 0 acked by all not collected: %+v", res)
	}
}
