package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// maxRecord bounds what is read of one record: a 64 MiB plaintext and the
// framing of docs/format.md §7.
const maxRecord = 64<<20 + 64

// peerListing is what one listing showed of a peer.
type peerListing struct {
	logs  map[uint64]bool
	snaps []uint64
	max   uint64
}

// PullResult tells what a Pull did.
type PullResult struct {
	Records int // peer records (and snapshots) applied
	Applied int // changes that changed something here
}

// Pull lists the peers' logs (one listing) and applies, peer by peer and in
// order, every record not applied yet. A record that fails to open (forged,
// tampered, replayed) stops that peer's log there and is reported; the other
// peers go on.
func (e *Engine) Pull(ctx context.Context) (PullResult, error) {
	e.applyForgetRequests(ctx)
	if e.cfg.Mode.Pulls() {
		if err := e.retryDeferred(ctx); err != nil {
			return PullResult{}, err
		}
	}
	l, err := e.listRelay(ctx)
	if err != nil {
		return PullResult{}, err
	}
	e.usage.Store(l.usage)
	e.usageKnown = true
	if err := e.checkConfig(ctx, l.config); err != nil {
		return PullResult{}, err
	}
	var errs []error
	if err := e.checkMoved(ctx, l.moved); errors.Is(err, ErrMoved) || ctx.Err() != nil {
		return PullResult{}, err
	} else if err != nil {
		errs = append(errs, err)
	}
	e.noteForgets(ctx, l.forgets, l.peers)
	if err := e.housekeep(ctx, l); err != nil {
		return PullResult{}, err
	}
	ids := slices.SortedFunc(maps.Keys(l.peers), func(a, b crypto.NodeID) int { return bytes.Compare(a[:], b[:]) })
	var res PullResult
	e.mass = massCounts{start: e.clock.Now()}
	defer e.checkMass()
	for _, id := range ids {
		r, err := e.pullPeer(ctx, id, l.peers[id])
		res.Records += r.Records
		res.Applied += r.Applied
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if err := e.clearDeadPeers(ctx, l.peers, l.others); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// relayListing is what one listing of the whole relay showed.
type relayListing struct {
	usage         int64
	config, moved *relay.ObjectInfo
	peers         map[crypto.NodeID]*peerListing
	forgets       []relay.ObjectInfo
	own           []crypto.BlobID                   // this node's blobs
	others        map[crypto.NodeID][]crypto.BlobID // the other nodes' blobs
	ownLog        map[string]relay.ObjectInfo       // this node's records
}

// listRelay lists the whole relay.
func (e *Engine) listRelay(ctx context.Context) (*relayListing, error) {
	l := &relayListing{peers: make(map[crypto.NodeID]*peerListing), others: make(map[crypto.NodeID][]crypto.BlobID),
		ownLog: make(map[string]relay.ObjectInfo)}
	err := e.r.List(ctx, "", func(oi relay.ObjectInfo) error {
		l.usage += oi.Size
		o := layout.Parse(oi.Name)
		switch o.Kind {
		case layout.Config:
			l.config = &oi
		case layout.Moved:
			l.moved = &oi
		case layout.Blob:
			if o.Node == e.self {
				l.own = append(l.own, o.Blob)
			} else {
				l.others[o.Node] = append(l.others[o.Node], o.Blob)
			}
		case layout.Forget:
			l.forgets = append(l.forgets, oi)
		case layout.Log, layout.Snapshot:
			if o.Node == e.self {
				l.ownLog[oi.Name] = oi
			} else {
				l.peer(o)
			}
		case layout.Unknown:
			if strings.HasPrefix(oi.Name, layout.NodesDir+"/") {
				e.log.Debug("ignoring unknown object on the relay", "name", oi.Name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the relay: %w", err)
	}
	return l, nil
}

// peer notes a listed record or snapshot of a peer.
func (l *relayListing) peer(o layout.Object) {
	pl := l.peers[o.Node]
	if pl == nil {
		pl = &peerListing{logs: make(map[uint64]bool)}
		l.peers[o.Node] = pl
	}
	if o.Kind == layout.Snapshot {
		pl.snaps = append(pl.snaps, o.Seq)
	} else {
		pl.logs[o.Seq] = true
	}
	pl.max = max(pl.max, o.Seq)
}

// housekeep tidies this node's objects on the relay before a pull: the
// temporary objects a killed run left (once per start), the blobs no
// record names, and its log if the relay lost it.
func (e *Engine) housekeep(ctx context.Context, l *relayListing) error {
	if !e.ownTempCleared {
		// Temporary objects of Puts a killed run of this node left: only
		// one process runs a node, and nothing is being put now.
		e.ownTempCleared = true
		for _, dir := range []string{layout.BlobDir(e.self), layout.NodeDir(e.self)} {
			if n, err := e.removeTemp(ctx, dir); err != nil {
				e.log.Warn("removing temporary objects of an interrupted run", "dir", dir, "err", err)
			} else if n > 0 {
				e.log.Info("removed temporary objects of an interrupted run from the relay", "count", n)
			}
		}
	}
	// Blobs of this node that no record names were left by a push that
	// failed between its upload and its record (nothing else uploads
	// while a Pull runs).
	if err := e.deleteOrphans(ctx, l.own); err != nil {
		e.log.Warn("deleting blobs left by an interrupted push", "err", err)
	}
	// A relay wiped or restored from an older copy lost this node's log:
	// republish it from the cache (fix.go).
	if err := e.ensureOwnLog(ctx, l.ownLog); err != nil {
		return fmt.Errorf("republishing this node's log: %w", err)
	}
	return nil
}

// clearDeadPeers deletes the stale objects of peers silent for longer than
// the lock timeout: blobs that none of their records on the relay names,
// left by a push they never finished. Their records, and the blobs those
// name, stay: a node may come back. Each dead peer is looked at once per
// run, and again only when it is seen writing and falls silent again.
func (e *Engine) clearDeadPeers(ctx context.Context, peers map[crypto.NodeID]*peerListing, blobs map[crypto.NodeID][]crypto.BlobID) error {
	if e.cfg.LockTimeout <= 0 {
		return nil
	}
	now := e.clock.Now()
	for node, ids := range blobs {
		if e.cleared[node] {
			continue
		}
		var ps peerState
		var known bool
		err := e.store.View(func(tx *cache.Tx) (err error) {
			ps, known, err = loadPeer(tx, node.String())
			return err
		})
		if err != nil {
			return err
		}
		if !known || now.Sub(ps.LastSeen) <= e.cfg.LockTimeout {
			continue
		}
		named := make(map[crypto.BlobID]bool)
		name := func(changes []proto.Change) {
			for _, c := range changes {
				for _, r := range c.BlobRefs() {
					named[r.ID] = true
				}
			}
		}
		if pl := peers[node]; pl != nil && len(pl.snaps) > 0 {
			seq := slices.Max(pl.snaps)
			plain, err := e.fetchRecord(ctx, layout.SnapshotName(node, seq), crypto.RecordContext{Node: node, Seq: seq, Kind: KindSnapshot})
			if err != nil {
				return fmt.Errorf("reading a silent peer's snapshot: %w", err)
			}
			s, err := proto.DecodeSnapshot(plain)
			if err != nil {
				return fmt.Errorf("reading a silent peer's snapshot: %w: %w", err, ErrBadRecord)
			}
			name(s.Entries)
		}
		if pl := peers[node]; pl != nil {
			for seq := range pl.logs {
				plain, err := e.fetchRecord(ctx, layout.LogName(node, seq), crypto.RecordContext{Node: node, Seq: seq, Kind: KindLog})
				if err != nil {
					return fmt.Errorf("reading a silent peer's log: %w", err)
				}
				l, err := proto.DecodeLog(plain)
				if err != nil {
					return fmt.Errorf("reading a silent peer's log: %w: %w", err, ErrBadRecord)
				}
				name(l.Changes)
			}
		}
		n, err := e.removeTemp(ctx, layout.BlobDir(node))
		if err != nil {
			return fmt.Errorf("clearing a silent peer's temporary objects: %w", err)
		}
		for _, id := range ids {
			if named[id] {
				continue
			}
			if err := e.r.Delete(ctx, layout.BlobName(node, id)); err != nil {
				return fmt.Errorf("clearing a silent peer's stale blob: %w", err)
			}
			n++
		}
		e.cleared[node] = true
		if n > 0 {
			e.log.Info("cleared stale objects of a peer silent beyond the lock timeout", "node", node.String(), "name", ps.Name, "blobs", n)
		}
	}
	return nil
}

// pullPeer applies what one peer's listing shows beyond what was applied.
func (e *Engine) pullPeer(ctx context.Context, id crypto.NodeID, pl *peerListing) (PullResult, error) {
	next, known, err := e.notePeerListed(id, pl)
	if err != nil {
		return PullResult{}, err
	}
	p := &peerPull{e: e, ctx: ctx, id: id, max: pl.max, known: known}
	if !pl.logs[next] {
		// The records this node needs next are gone: compacted into a
		// snapshot (this node was away, or joins late).
		if best, found := newestSnapshot(pl.snaps, next); found {
			stop, err := p.take(func() (int, error) { return e.applySnapshot(ctx, id, best) })
			if stop || err != nil {
				return p.res, err
			}
			next = best + 1
		}
	}
	for pl.logs[next] {
		seq := next
		stop, err := p.take(func() (int, error) { return e.applyRecord(ctx, id, seq) })
		if stop || err != nil {
			return p.res, err
		}
		next++
	}
	if next <= pl.max && !pl.logs[next] && len(pl.logs) > 0 {
		e.log.Debug("waiting for a record of a peer", "node", id.String(), "seq", next)
	}
	return p.res, nil
}

// notePeerListed returns the sequence number of the next record of peer
// id to apply and whether it is a known peer, and records when a known
// peer last wrote (its newest record listed in pl).
func (e *Engine) notePeerListed(id crypto.NodeID, pl *peerListing) (next uint64, known bool, err error) {
	node := id.String()
	err = e.store.Update(func(tx *cache.Tx) error {
		seq, ok, err := tx.PeerSeq(node)
		if err != nil {
			return err
		}
		if ok {
			next = seq + 1
		}
		var ps peerState
		ps, known, err = loadPeer(tx, node)
		if err != nil || !known {
			return err // a new peer is added once a record of it opens
		}
		if pl.max > ps.MaxSeq {
			ps.LastSeen, ps.MaxSeq = e.clock.Now(), pl.max
			delete(e.cleared, id) // alive again: look again should it fall silent
		}
		return savePeer(tx, node, ps)
	})
	return next, known, err
}

// newestSnapshot returns the newest of snaps at or after next.
func newestSnapshot(snaps []uint64, next uint64) (uint64, bool) {
	best, found := uint64(0), false
	for _, s := range snaps {
		if s >= next && (!found || s > best) {
			best, found = s, true
		}
	}
	return best, found
}

// peerPull is the pull of one peer's records.
type peerPull struct {
	e     *Engine
	ctx   context.Context
	id    crypto.NodeID
	max   uint64 // the peer's newest record listed
	known bool   // a peer already; a new one once a record of it opens
	res   PullResult
}

// take applies one record or snapshot (apply) and counts it; stop: the
// peer's records do not open (not a node of this repository).
func (p *peerPull) take(apply func() (int, error)) (stop bool, err error) {
	n, err := apply()
	if p.unreadable(err) {
		return true, nil
	}
	if err == nil && !p.known {
		// The first record of a new peer that opens makes it a peer.
		p.known = true
		delete(p.e.unreadable, p.id)
		err = p.e.addNewPeer(p.id, p.max)
	}
	if err != nil {
		return false, err
	}
	p.res.Records++
	p.res.Applied += n
	return false, nil
}

// unreadable tells whether err is that of a new peer whose first record
// does not open: not a node of this repository (another repository's
// node, a relay's forgery, garbage). It holds nothing back and fails no
// round: it is reported once.
func (p *peerPull) unreadable(err error) bool {
	e, node := p.e, p.id.String()
	if p.known || err == nil || p.ctx.Err() != nil {
		return false
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Listed, then gone: a node that left the repository (it created
		// one at the same moment as another node).
		e.log.Debug("the records of a new node are gone", "node", node)
		return true
	}
	if !(errors.Is(err, crypto.ErrRecordCorrupt) || errors.Is(err, ErrBadRecord)) {
		return false
	}
	if !e.unreadable[p.id] {
		e.unreadable[p.id] = true
		e.log.Warn("the relay holds records of a node that do not open with this repository's key: ignored",
			"node", node, "err", err)
	}
	return true
}

// addNewPeer makes id, whose first record just opened, a peer of this
// node: it counts as a puller from now on.
func (e *Engine) addNewPeer(id crypto.NodeID, maxSeq uint64) error {
	node := id.String()
	err := e.store.Update(func(tx *cache.Tx) error {
		ps, _, err := loadPeer(tx, node)
		if err != nil {
			return err
		}
		now := e.clock.Now()
		ps.FirstSeen, ps.LastSeen, ps.MaxSeq = now, now, max(ps.MaxSeq, maxSeq)
		if err := e.addPeer(tx, node); err != nil {
			return err
		}
		return savePeer(tx, node, ps)
	})
	if err == nil {
		e.log.Info("new peer", "node", e.nodeLabel(node))
	}
	return err
}

// checkConfig makes sure the relay's escale.json is still the one this node
// joined: two nodes that created a repository at the same moment, or a
// relay that swapped the file, would otherwise leave nodes that cannot read
// each other's records. It reads the file again only when the listing shows
// it changed.
func (e *Engine) checkConfig(ctx context.Context, oi *relay.ObjectInfo) error {
	if oi == nil {
		// Some object stores list new objects only some time after they
		// were stored (eventually consistent listings), while a Stat
		// sees them at once: a repository just created is not gone.
		st, err := e.r.Stat(ctx, crypto.ConfigName)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s is gone from the relay: %w", crypto.ConfigName, ErrRepoChanged)
		case err != nil:
			return fmt.Errorf("checking %s: %w", crypto.ConfigName, err)
		}
		oi = &st
	}
	if e.configSeen != nil && e.configSeen.Size == oi.Size && e.configSeen.ModTime.Equal(oi.ModTime) {
		return nil
	}
	data, err := readConfig(ctx, e.r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", crypto.ConfigName, err)
	}
	if sha256.Sum256(data) != e.cfg.Repo.Hash {
		return fmt.Errorf("%s on the relay is no longer the one this node joined (did another node create the repository at the same moment?); "+
			"stop every node, keep one escale.json, and start again: %w", crypto.ConfigName, ErrRepoChanged)
	}
	seen := *oi
	e.configSeen = &seen
	return nil
}

// removeTemp deletes every temporary object under dir, where the relay can
// find them (relay.TempRemover); 0 elsewhere.
func (e *Engine) removeTemp(ctx context.Context, dir string) (int, error) {
	t, ok := relay.As[relay.TempRemover](e.r)
	if !ok {
		return 0, nil
	}
	n, err := t.RemoveTemp(ctx, dir, time.Now().Add(24*time.Hour))
	if errors.Is(err, relay.ErrUnsupported) {
		return 0, nil
	}
	return n, err
}

// addPeer registers node as a puller, after the ones already known.
func (e *Engine) addPeer(tx *cache.Tx, node string) error {
	ls, err := loadLogState(tx)
	if err != nil {
		return err
	}
	if slices.Contains(ls.Peers, node) {
		return nil
	}
	ls.Peers = append(ls.Peers, node)
	return saveLogState(tx, ls)
}

// fetchRecord reads and opens a record of kind from the relay.
func (e *Engine) fetchRecord(ctx context.Context, name string, rc crypto.RecordContext) ([]byte, error) {
	return readRecord(ctx, e.r, e.sealer, name, rc)
}

// ErrBadRecord means a peer's record on the relay cannot be trusted: it does
// not open under its name (forged, altered, replayed or moved) or does not
// decode. The peer's log is not applied past it.
var ErrBadRecord = errors.New("bad record")

// applyRecord fetches, opens and applies record seq of peer id, then marks
// it applied.
func (e *Engine) applyRecord(ctx context.Context, id crypto.NodeID, seq uint64) (int, error) {
	name := layout.LogName(id, seq)
	plain, err := e.fetchRecord(ctx, name, crypto.RecordContext{Node: id, Seq: seq, Kind: KindLog})
	if err != nil {
		return 0, err
	}
	l, err := proto.DecodeLog(plain)
	if err != nil {
		return 0, fmt.Errorf("record %s: %w: %w", name, err, ErrBadRecord)
	}
	e.learnName(id.String(), l.NodeName)
	n := 0
	if e.cfg.Mode.Pulls() {
		if n, err = e.applyChanges(ctx, id, seq, l.Changes, false); err != nil {
			return n, err
		}
	}
	if err := e.answer(id, l.Requests); err != nil {
		return n, err
	}
	return n, e.markApplied(id, seq, l.NodeName, &l.Mode, l.Acks, len(l.Changes) > 0 && e.cfg.Mode.Pulls())
}

// applySnapshot applies peer id's snapshot covering its log up to seq.
func (e *Engine) applySnapshot(ctx context.Context, id crypto.NodeID, seq uint64) (int, error) {
	name := layout.SnapshotName(id, seq)
	plain, err := e.fetchRecord(ctx, name, crypto.RecordContext{Node: id, Seq: seq, Kind: KindSnapshot})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // replaced by a newer one meanwhile: the next poll sees it
	}
	if err != nil {
		return 0, err
	}
	s, err := proto.DecodeSnapshot(plain)
	if err == nil && s.UpTo != seq {
		err = fmt.Errorf("covers records up to %d, named %d", s.UpTo, seq)
	}
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w: %w", name, err, ErrBadRecord)
	}
	e.log.Info("reading a peer's snapshot", "node", id.String(), "name", s.NodeName, "up_to", seq, "entries", len(s.Entries))
	e.learnName(id.String(), s.NodeName)
	n := 0
	if e.cfg.Mode.Pulls() {
		if n, err = e.applyChanges(ctx, id, seq, s.Entries, true); err != nil {
			return n, err
		}
	}
	return n, e.markApplied(id, seq, s.NodeName, nil, s.Acks, len(s.Entries) > 0 && e.cfg.Mode.Pulls())
}

// markApplied records that record seq of peer id is applied, and what it
// said about this node's log.
func (e *Engine) markApplied(id crypto.NodeID, seq uint64, name string, mode *proto.Mode, acks map[crypto.NodeID]uint64, ackDue bool) error {
	node := id.String()
	return e.store.Update(func(tx *cache.Tx) error {
		if err := tx.SetPeerSeq(node, seq); err != nil {
			return err
		}
		ps, _, err := loadPeer(tx, node)
		if err != nil {
			return err
		}
		ps.Name = name
		if mode != nil {
			ps.Mode = *mode
		}
		if a, ok := acks[e.self]; ok && (!ps.HasAcked || a > ps.Acked) {
			ps.Acked, ps.HasAcked = a, true
		}
		if ps.AckedOf == nil && len(acks) > 0 {
			ps.AckedOf = make(map[string]uint64, len(acks))
		}
		for n, a := range acks {
			ps.AckedOf[n.String()] = max(ps.AckedOf[n.String()], a)
		}
		if err := savePeer(tx, node, ps); err != nil {
			return err
		}
		if ackDue {
			return tx.SetMeta(metaAckDue, []byte{1})
		}
		return nil
	})
}
