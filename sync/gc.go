package sync

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/decide"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// Collect deletes from the relay what this node wrote and every required
// puller acknowledged (sync/decide.Collectable): first the blobs, at once;
// then, once enough records are collected (Config.CompactAfter) or some time
// has passed (Config.CompactEvery), the records themselves, after a snapshot
// of this node's view that covers them is published for nodes that join
// later.
func (e *Engine) Collect(ctx context.Context) error {
	var ls logState
	in := decide.GCInput{
		N:           e.cfg.Pullers,
		Acks:        make(map[crypto.NodeID]uint64),
		LastSeen:    make(map[crypto.NodeID]time.Time),
		LockTimeout: e.cfg.LockTimeout,
		Now:         e.clock.Now(),
	}
	if in.LockTimeout < 0 {
		in.LockTimeout = 0
	}
	err := e.store.View(func(tx *cache.Tx) error {
		var err error
		if ls, err = loadLogState(tx); err != nil {
			return err
		}
		return e.eachPuller(tx, ls, func(id crypto.NodeID, ps peerState) {
			in.Pullers = append(in.Pullers, id)
			in.LastSeen[id] = ps.LastSeen
			if ps.HasAcked {
				in.Acks[id] = ps.Acked
			}
		})
	})
	if err != nil {
		return err
	}
	for _, r := range ls.Records {
		if !r.Published {
			// A record in the outbox may name blobs of older records (a
			// renamed file); collect nothing until it is out.
			return nil
		}
		rec := decide.Record{Seq: r.Seq}
		if !r.Collected {
			rec.Blobs = r.Blobs
		}
		in.Records = append(in.Records, rec)
	}
	res := decide.Collectable(in)
	if len(res.Seqs) == 0 {
		return nil
	}
	for _, id := range res.Blobs {
		if err := e.r.Delete(ctx, layout.BlobName(e.self, id)); err != nil {
			return fmt.Errorf("collecting blob %s: %w", id, err)
		}
		e.log.Debug("collected blob", "blob", id.String())
	}
	e.count(func(s *Stats) { s.BlobsDeleted += len(res.Blobs) })
	err = e.store.Update(func(tx *cache.Tx) error {
		cur, err := loadLogState(tx)
		if err != nil {
			return err
		}
		for i := range cur.Records {
			if cur.Records[i].Seq <= res.UpTo && cur.Records[i].Published {
				cur.Records[i].Collected = true
			}
		}
		ls = cur
		return saveLogState(tx, cur)
	})
	if err != nil {
		return err
	}
	waiting := 0
	for _, r := range ls.Records {
		if r.Collected {
			waiting++
		}
	}
	if waiting >= e.cfg.CompactAfter || (waiting > 0 && in.Now.Sub(ls.LastCompaction) >= e.cfg.CompactEvery) {
		return e.compact(ctx, res.UpTo)
	}
	return nil
}

// compact publishes a snapshot of this node's view covering its log up to
// upTo, then deletes the records it covers and older snapshots. Each step is
// recorded as it succeeds, so that an interrupted compaction resumes where
// it stopped instead of starting over.
func (e *Engine) compact(ctx context.Context, upTo uint64) error {
	var ls logState
	if err := e.store.View(func(tx *cache.Tx) (err error) { ls, err = loadLogState(tx); return err }); err != nil {
		return err
	}
	if !ls.HasSnapshot || ls.Snapshot < upTo {
		if err := e.publishSnapshot(ctx, upTo); err != nil {
			return err
		}
	} else {
		upTo = ls.Snapshot
	}
	// Delete what the snapshot covers, one object at a time.
	var gone int
	for _, r := range ls.Records {
		if r.Seq > upTo || !r.Collected {
			continue
		}
		if err := e.r.Delete(ctx, layout.LogName(e.self, r.Seq)); err != nil {
			return fmt.Errorf("deleting record %d: %w", r.Seq, err)
		}
		seq := r.Seq
		if err := e.updateLogState(func(s *logState) {
			s.Records = slices.DeleteFunc(s.Records, func(o ownRecord) bool { return o.Seq == seq })
		}); err != nil {
			return err
		}
		gone++
	}
	if err := e.store.View(func(tx *cache.Tx) (err error) { ls, err = loadLogState(tx); return err }); err != nil {
		return err
	}
	for _, old := range ls.OldSnapshots {
		if err := e.r.Delete(ctx, layout.SnapshotName(e.self, old)); err != nil {
			return fmt.Errorf("deleting an old snapshot: %w", err)
		}
		if err := e.updateLogState(func(s *logState) {
			s.OldSnapshots = slices.DeleteFunc(s.OldSnapshots, func(o uint64) bool { return o == old })
		}); err != nil {
			return err
		}
	}
	e.count(func(s *Stats) { s.RecsDeleted += gone })
	e.log.Debug("compacted the log", "up_to", upTo, "records", gone)
	return nil
}

// updateLogState changes the log state in one transaction.
func (e *Engine) updateLogState(fn func(*logState)) error {
	return e.store.Update(func(tx *cache.Tx) error {
		s, err := loadLogState(tx)
		if err != nil {
			return err
		}
		fn(&s)
		return saveLogState(tx, s)
	})
}

// publishSnapshot seals this node's whole view as the snapshot covering its
// log up to upTo and puts it on the relay.
func (e *Engine) publishSnapshot(ctx context.Context, upTo uint64) error {
	var sealed []byte
	err := e.store.View(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		sealed, _, err = e.sealSnapshot(tx, ls, upTo)
		return err
	})
	if err != nil {
		return fmt.Errorf("compacting the log: %w", err)
	}
	if err := e.r.Put(ctx, layout.SnapshotName(e.self, upTo), relay.BytesPayload(sealed)); err != nil {
		return fmt.Errorf("publishing a snapshot: %w", err)
	}
	e.count(func(s *Stats) { s.Records++ })
	return e.updateLogState(func(s *logState) {
		if s.HasSnapshot && s.Snapshot != upTo {
			s.OldSnapshots = append(s.OldSnapshots, s.Snapshot)
		}
		s.Snapshot, s.HasSnapshot = upTo, true
		s.LastCompaction = e.clock.Now()
	})
}

// sealSnapshot seals the snapshot of the node's state up to its record
// upTo, as the cache in tx holds it with log state ls, and says how many
// entries it has.
func (e *Engine) sealSnapshot(tx *cache.Tx, ls logState, upTo uint64) (sealed []byte, entries int, err error) {
	live := ls.liveBlobs()
	snap := proto.Snapshot{NodeName: e.cfg.Name, UpTo: upTo}
	if snap.Acks, err = e.acks(tx); err != nil {
		return nil, 0, err
	}
	err = tx.Walk("", func(ent cache.Entry) error {
		if c, ok := e.snapshotEntry(ent, live); ok {
			snap.Entries = append(snap.Entries, c)
		}
		return nil
	})
	snap.Version = proto.VersionFor(snap.Entries)
	if err != nil {
		return nil, 0, err
	}
	plain, err := proto.EncodeSnapshot(snap)
	if err != nil {
		return nil, 0, err
	}
	plain = proto.Pad(plain)
	sealed, err = e.sealer.Seal(crypto.RecordContext{Node: e.self, Seq: upTo, Kind: KindSnapshot}, plain)
	return sealed, len(snap.Entries), err
}

// snapshotEntry is the snapshot's form of an entry: its last pushed or
// pulled state. Dirty entries are left out (the next record brings them);
// content is referenced only while this node's blobs of it are live.
func (e *Engine) snapshotEntry(ent cache.Entry, live map[crypto.BlobID]bool) (proto.Change, bool) {
	if ent.Dirty || len(ent.Version) == 0 {
		return proto.Change{}, false
	}
	c := proto.Change{Path: ent.Path, Version: ent.Version}
	switch {
	case ent.Deleted:
		c.Op = proto.OpDelete
	case ent.Kind == cache.KindDir:
		c.Op, c.Mode, c.ModTime = proto.OpMkdir, unixMode(ent.Mode), ent.ModTime
	case ent.Kind == cache.KindSymlink:
		c.Op, c.Target, c.ModTime = proto.OpSymlink, ent.Target, ent.ModTime
	default:
		c.Op, c.Hash, c.Size, c.Mode, c.ModTime = proto.OpPut, ent.Hash, ent.Size, unixMode(ent.Mode), ent.ModTime
		if rr, ok := decodeRemote(ent.Remote); ok && rr.reusable(e.selfID, ent.Hash, live) {
			c.Pack, c.Parts, c.Chunks = rr.Pack, rr.Parts, rr.Chunks
		}
	}
	check := c
	if check.Op == proto.OpPut && check.Pack == nil && len(check.Parts) == 0 && check.Chunks == nil {
		check.Size = 0 // content withdrawn: valid in a snapshot
	}
	if check.Validate() != nil {
		return proto.Change{}, false
	}
	return c, true
}

// deleteOrphans deletes this node's blobs that no record names and no
// upload in progress holds: what a push interrupted between its upload and
// its record left behind. own are the node's blobs on the relay.
func (e *Engine) deleteOrphans(ctx context.Context, own []crypto.BlobID) error {
	if len(own) == 0 {
		return nil
	}
	keep := make(map[crypto.BlobID]bool)
	err := e.store.View(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		for _, r := range ls.Records {
			for _, b := range r.Blobs {
				keep[b] = true
			}
		}
		ups, err := loadMap[uploadProgress](tx, metaUploads)
		if err != nil {
			return err
		}
		for _, p := range ups {
			for _, r := range p.blobs() {
				keep[r.ID] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	for _, id := range own {
		if keep[id] {
			continue
		}
		if err := e.r.Delete(ctx, layout.BlobName(e.self, id)); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		e.log.Info("deleted blobs left on the relay by an interrupted push", "count", n)
	}
	return nil
}

// eachPuller calls fn with every peer that pulls and its state: the nodes
// whose acknowledgements collection waits for. An upload-only node fetches
// nothing; a retired node, forgotten (§12.13), no longer counts.
func (e *Engine) eachPuller(tx *cache.Tx, ls logState, fn func(crypto.NodeID, peerState)) error {
	for _, node := range ls.Peers {
		id, err := crypto.ParseNodeID(node)
		if err != nil {
			continue
		}
		ps, ok, err := loadPeer(tx, node)
		if err != nil {
			return err
		}
		if ok && ps.Mode.Pulls() && !e.isForgotten(id, ps.MaxSeq) {
			fn(id, ps)
		}
	}
	return nil
}
