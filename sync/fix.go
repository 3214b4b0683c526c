package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
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

// Rebuilding a lost or damaged relay (docs/format.md §12.15, `escalefs
// fix`). A node's cache holds everything it published: escale.json's bytes,
// its sequence numbers and its whole view. From them a node restores
// escale.json when the relay lost it, and republishes its view as a fresh
// snapshot covering its whole log, with every file's content uploaded again
// where the relay lost or damaged it; it then deletes its damaged objects.
// It keeps its sequence numbers: the snapshot is sealed under the last one
// it used, and its next record follows it, so no name is reused and no peer
// takes it for a replay. A running engine does the same for its own log
// when it finds it gone (ensureOwnLog).

// FixOptions configure Fix.
type FixOptions struct {
	// Apply carries the plan out; without it Fix only looks and plans.
	Apply bool
	// Quick skips reading every blob to check its hash: only the blobs'
	// presence and sizes are checked.
	Quick bool
}

// Damage is one damaged object on the relay.
type Damage struct {
	Name string // the object's relay name
	Node crypto.NodeID
	// NodeName is the writer's name, as this node knows it ("" if
	// unknown).
	NodeName string
	Own      bool   // written by this node: Fix deletes and replaces it
	Reason   string // why it is damaged
}

// FixReport is what Fix found, and did or would do.
type FixReport struct {
	Node crypto.NodeID
	// RestoreConfig: the relay holds no escale.json; it is (or would be)
	// written back from the node's cache.
	RestoreConfig bool
	Repository    crypto.RepoID
	// Missing are this node's objects that the relay should hold and
	// does not (its records, snapshot, or live blobs).
	Missing []string
	// Damaged are the damaged objects found, this node's and others'.
	Damaged []Damage
	// Republish: this node's view is (or would be) republished as a
	// snapshot covering its log up to UpTo.
	Republish bool
	UpTo      uint64
	// Entries of the snapshot: Files (UploadFiles of which have their
	// content uploaded again, UploadBytes in all), Dirs, Symlinks and
	// Tombstones. NoContent are files published without content (not on
	// disk, or not pushable from this node): peers ask for them.
	Files, Dirs, Symlinks, Tombstones int
	UploadFiles                       int
	UploadBytes                       int64
	NoContent                         int
	// Deleted are this node's damaged objects deleted (Apply).
	Deleted []string
	// Applied is set once the plan was carried out.
	Applied bool
}

// Clean reports whether the relay needs nothing from this node.
func (r *FixReport) Clean() bool {
	return !r.RestoreConfig && !r.Republish && len(r.Damaged) == 0
}

// OthersDamaged returns the damaged objects of other nodes, which only
// their own node can replace.
func (r *FixReport) OthersDamaged() []Damage {
	var out []Damage
	for _, d := range r.Damaged {
		if !d.Own {
			out = append(out, d)
		}
	}
	return out
}

// fixListing is what the relay holds, as Fix sees it.
type fixListing struct {
	config   bool
	objects  map[string]int64 // name → size
	ownLogs  map[uint64]bool
	ownSnaps []uint64
	peerRecs []recName
	blobs    map[crypto.NodeID]map[crypto.BlobID]int64
}

type recName struct {
	node crypto.NodeID
	seq  uint64
	snap bool
}

func (r recName) name() string {
	if r.snap {
		return layout.SnapshotName(r.node, r.seq)
	}
	return layout.LogName(r.node, r.seq)
}

func (r recName) kind() string {
	if r.snap {
		return KindSnapshot
	}
	return KindLog
}

func (e *Engine) fixList(ctx context.Context) (*fixListing, error) {
	l := &fixListing{objects: make(map[string]int64), ownLogs: make(map[uint64]bool),
		blobs: make(map[crypto.NodeID]map[crypto.BlobID]int64)}
	err := e.r.List(ctx, "", func(oi relay.ObjectInfo) error {
		l.objects[oi.Name] = oi.Size
		o := layout.Parse(oi.Name)
		switch o.Kind {
		case layout.Config:
			l.config = true
			return nil
		case layout.Blob:
			if l.blobs[o.Node] == nil {
				l.blobs[o.Node] = make(map[crypto.BlobID]int64)
			}
			l.blobs[o.Node][o.Blob] = oi.Size
			return nil
		case layout.Log, layout.Snapshot:
		default:
			return nil
		}
		rn := recName{node: o.Node, seq: o.Seq, snap: o.Kind == layout.Snapshot}
		switch {
		case rn.node != e.self:
			l.peerRecs = append(l.peerRecs, rn)
		case rn.snap:
			l.ownSnaps = append(l.ownSnaps, rn.seq)
		default:
			l.ownLogs[rn.seq] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the relay: %w", err)
	}
	return l, nil
}

// Fix inspects the relay for what this node published and everything it
// can check of the others', and plans how this node repairs it; with
// opts.Apply it carries the plan out. It never changes the node's folder.
// The engine must not be running (Run), and the node's cache is held by
// the caller. log receives what is done, step by step.
func (e *Engine) Fix(ctx context.Context, log *slog.Logger, opts FixOptions) (*FixReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &fixRun{e: e, log: log, opts: opts, rep: &FixReport{Node: e.self, Repository: e.cfg.Repo.ID},
		names: make(map[crypto.NodeID]string), refs: make(map[crypto.NodeID]map[crypto.BlobID]crypto.BlobRef),
		damaged: make(map[string]bool)}
	var err error
	if f.l, err = e.fixList(ctx); err != nil {
		return nil, err
	}
	if err := f.checkConfig(ctx); err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.findMissing()
	if err := f.checkRecords(ctx); err != nil {
		return nil, err
	}
	if err := f.checkBlobs(ctx); err != nil {
		return nil, err
	}
	rep := f.rep
	ownDamaged := slices.ContainsFunc(rep.Damaged, func(d Damage) bool { return d.Own })
	rep.Republish = (len(rep.Missing) > 0 || ownDamaged) && f.nextSeq > 0
	rep.UpTo = max(f.nextSeq, 1) - 1
	items, err := e.rebuildPlan(f.ls, f.intact, rep)
	if err != nil {
		return nil, err
	}
	if !opts.Apply {
		return rep, nil
	}
	return rep, f.apply(ctx, items)
}

// fixRun is one Fix: what the listing showed, what this node's cache
// holds, and what was found.
type fixRun struct {
	e    *Engine
	log  *slog.Logger
	opts FixOptions
	rep  *FixReport

	l       *fixListing
	ls      logState
	nextSeq uint64
	names   map[crypto.NodeID]string // of the peers whose records are listed
	// refs are the blobs the records that could be read name, by writer.
	refs    map[crypto.NodeID]map[crypto.BlobID]crypto.BlobRef
	damaged map[string]bool // objects found damaged
}

// checkConfig checks escale.json on the relay against the one this node
// joined, or notes that it must be restored from this node's copy.
func (f *fixRun) checkConfig(ctx context.Context) error {
	e := f.e
	if !f.l.config {
		if len(e.cfg.Repo.Raw) == 0 || sha256.Sum256(e.cfg.Repo.Raw) != e.cfg.Repo.Hash {
			return fmt.Errorf("%s is gone from the relay and this node holds no copy of it: %w", crypto.ConfigName, ErrNoKeptConfig)
		}
		f.rep.RestoreConfig = true
		return nil
	}
	data, err := readConfig(ctx, e.r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", crypto.ConfigName, err)
	}
	if sha256.Sum256(data) != e.cfg.Repo.Hash {
		return fmt.Errorf("%s on the relay is not the one this node joined: fix rebuilds this node's repository only: %w",
			crypto.ConfigName, ErrRepoChanged)
	}
	return nil
}

// load reads this node's log state, its next sequence number and the
// names of the peers whose records are listed.
func (f *fixRun) load() error {
	return f.e.store.View(func(tx *cache.Tx) error {
		var err error
		if f.ls, err = loadLogState(tx); err != nil {
			return err
		}
		if f.nextSeq, _, err = tx.MetaUint64(cache.MetaNextSeq); err != nil {
			return err
		}
		for _, rn := range f.l.peerRecs {
			if _, ok := f.names[rn.node]; ok {
				continue
			}
			ps, _, err := loadPeer(tx, rn.node.String())
			if err != nil {
				return err
			}
			f.names[rn.node] = ps.Name
		}
		return nil
	})
}

// findMissing lists what this node should have on the relay and has not.
func (f *fixRun) findMissing() {
	e, ls, rep := f.e, f.ls, f.rep
	for _, r := range ls.Records {
		if r.Published && !f.l.ownLogs[r.Seq] && (!ls.HasSnapshot || r.Seq > ls.Snapshot) {
			rep.Missing = append(rep.Missing, layout.LogName(e.self, r.Seq))
		}
	}
	if ls.HasSnapshot && !slices.Contains(f.l.ownSnaps, ls.Snapshot) {
		rep.Missing = append(rep.Missing, layout.SnapshotName(e.self, ls.Snapshot))
	}
	for id := range ls.liveBlobs() {
		if _, ok := f.l.blobs[e.self][id]; !ok {
			rep.Missing = append(rep.Missing, layout.BlobName(e.self, id))
		}
	}
	slices.Sort(rep.Missing)
}

// damage records that the object obj of node is damaged.
func (f *fixRun) damage(node crypto.NodeID, obj, reason string) {
	d := Damage{Name: obj, Node: node, NodeName: f.names[node], Own: node == f.e.self, Reason: reason}
	if d.Own {
		d.NodeName = f.e.cfg.Name
	}
	f.rep.Damaged = append(f.rep.Damaged, d)
	f.damaged[obj] = true
	f.log.Warn("damaged object on the relay", "name", obj, "node", node.String(), "node_name", d.NodeName, "reason", reason)
}

// name records the blobs that changes of node name.
func (f *fixRun) name(node crypto.NodeID, changes []proto.Change) {
	if f.refs[node] == nil {
		f.refs[node] = make(map[crypto.BlobID]crypto.BlobRef)
	}
	for _, c := range changes {
		for _, r := range c.BlobRefs() {
			f.refs[node][r.ID] = r
		}
	}
}

// checkRecords reads every record listed: those that do not open or
// decode are damaged; the others name the blobs checkBlobs checks.
func (f *fixRun) checkRecords(ctx context.Context) error {
	e := f.e
	recs := slices.Clone(f.l.peerRecs)
	for seq := range f.l.ownLogs {
		recs = append(recs, recName{node: e.self, seq: seq})
	}
	for _, seq := range f.l.ownSnaps {
		recs = append(recs, recName{node: e.self, seq: seq, snap: true})
	}
	slices.SortFunc(recs, func(a, b recName) int { return strings.Compare(a.name(), b.name()) })
	for _, rn := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		plain, err := e.fetchRecord(ctx, rn.name(), crypto.RecordContext{Node: rn.node, Seq: rn.seq, Kind: rn.kind()})
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing (compacted)
		}
		if err != nil && !errors.Is(err, ErrBadRecord) {
			return err
		}
		if err == nil {
			err = f.decode(rn, plain)
		}
		if err != nil {
			f.damage(rn.node, rn.name(), err.Error())
		}
	}
	return nil
}

// decode decodes the plaintext of the record rn and notes the blobs it
// names.
func (f *fixRun) decode(rn recName, plain []byte) error {
	if !rn.snap {
		lg, err := proto.DecodeLog(plain)
		f.name(rn.node, lg.Changes)
		return err
	}
	s, err := proto.DecodeSnapshot(plain)
	if err == nil && s.UpTo != rn.seq {
		err = fmt.Errorf("covers records up to %d, named %d", s.UpTo, rn.seq)
	}
	f.name(rn.node, s.Entries)
	return err
}

// checkBlobs checks every listed blob that a record names: its size, and
// unless Quick, its content.
func (f *fixRun) checkBlobs(ctx context.Context) error {
	nodes := slices.SortedFunc(maps.Keys(f.l.blobs), func(a, b crypto.NodeID) int { return bytes.Compare(a[:], b[:]) })
	for _, node := range nodes {
		ids := slices.SortedFunc(maps.Keys(f.l.blobs[node]), func(a, b crypto.BlobID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids {
			ref, ok := f.refs[node][id]
			if !ok {
				continue // named by no record that could be read: nothing to check against
			}
			obj := layout.BlobName(node, id)
			if size := f.l.blobs[node][id]; size != ref.Size {
				f.damage(node, obj, fmt.Sprintf("%d bytes, the records say %d", size, ref.Size))
				continue
			}
			if f.opts.Quick {
				continue
			}
			damage, err := f.e.checkBlob(ctx, obj, ref)
			if err != nil {
				return err
			}
			if damage != "" {
				f.damage(node, obj, damage)
			}
		}
	}
	return nil
}

// intact says whether this node's blob id is on the relay, undamaged.
func (f *fixRun) intact(id crypto.BlobID) bool {
	_, ok := f.l.blobs[f.e.self][id]
	return ok && !f.damaged[layout.BlobName(f.e.self, id)]
}

// apply restores escale.json, republishes this node's state and deletes
// its damaged objects, as the report says.
func (f *fixRun) apply(ctx context.Context, items []*pushItem) error {
	e, rep, log := f.e, f.rep, f.log
	if rep.RestoreConfig {
		if err := e.restoreConfig(ctx); err != nil {
			return err
		}
		log.Info("restored "+crypto.ConfigName+" from this node's cache", "repository", e.cfg.Repo.ID.String())
	}
	if rep.Republish {
		if err := e.republish(ctx, log, rep.UpTo, items, f.intact, f.l.ownSnaps); err != nil {
			return err
		}
	}
	for _, d := range rep.Damaged {
		if !d.Own || (rep.Republish && d.Name == layout.SnapshotName(e.self, rep.UpTo)) {
			continue // another's, or replaced by the snapshot just published
		}
		if err := e.r.Delete(ctx, d.Name); err != nil {
			return fmt.Errorf("deleting the damaged %s: %w", d.Name, err)
		}
		rep.Deleted = append(rep.Deleted, d.Name)
		log.Info("deleted a damaged object of this node", "name", d.Name)
	}
	rep.Applied = true
	return nil
}

// hashObject reads a whole object and returns its SHA-256 and size.
func (e *Engine) hashObject(ctx context.Context, name string) ([32]byte, int64, error) {
	var sum [32]byte
	var n int64
	err := e.r.Get(ctx, name, 0, -1, func(r io.Reader) error {
		h := sha256.New()
		var err error
		n, err = io.Copy(h, r)
		h.Sum(sum[:0])
		return err
	})
	return sum, n, err
}

// checkBlob reads the blob obj and says what is wrong with it against
// ref, or "" (also when it is gone meanwhile): its size and SHA-256, or,
// for a chunk blob whose record gives no hash, its size and its
// authentication (its chunks' IDs are a reader's check).
func (e *Engine) checkBlob(ctx context.Context, obj string, ref crypto.BlobRef) (string, error) {
	if ref.SHA256 == [32]byte{} {
		err := e.authenticateObject(ctx, obj, ref)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, crypto.ErrBlobCorrupt), errors.Is(err, crypto.ErrBlobTruncated):
			return err.Error(), nil
		case err != nil:
			return "", err
		}
		return "", nil
	}
	sum, n, err := e.hashObject(ctx, obj)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	case n != ref.Size:
		return fmt.Sprintf("%d bytes read, the records say %d", n, ref.Size), nil
	case sum != ref.SHA256:
		return "SHA-256 does not match the records'", nil
	}
	return "", nil
}

// authenticateObject reads the blob obj, whose record gives no hash,
// through its decryption: its size and its authentication (every chunk's
// tag and the end of the stream) are checked.
func (e *Engine) authenticateObject(ctx context.Context, name string, ref crypto.BlobRef) error {
	return e.r.Get(ctx, name, 0, -1, func(r io.Reader) error {
		plain, err := crypto.OpenBlob(e.cfg.Repo.Keys, r, ref)
		if err == nil {
			_, err = io.Copy(io.Discard, plain)
		}
		return err
	})
}

// restoreConfig writes escale.json back from the node's copy and checks
// that the relay holds exactly those bytes.
func (e *Engine) restoreConfig(ctx context.Context) error {
	raw := e.cfg.Repo.Raw
	if _, err := readConfig(ctx, e.r); err == nil {
		return nil // put back meanwhile: Fix checked it is the same, or refuses next time
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", crypto.ConfigName, err)
	}
	if err := e.r.Put(ctx, crypto.ConfigName, relay.BytesPayload(raw)); err != nil {
		return fmt.Errorf("writing %s: %w", crypto.ConfigName, err)
	}
	back, err := readConfig(ctx, e.r)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", crypto.ConfigName, err)
	}
	if !bytes.Equal(back, raw) {
		return fmt.Errorf("%s on the relay is not the one written back (another repository was created there meanwhile?): %w",
			crypto.ConfigName, ErrRepoChanged)
	}
	return nil
}

// rebuildPlan counts the entries the rebuilt snapshot holds and returns
// the files whose content must be uploaded again: their own blobs of it
// are not all intact on the relay.
func (e *Engine) rebuildPlan(ls logState, intact func(crypto.BlobID) bool, rep *FixReport) ([]*pushItem, error) {
	live := ls.liveBlobs()
	for id := range live {
		if !intact(id) {
			delete(live, id)
		}
	}
	var items []*pushItem
	err := e.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if ent.Dirty || len(ent.Version) == 0 {
				return nil // pushed as a change later, as usual
			}
			switch {
			case ent.Deleted:
				rep.Tombstones++
				return nil
			case ent.Kind == cache.KindDir:
				rep.Dirs++
				return nil
			case ent.Kind == cache.KindSymlink:
				rep.Symlinks++
				return nil
			}
			rep.Files++
			if ent.Size == 0 {
				return nil
			}
			if rr, ok := decodeRemote(ent.Remote); ok && rr.reusable(e.selfID, ent.Hash, live) {
				return nil
			}
			if ent.Local == (cache.LocalStat{}) || !e.mayRead(ent) {
				rep.NoContent++
				return nil
			}
			rep.UploadFiles++
			rep.UploadBytes += ent.Size
			items = append(items, &pushItem{ent: ent, upload: true, fullPut: true, anew: true})
			return nil
		})
	})
	return items, err
}

// republish uploads the content of items again and publishes this node's
// whole view as the snapshot covering its log up to upTo. The node's log
// state is rewritten to what the relay holds: its intact records and
// blobs, and the new snapshot and blobs; records still in the outbox are
// covered by the snapshot and dropped. oldSnaps are this node's snapshots
// listed on the relay; those other than upTo are deleted.
func (e *Engine) republish(ctx context.Context, log *slog.Logger, upTo uint64, items []*pushItem,
	intact func(crypto.BlobID) bool, oldSnaps []uint64) error {
	if _, err := e.upload(ctx, items); err != nil {
		return fmt.Errorf("uploading content again: %w", err)
	}
	uploaded := 0
	for _, it := range items {
		if it.ref != nil {
			uploaded++
		} else {
			log.Warn("content not uploaded (the file changed or is gone): the snapshot names none; the next sync pushes it", "path", it.ent.Path)
		}
	}
	var sealed []byte
	var entries int
	now := e.clock.Now()
	err := e.store.Update(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		fresh, err := noteReuploaded(tx, items)
		if err != nil {
			return err
		}
		if ls.Records, err = republishedRecords(tx, ls.Records, upTo, intact, fresh); err != nil {
			return err
		}
		ls.republished(upTo, oldSnaps, now)
		if err := saveLogState(tx, ls); err != nil {
			return err
		}
		if next, _, err := tx.MetaUint64(cache.MetaNextSeq); err != nil {
			return err
		} else if next <= upTo {
			if err := tx.SetMetaUint64(cache.MetaNextSeq, upTo+1); err != nil {
				return err
			}
		}
		sealed, entries, err = e.sealSnapshot(tx, ls, upTo)
		return err
	})
	if err != nil {
		return fmt.Errorf("rebuilding this node's log: %w", err)
	}
	// The state says the snapshot is on the relay before it is: should the
	// Put fail, the node finds it missing and rebuilds again.
	if err := e.r.Put(ctx, layout.SnapshotName(e.self, upTo), relay.BytesPayload(sealed)); err != nil {
		return fmt.Errorf("publishing the rebuilt snapshot: %w", err)
	}
	e.count(func(s *Stats) { s.Records++ })
	log.Info("republished this node's state as a snapshot", "up_to", upTo, "entries", entries, "files_uploaded", uploaded)
	return e.compact(ctx, upTo)
}

// noteReuploaded records where the content uploaded again (items) is,
// for the entries that did not change meanwhile, and returns their blobs.
func noteReuploaded(tx *cache.Tx, items []*pushItem) ([]crypto.BlobID, error) {
	var fresh []crypto.BlobID
	for _, it := range items {
		if it.ref == nil {
			continue
		}
		cur, ok, err := tx.Get(it.ent.Path)
		if err != nil {
			return nil, err
		}
		if it.progress != "" {
			if err := forgetUpload(tx, it.progress); err != nil {
				return nil, err
			}
		}
		if !ok || cur.Dirty || !samePlanned(cur, it.ent) {
			continue // changed meanwhile: its blobs are orphans
		}
		cur.Remote = encodeRemote(*it.ref)
		if err := tx.Put(cur); err != nil {
			return nil, err
		}
		fresh = append(fresh, it.blobs...)
	}
	return fresh, nil
}

// republishedRecords returns this node's records once its state is
// republished as the snapshot upTo: the unpublished ones dropped (with
// their outbox), the intact blobs of the others kept, and the record upTo
// (made if need be) naming the fresh blobs, for collection and orphan
// detection.
func republishedRecords(tx *cache.Tx, records []ownRecord, upTo uint64, intact func(crypto.BlobID) bool, fresh []crypto.BlobID) ([]ownRecord, error) {
	var recs []ownRecord
	for _, r := range records {
		if !r.Published {
			if err := tx.DeleteMeta(outboxKey(r.Seq)); err != nil {
				return nil, err
			}
			continue // covered by the snapshot, never published
		}
		if !r.Collected {
			r.Blobs = slices.DeleteFunc(slices.Clone(r.Blobs), func(id crypto.BlobID) bool { return !intact(id) })
		}
		recs = append(recs, r)
	}
	i := slices.IndexFunc(recs, func(r ownRecord) bool { return r.Seq == upTo })
	if i < 0 {
		// No object of this name: the record holds the blobs the snapshot
		// names, for collection and orphan detection.
		recs = append(recs, ownRecord{Seq: upTo, Published: true})
		slices.SortFunc(recs, func(a, b ownRecord) int { return cmpSeq(a.Seq, b.Seq) })
		i = slices.IndexFunc(recs, func(r ownRecord) bool { return r.Seq == upTo })
	}
	recs[i].Collected = false
	recs[i].Blobs = dedupe(append(recs[i].Blobs, fresh...))
	return recs, nil
}

// republished makes the snapshot upTo the log's, the others (oldSnaps,
// the previous one) to be deleted, at now.
func (ls *logState) republished(upTo uint64, oldSnaps []uint64, now time.Time) {
	ls.OldSnapshots = nil
	for _, s := range oldSnaps {
		if s != upTo {
			ls.OldSnapshots = append(ls.OldSnapshots, s)
		}
	}
	if ls.HasSnapshot && ls.Snapshot != upTo && !slices.Contains(ls.OldSnapshots, ls.Snapshot) {
		ls.OldSnapshots = append(ls.OldSnapshots, ls.Snapshot)
	}
	ls.Snapshot, ls.HasSnapshot = upTo, true
	ls.LastWrite, ls.LastCompaction = now, now
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ensureOwnLog checks, at a listing, that this node's log is still on the
// relay: the snapshot it published last and every published record after
// it. When any is gone (the relay was wiped or restored from an older
// copy), the node rebuilds its log from its cache, as Fix does, so that
// its peers (and nodes that join later) can read it from the start again;
// its queued changes follow as records. own are the names of this node's
// records and snapshots listed.
func (e *Engine) ensureOwnLog(ctx context.Context, own map[string]relay.ObjectInfo) error {
	var ls logState
	var next uint64
	err := e.store.View(func(tx *cache.Tx) (err error) {
		if ls, err = loadLogState(tx); err != nil {
			return err
		}
		next, _, err = tx.MetaUint64(cache.MetaNextSeq)
		return err
	})
	if err != nil || next == 0 {
		return err
	}
	lost, err := e.lostRecords(ctx, ls, own)
	if err != nil {
		return err
	}
	damaged, err := e.checkOwnRecords(ctx, ls, next, own)
	if err != nil {
		return err
	}
	if len(lost) == 0 && len(damaged) == 0 {
		return nil
	}
	if len(lost) > 0 {
		e.log.Warn("this node's log is gone from the relay (was the relay wiped or restored?): republishing its state from the cache",
			"missing", len(lost), "first", lost[0], "up_to", next-1)
	}
	if len(damaged) > 0 {
		e.log.Warn("records of this node on the relay are not the ones it published (replayed, damaged or planted): "+
			"republishing its state from the cache and deleting them", "records", damaged, "up_to", next-1)
	}
	return e.rebuildOwnLog(ctx, ls, next-1, damaged)
}

// lostRecords returns the names of the records and snapshot of this
// node's log (ls) that are not on the relay: not listed (own), and not
// there when asked for.
func (e *Engine) lostRecords(ctx context.Context, ls logState, own map[string]relay.ObjectInfo) ([]string, error) {
	var want []string
	if ls.HasSnapshot {
		want = append(want, layout.SnapshotName(e.self, ls.Snapshot))
	}
	for _, r := range ls.Records {
		if r.Published && (!ls.HasSnapshot || r.Seq > ls.Snapshot) {
			want = append(want, layout.LogName(e.self, r.Seq))
		}
	}
	var lost []string
	for _, name := range want {
		if _, ok := own[name]; ok {
			continue
		}
		// Listings may lag behind a Put: ask for the object itself.
		if _, err := e.r.Stat(ctx, name); errors.Is(err, fs.ErrNotExist) {
			lost = append(lost, name)
		} else if err != nil {
			return nil, err
		}
	}
	return lost, nil
}

// rebuildOwnLog republishes this node's state as the snapshot upTo, with
// the blobs still on the relay, and deletes its damaged records.
func (e *Engine) rebuildOwnLog(ctx context.Context, ls logState, upTo uint64, damaged []string) error {
	var snaps []uint64
	ownBlobs := make(map[crypto.BlobID]bool)
	err := e.r.List(ctx, "", func(oi relay.ObjectInfo) error {
		switch o := layout.Parse(oi.Name); {
		case o.Node != e.self:
		case o.Kind == layout.Snapshot:
			snaps = append(snaps, o.Seq)
		case o.Kind == layout.Blob:
			ownBlobs[o.Blob] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the relay: %w", err)
	}
	intact := func(id crypto.BlobID) bool { return ownBlobs[id] }
	var rep FixReport
	items, err := e.rebuildPlan(ls, intact, &rep)
	if err != nil {
		return err
	}
	if err := e.republish(ctx, e.log, upTo, items, intact, snaps); err != nil {
		return err
	}
	// The readers stuck on an altered record find the snapshot instead.
	for _, name := range damaged {
		if err := e.r.Delete(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting an altered record: %w", err)
		}
	}
	return nil
}

// checkOwnRecords compares this node's log records as the relay lists them
// (own) with what it published, and returns the names of those that are
// not its: a name it never wrote (at or beyond next), another size, or
// (when the relay's time of the object changed since it was first listed)
// other bytes. It remembers the relay's time of each record at its first
// listing, so that an intact log costs no read.
func (e *Engine) checkOwnRecords(ctx context.Context, ls logState, next uint64, own map[string]relay.ObjectInfo) ([]string, error) {
	var damaged []string
	seen := make(map[uint64]time.Time)
	for name, oi := range own {
		o := layout.Parse(name)
		if o.Kind != layout.Log || o.Node != e.self {
			continue // a snapshot
		}
		seq := o.Seq
		if seq >= next {
			damaged = append(damaged, name)
			continue
		}
		i := slices.IndexFunc(ls.Records, func(r ownRecord) bool { return r.Seq == seq && r.Published })
		if i < 0 || ls.Records[i].Size == 0 {
			continue // compacted, or sealed by an older version
		}
		r := ls.Records[i]
		switch {
		case oi.Size != r.Size:
			damaged = append(damaged, name)
		case r.ModTime.IsZero():
			seen[seq] = oi.ModTime
		case !oi.ModTime.Equal(r.ModTime):
			data, err := relay.ReadAll(ctx, e.r.Get, name, r.Size)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue // deleted meanwhile: the next listing tells
			case err != nil:
				return nil, fmt.Errorf("reading this node's record %s: %w", name, err)
			}
			if sum := sha256.Sum256(data); !bytes.Equal(sum[:], r.Sum) {
				damaged = append(damaged, name)
			} else {
				seen[seq] = oi.ModTime
			}
		}
	}
	slices.Sort(damaged)
	if len(seen) == 0 {
		return damaged, nil
	}
	return damaged, e.store.Update(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		for i, r := range ls.Records {
			if t, ok := seen[r.Seq]; ok {
				ls.Records[i].ModTime = t
			}
		}
		return saveLogState(tx, ls)
	})
}
