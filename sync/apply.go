package sync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/decide"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
)

// source is where a pulled put's content comes from.
type source struct {
	file       string // a scratch file holding it (fetched from a pack)
	missing    bool   // its blob is gone or corrupt: the change waits for a re-push
	renameFrom string // a local file with this content that the same record deletes
	noRoom     error  // the local disk has no room for it: the change waits (space.go)
	seq        uint64 // the record (or snapshot) that carries it, in its writer's log
}

// applyChanges applies the changes of one peer record (or snapshot) in
// order and returns how many changed something here. Content in packs is
// fetched first, one read per pack; content in parts is streamed into place
// when its change is applied; content that a local file being deleted by the
// same record already holds (a rename on the peer) is moved, not fetched.
//
// seq is the record's sequence number (the snapshot's last): a change whose
// content does not fit on the local disk waits under it (space.go).
func (e *Engine) applyChanges(ctx context.Context, id crypto.NodeID, seq uint64, changes []proto.Change, snapshot bool) (int, error) {
	if len(changes) == 0 {
		return 0, nil
	}
	dir, err := os.MkdirTemp(e.cfg.Scratch, "pull-")
	if err != nil {
		return 0, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	locals, err := e.entries(changes)
	if err != nil {
		return 0, err
	}
	srcs, packs := e.sources(id.String(), changes, locals)
	for _, idx := range packs {
		if err := e.fetchPack(ctx, id, changes, idx, dir, srcs); err != nil {
			return 0, err
		}
	}
	var in Queue
	for _, c := range changes {
		in.add(c, 1)
	}
	e.transfers.setIncoming(in)
	defer e.transfers.setIncoming(Queue{})
	n := 0
	for i, c := range changes {
		changed, err := e.applyOne(ctx, id, seq, c, srcs[i], snapshot)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
		in.add(c, -1)
		e.transfers.setIncoming(in)
	}
	return n, nil
}

// entries returns the cache's entries of the paths of changes (nil where
// there is none).
func (e *Engine) entries(changes []proto.Change) ([]*cache.Entry, error) {
	locals := make([]*cache.Entry, len(changes))
	err := e.store.View(func(tx *cache.Tx) error {
		for i, c := range changes {
			ent, ok, err := tx.Get(c.Path)
			if err != nil {
				return err
			}
			if ok {
				locals[i] = &ent
			}
		}
		return nil
	})
	return locals, err
}

// sources decides where the content of each put of changes (from peer)
// comes from: a local file the record deletes (moved, not fetched), a
// pack fetched ahead (packs: the changes of each pack blob), its parts or
// chunks when applied; or that it lacks room, or is missing.
func (e *Engine) sources(peer string, changes []proto.Change, locals []*cache.Entry) ([]source, map[crypto.BlobID][]int) {
	deleted := e.renameSources(peer, changes, locals)
	srcs := make([]source, len(changes))
	packs := make(map[crypto.BlobID][]int)
	rm := e.measureRoom()
	for i, c := range changes {
		if c.Op != proto.OpPut || c.Size == 0 || e.skipped(c.Path, false) {
			continue
		}
		d := decide.Resolve(locals[i], c, peer)
		if d.Action != decide.Apply && d.Action != decide.Conflict {
			continue
		}
		if (d.Action == decide.Apply || d.Winner == decide.Remote) && e.mayWrite(locals[i]) == writeRefused {
			continue // refused, not fetched
		}
		if from, ok := deleted[c.Hash]; ok && d.Action == decide.Apply {
			srcs[i].renameFrom = from
			delete(deleted, c.Hash)
			continue
		}
		if err := rm.take(c.Size); err != nil {
			srcs[i].noRoom = err
			continue
		}
		switch {
		case c.Pack != nil:
			packs[c.Pack.Blob.ID] = append(packs[c.Pack.Blob.ID], i)
		case len(c.Parts) == 0 && c.Chunks == nil:
			srcs[i].missing = true // a snapshot entry whose blobs are collected
		}
	}
	return srcs, packs
}

// renameSources returns the local files the record deletes, by content:
// rename sources. Only deletes that will be applied count, so that a file
// is never moved away from a path that keeps it.
func (e *Engine) renameSources(peer string, changes []proto.Change, locals []*cache.Entry) map[[32]byte]string {
	deleted := make(map[[32]byte]string)
	for i, c := range changes {
		if l := locals[i]; c.Op == proto.OpDelete && l != nil && !l.Deleted && !l.Dirty && !e.skipped(c.Path, false) &&
			l.Kind == cache.KindFile && l.Local != (cache.LocalStat{}) &&
			decide.Resolve(l, c, peer).Action == decide.Apply {
			deleted[l.Hash] = c.Path
		}
	}
	return deleted
}

// fetchPack reads one pack blob and writes the content of the changes idx
// (which all name it) to scratch files. A blob that is gone or does not
// verify leaves those changes without content (logged); a relay failure is
// returned, so that the record is applied again later.
func (e *Engine) fetchPack(ctx context.Context, id crypto.NodeID, changes []proto.Change, idx []int, dir string, srcs []source) error {
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Compare(changes[a].Pack.Offset, changes[b].Pack.Offset)
	})
	// Overlapping ranges cannot come from an honest writer.
	var files []proto.PackRef
	var which []int
	end := int64(-1)
	for _, i := range idx {
		p := *changes[i].Pack
		if p.Offset < end || p.Length != changes[i].Size {
			srcs[i].missing = true
			continue
		}
		end = p.Offset + p.Length
		files = append(files, p)
		which = append(which, i)
	}
	if len(files) == 0 {
		return nil
	}
	var size int64
	for _, f := range files {
		size += f.Length
	}
	tr := e.transfers.start(false, packWhat(len(files)), size)
	defer e.transfers.end(tr)
	ref := files[0].Blob
	hashes := make([]hash.Hash, len(files))
	err := e.down.GetPack(ctx, ref, id, files, func(k int) (io.WriteCloser, error) {
		name := filepath.Join(dir, strconv.Itoa(which[k]))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		hashes[k] = sha256.New()
		srcs[which[k]].file = name
		return hashingWriter{f, localdir.NewSparseWriter(f, 0), hashes[k]}, nil
	})
	if err != nil && isNoSpace(err) && ctx.Err() == nil {
		// The scratch files go with the scratch directory; the changes
		// wait for room.
		for _, i := range which {
			srcs[i] = source{noRoom: err}
		}
		return nil
	}
	if err != nil {
		if ctx.Err() != nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, crypto.ErrBlobCorrupt) || errors.Is(err, crypto.ErrBlobTruncated)) {
			return fmt.Errorf("fetching a pack of %s: %w", id, err)
		}
		e.log.Warn("content of a peer is not on the relay or does not verify; skipped", "node", e.nodeLabel(id.String()), "blob", ref.ID.String(), "err", err)
		for _, i := range which {
			srcs[i] = source{missing: true}
		}
		return nil
	}
	for k, i := range which {
		e.count(func(s *Stats) { s.BytesPulled += changes[i].Size; s.BytesHashed += changes[i].Size })
		var sum [32]byte
		hashes[k].Sum(sum[:0])
		if sum != changes[i].Hash {
			e.log.Error("content does not match its record; skipped", "node", e.nodeLabel(id.String()), "path", changes[i].Path)
			srcs[i] = source{missing: true}
		}
	}
	return nil
}

// hashingWriter writes a file of a pack, sparse (blocks of zeros become
// holes), and hashes it.
type hashingWriter struct {
	f  *os.File
	sw *localdir.SparseWriter
	h  hash.Hash
}

func (w hashingWriter) Write(p []byte) (int, error) {
	n, err := w.sw.Write(p)
	w.h.Write(p[:n])
	return n, err
}

func (w hashingWriter) Close() error {
	err := w.sw.Finish()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// skipped reports whether the filter excludes path.
func (e *Engine) skipped(path string, isDir bool) bool {
	return e.cfg.Skip != nil && e.cfg.Skip(path, isDir)
}

// maxLocalRetries bounds how often a change is tried again after the local
// path changed under it.
const maxLocalRetries = 3

// applyOne resolves one change against the current entry and carries out
// the decision. When the local path changed since the engine last looked,
// the change is recorded first (a scan of the path) and the decision taken
// again, so a local edit becomes a conflict, never a loss.
func (e *Engine) applyOne(ctx context.Context, id crypto.NodeID, seq uint64, c proto.Change, src source, snapshot bool) (bool, error) {
	peer := id.String()
	src.seq = seq
	rc := c
	switch c.Op {
	case proto.OpRmdir:
		rc.Op = proto.OpDelete
	case proto.OpRename:
		e.log.Warn("rename records are not written by this version of escalefs; ignored", "node", e.nodeLabel(peer), "path", c.Path)
		return false, nil
	}
	if e.skipped(c.Path, c.Op == proto.OpMkdir || c.Op == proto.OpRmdir) {
		e.log.Debug("pulled change filtered out", "path", c.Path)
		return false, nil
	}
	for range maxLocalRetries {
		applied, again, err := e.applyTry(ctx, id, seq, c, rc, &src, snapshot)
		if !again {
			return applied, err
		}
	}
	e.log.Warn("local path keeps changing; the peer's version waits for its next change", "path", c.Path)
	return false, nil
}

// applyTry is one try of applyOne: it decides the change rc (c as the
// decision sees it) against the local entry and carries the decision out.
// again: the local path changed meanwhile (it was scanned again).
func (e *Engine) applyTry(ctx context.Context, id crypto.NodeID, seq uint64, c, rc proto.Change, src *source, snapshot bool) (applied, again bool, err error) {
	peer := id.String()
	local, err := e.entry(c.Path)
	if err != nil {
		return false, false, err
	}
	d := decide.Resolve(local, rc, peer)
	if done, applied, err := e.holdBack(ctx, id, seq, c, &d, local, *src, snapshot); done {
		return applied, false, err
	}
	err = e.execute(ctx, id, c, d, local, *src)
	switch {
	case errors.Is(err, localdir.ErrThroughSymlink):
		e.log.Warn("peer's change not applied: a directory of its path is a symbolic link here, and escalefs never writes through one",
			"path", c.Path, "op", c.Op, "node", e.nodeLabel(peer), "err", err)
		return false, false, nil
	case errors.Is(err, localdir.ErrLocalChanged) && ctx.Err() == nil:
		e.log.Debug("local path changed under a pull; looking again", "path", c.Path, "err", err)
		if _, err := e.Scan(ctx, []string{c.Path}); err != nil {
			return false, false, err
		}
		src.renameFrom = ""
		return false, true, nil
	case errors.Is(err, errSkip):
		if c.Op == proto.OpPut {
			return false, false, e.want(c.Path, c.Hash)
		}
		return false, false, nil
	case (errors.Is(err, errNoRoom) || isNoSpace(err)) && c.Op == proto.OpPut && ctx.Err() == nil:
		return false, false, e.deferChange(peer, seq, c, err)
	case err != nil:
		return false, false, err
	}
	if d.Action == decide.Apply {
		e.noteApplied(id, local, isDelete(c))
	}
	if c.Op == proto.OpPut {
		// The content asked for arrived, wherever it went (at the path,
		// as a conflict copy, or already here): the request is done.
		if err := e.answered(c.Path, c.Hash); err != nil {
			return false, false, err
		}
	}
	return d.Action != decide.Ignore, false, nil
}

// holdBack says whether the decision d about c must not be carried out
// now (done, with applyOne's result): its content is missing or lacks
// room here, the local file is open for writing, or the local file may not
// be written (conservative mode, w-), where d may become a conflict that
// keeps the local file.
func (e *Engine) holdBack(ctx context.Context, id crypto.NodeID, seq uint64, c proto.Change, d *decide.Decision,
	local *cache.Entry, src source, snapshot bool) (done, applied bool, err error) {
	peer := id.String()
	content := c.Op == proto.OpPut && (d.Action == decide.Apply || d.Action == decide.Conflict)
	if src.noRoom != nil && content {
		return true, false, e.deferChange(peer, seq, c, src.noRoom)
	}
	if src.missing && content && c.Size > 0 {
		if !snapshot {
			e.log.Warn("cannot pull: content missing on the relay", "node", e.nodeLabel(peer), "path", c.Path)
		}
		return true, false, e.want(c.Path, c.Hash)
	}
	replaces := d.Action == decide.Apply || (d.Action == decide.Conflict && d.Winner == decide.Remote)
	if !replaces {
		return false, false, nil
	}
	if c.Op != proto.OpMeta && e.inUse(local) {
		// A mode or time change (OpMeta) does not touch the content
		// and is applied as usual.
		return true, true, e.keepInUse(ctx, id, c, local, src)
	}
	switch e.mayWrite(local) {
	case writeRefused:
		e.log.Info("refused a peer's version of a file made here (conservative mode)", "path", c.Path, "node", e.nodeLabel(peer))
		return true, false, nil
	case writeKeepCopy:
		if c.Op != proto.OpPut && c.Op != proto.OpSymlink && c.Op != proto.OpMkdir {
			// w- against a delete or a mode change: the file stays
			// here, as it is, and only here.
			e.log.Info("kept a protected (w-) file; the peer's change is not applied here", "path", c.Path, "op", c.Op, "node", e.nodeLabel(peer))
			return true, false, nil
		}
		// w-: the local file stays; the peer's version goes beside it.
		*d = decide.Decision{Action: decide.Conflict, Winner: decide.Local, Loser: decide.Remote,
			Version: local.Version.Merge(c.Version)}
	}
	return false, false, nil
}

// inUse reports whether local is a file open for writing here (Config.InUse).
func (e *Engine) inUse(local *cache.Entry) bool {
	return e.cfg.InUse != nil && local != nil && !local.Deleted && local.Kind == cache.KindFile &&
		local.Local != (cache.LocalStat{}) && e.cfg.InUse(local.Path)
}

// keepInUse applies change c to a file open for writing here without
// replacing it: a pulled version goes beside it as a conflict copy, a
// pulled delete (or anything else that would replace it) is not carried
// out. The file is queued over both versions, so that what its writer
// leaves is pushed and wins everywhere, as an edit beats a concurrent
// change.
func (e *Engine) keepInUse(ctx context.Context, id crypto.NodeID, c proto.Change, local *cache.Entry, src source) error {
	version := local.Version.Merge(c.Version)
	if c.Op == proto.OpPut || c.Op == proto.OpSymlink || c.Op == proto.OpMkdir {
		keep := decide.Decision{Action: decide.Conflict, Winner: decide.Local, Loser: decide.Remote, Version: version}
		if err := e.conflict(ctx, id, c, keep, local, src); err != nil {
			return err
		}
		if err := e.answered(c.Path, c.Hash); err != nil {
			return err
		}
	} else {
		e.log.Info("kept a file open for writing; the peer's change is not applied here", "path", c.Path, "op", c.Op, "node", e.nodeLabel(id.String()))
	}
	return e.store.Update(func(tx *cache.Tx) error {
		ent, ok, err := tx.Get(c.Path)
		if err != nil || !ok {
			return err
		}
		ent.Version = ent.Version.Merge(version)
		return e.dirtyPayload(tx, ent, payloadPut)
	})
}

func (e *Engine) entry(path string) (*cache.Entry, error) {
	ent, ok, err := e.store.Get(path)
	if err != nil || !ok {
		return nil, err
	}
	return &ent, nil
}

// execute carries out one decision.
func (e *Engine) execute(ctx context.Context, id crypto.NodeID, c proto.Change, d decide.Decision, local *cache.Entry, src source) error {
	peer := id.String()
	switch d.Action {
	case decide.Merge:
		ent := *local
		ent.Version = d.Version
		if d.Winner == decide.Remote {
			return e.adoptMeta(ctx, id, c, ent)
		}
		if local.Deleted || !(isDelete(c) || c.Op == proto.OpMeta) {
			return e.store.Put(ent)
		}
		// The local state beat a concurrent delete (or meta change): the
		// nodes that applied the peer's change must learn that the path
		// lives on here, so it is pushed again over both versions.
		return e.store.Update(func(tx *cache.Tx) error { return e.dirtyPayload(tx, ent, payloadPut) })
	case decide.Apply:
		err := e.install(ctx, id, c, c.Path, local, d.Version, src)
		if errors.Is(err, localdir.ErrLocalChanged) && isDelete(c) && local != nil && local.Kind == cache.KindDir {
			// The directory holds files this node has not pushed yet:
			// a delete never beats a modification, so it stays.
			if _, err := e.Scan(ctx, []string{c.Path}); err != nil {
				return err
			}
			return e.store.Update(func(tx *cache.Tx) error {
				ent, ok, err := tx.Get(c.Path)
				if err != nil || !ok {
					return err
				}
				ent.Version = ent.Version.Merge(d.Version)
				return e.dirty(tx, ent)
			})
		}
		return err
	case decide.Conflict:
		return e.conflict(ctx, id, c, d, local, src)
	case decide.Ignore:
		return nil
	}
	e.log.Debug("change not applied", "node", e.nodeLabel(peer), "path", c.Path, "op", c.Op, "reason", d.Reason)
	return nil
}

// adoptMeta gives ent, a file or directory with the same content as the
// peer's concurrent change c, the mode and time of c, which won the
// tie-break, so that every node ends with the same. A file this node may
// not overwrite (w-, or conservative mode) keeps its own.
func (e *Engine) adoptMeta(ctx context.Context, id crypto.NodeID, c proto.Change, ent cache.Entry) error {
	if ent.Local == (cache.LocalStat{}) || e.mayWrite(&ent) != writeAllowed {
		return e.store.Put(ent)
	}
	// As a pulled meta change: its mode and time on the local content.
	meta := proto.Change{Op: proto.OpMeta, Path: c.Path, Mode: c.Mode, ModTime: c.ModTime}
	placed, err := e.place(ctx, id, meta, ent.Path, &ent, source{})
	if err != nil {
		return err
	}
	if placed.Kind == cache.KindDir {
		placed.ModTime = c.ModTime // the time every node decides a directory's conflicts on
	}
	return e.store.Put(placed)
}

func isDelete(c proto.Change) bool { return c.Op == proto.OpDelete || c.Op == proto.OpRmdir }

// conflict keeps both versions of a path edited concurrently here and on a
// peer: the winner at the path, the loser beside it under its conflict
// name, as every node decides alike.
func (e *Engine) conflict(ctx context.Context, id crypto.NodeID, c proto.Change, d decide.Decision, local *cache.Entry, src source) error {
	peer := id.String()
	loserLocal := d.Loser == decide.Local
	name, there, err := e.conflictName(id, c, local, loserLocal)
	if err != nil {
		return err
	}
	switch {
	case there && loserLocal:
		// The local version is kept under its conflict name already.
		cur := *local
		if local.Kind == cache.KindDir || c.Op == proto.OpMkdir {
			// Not replaced in one rename: make room first.
			if err := e.local.Remove(ctx, c.Path, local.Local); err != nil {
				return err
			}
			cur.Local = cache.LocalStat{}
		}
		err = e.install(ctx, id, c, c.Path, &cur, d.Version, src)
	case there:
		ent := *local
		ent.Version = ent.Version.Merge(d.Version)
		err = e.store.Put(ent)
	case loserLocal:
		err = e.moveAsideAndInstall(ctx, id, c, d, local, name, src)
	case c.Op != proto.OpPut && c.Op != proto.OpSymlink && c.Op != proto.OpMkdir:
		// Keep the local version; the peer's is a delete or a meta change.
		return e.execute(ctx, id, c, decide.Decision{Action: decide.Merge, Version: d.Version}, local, src)
	default:
		var kept bool
		if kept, err = e.installBeside(ctx, id, c, d, name, src); err == nil && !kept {
			return nil // the local entry is gone meanwhile
		}
	}
	if err != nil {
		return err
	}
	e.log.Info("conflict: both versions kept", "path", c.Path, "copy", name, "node", e.nodeLabel(peer))
	e.count(func(s *Stats) { s.Conflicts++ })
	return nil
}

// conflictName returns the name of the conflict copy of the losing
// version of c.Path, and whether that copy is there already.
func (e *Engine) conflictName(id crypto.NodeID, c proto.Change, local *cache.Entry, loserLocal bool) (string, bool, error) {
	if loserLocal {
		// A losing directory with nothing left in it (its contents were
		// moved to the copy by the node that made the copy) merges with a
		// copy already there.
		empty := false
		if local.Kind == cache.KindDir {
			var err error
			if empty, err = e.emptyDir(c.Path); err != nil {
				return "", false, err
			}
		}
		return e.freeName(c.Path, local.ModTime, local.Origin, local.Kind, local.Hash, local.Target, empty)
	}
	kind := cache.KindFile
	switch c.Op {
	case proto.OpSymlink:
		kind = cache.KindSymlink
	case proto.OpMkdir:
		kind = cache.KindDir
	}
	// A directory copy made already (pulled from the node that moved its
	// directory aside) is the same copy.
	return e.freeName(c.Path, c.ModTime, id.String(), kind, c.Hash, c.Target, true)
}

// moveAsideAndInstall moves the losing local version of c.Path to name,
// then installs the peer's.
func (e *Engine) moveAsideAndInstall(ctx context.Context, id crypto.NodeID, c proto.Change, d decide.Decision,
	local *cache.Entry, name string, src source) error {
	var st cache.LocalStat
	if local.Local != (cache.LocalStat{}) {
		var err error
		if st, err = e.local.Rename(ctx, c.Path, name, local.Local); err != nil {
			return err
		}
		e.changed(c.Path, name)
	}
	err := e.store.Update(func(tx *cache.Tx) error {
		if local.Kind == cache.KindDir {
			return e.moveTree(tx, c.Path, name, st)
		}
		prev, had, err := tx.Get(name)
		if err != nil {
			return err
		}
		cp := *local
		cp.Path, cp.Version, cp.Local = name, nil, st
		if had {
			cp.Version = prev.Version
		}
		if err := e.dirty(tx, cp); err != nil {
			return err
		}
		moved := *local
		moved.Local = cache.LocalStat{}
		return tx.Put(moved)
	})
	if err != nil {
		return err
	}
	e.keepConflict(ctx, c.Path, name, id.String())
	cur := *local
	cur.Local = cache.LocalStat{}
	return e.install(ctx, id, c, c.Path, &cur, d.Version, src)
}

// installBeside keeps the local version of c.Path and installs the
// peer's at name beside it; kept is false if the local entry is gone
// meanwhile.
func (e *Engine) installBeside(ctx context.Context, id crypto.NodeID, c proto.Change, d decide.Decision, name string, src source) (kept bool, err error) {
	prev, err := e.entry(name)
	if err != nil {
		return false, err
	}
	var at *cache.Entry
	if prev != nil {
		p := *prev
		p.Local = cache.LocalStat{}
		at = &p
	}
	if err := e.installCopy(ctx, id, c, name, at, src); err != nil {
		return false, err
	}
	e.keepConflict(ctx, c.Path, name, e.selfID)
	ent, err := e.entry(c.Path)
	if err != nil || ent == nil {
		return false, err
	}
	ent.Version = ent.Version.Merge(d.Version)
	return true, e.store.Put(*ent)
}

// moveTree records that the directory from, with everything in it, was
// moved to to (a conflict copy): the entries below to are new local ones to
// push, the ones below from deleted; from itself is left for the winner's
// install. st is the moved directory's fingerprint.
func (e *Engine) moveTree(tx *cache.Tx, from, to string, st cache.LocalStat) error {
	var moved []cache.Entry
	err := tx.Walk(from, func(ent cache.Entry) error {
		if !ent.Deleted {
			moved = append(moved, ent)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, old := range moved {
		ent := old
		ent.Path = to + strings.TrimPrefix(old.Path, from)
		ent.Version = nil
		if prev, had, err := tx.Get(ent.Path); err != nil {
			return err
		} else if had {
			ent.Version = prev.Version
		}
		if old.Path == from {
			ent.Local = st
		}
		if err := e.dirty(tx, ent); err != nil {
			return err
		}
	}
	for i := len(moved) - 1; i >= 0; i-- {
		old := moved[i]
		if old.Path == from {
			old.Local = cache.LocalStat{}
			if err := tx.Put(old); err != nil {
				return err
			}
			continue
		}
		old.Deleted, old.Hash, old.Size, old.Target, old.Local, old.Remote = true, [32]byte{}, 0, "", cache.LocalStat{}, nil
		if err := e.dirty(tx, old); err != nil {
			return err
		}
	}
	return nil
}

// emptyDir reports whether the cache holds nothing live below dir.
func (e *Engine) emptyDir(dir string) (bool, error) {
	empty := true
	err := e.store.View(func(tx *cache.Tx) error {
		return tx.Walk(dir, func(ent cache.Entry) error {
			if ent.Path != dir && !ent.Deleted {
				empty = false
			}
			return nil
		})
	})
	return empty, err
}

// freeName returns the conflict name for path, made unique should the cache
// already hold a live entry there with other content. there reports that
// the name already holds this very content: the copy was made before (by
// this node or, pulled, by another), and is not made twice. A directory
// there counts as the same copy only with dirOK.
func (e *Engine) freeName(path string, t time.Time, node string, kind cache.Kind, hash [32]byte, target string, dirOK bool) (name string, there bool, err error) {
	label := e.nodeLabel(node)
	name = localdir.ConflictName(path, t, label)
	for i := 2; ; i++ {
		ent, err := e.entry(name)
		if err != nil {
			return "", false, err
		}
		if ent == nil || ent.Deleted {
			return name, false, nil
		}
		if ent.Kind == kind && ent.Hash == hash && ent.Target == target && (kind != cache.KindDir || dirOK) {
			return name, true, nil
		}
		name = localdir.ConflictName(path, t, label+"-"+strconv.Itoa(i))
	}
}

// installCopy installs a peer's losing version at name as a new file of
// this node, to be pushed like any local file.
func (e *Engine) installCopy(ctx context.Context, id crypto.NodeID, c proto.Change, name string, prev *cache.Entry, src source) error {
	ent, err := e.place(ctx, id, c, name, prev, src)
	if err != nil {
		return err
	}
	ent.Version = nil
	if prev != nil {
		ent.Version = prev.Version
	}
	ent.Remote = nil
	return e.store.Update(func(tx *cache.Tx) error { return e.dirty(tx, ent) })
}

// install applies a peer's change at path and records the entry with
// version.
func (e *Engine) install(ctx context.Context, id crypto.NodeID, c proto.Change, path string, local *cache.Entry, version cache.VersionVector, src source) error {
	if c.Op == proto.OpMeta && (local == nil || local.Deleted || local.Local == (cache.LocalStat{})) {
		return nil // nothing here to change; the content comes with a put
	}
	ent, err := e.place(ctx, id, c, path, local, src)
	if err != nil {
		return err
	}
	ent.Version = version
	ent.Origin = id.String()
	ent.Dirty = false
	err = e.store.Update(func(tx *cache.Tx) error {
		if err := tx.Put(ent); err != nil {
			return err
		}
		return satisfied(tx, path)
	})
	if err != nil {
		return err
	}
	switch c.Op {
	case proto.OpPut:
		e.log.Info("pulled", "path", path, "size", c.Size, "node", e.nodeLabel(id.String()))
		e.count(func(s *Stats) { s.FilesPulled++ })
	case proto.OpDelete, proto.OpRmdir, proto.OpSymlink:
		e.log.Info("pulled", "path", path, "op", c.Op, "node", e.nodeLabel(id.String()))
	default:
		e.log.Debug("pulled", "path", path, "op", c.Op, "node", e.nodeLabel(id.String()))
	}
	return nil
}

// place puts the state of change c on disk at path, where the engine last
// saw local (nil: nothing), and returns the entry describing it (without
// version, origin or dirty flag).
func (e *Engine) place(ctx context.Context, id crypto.NodeID, c proto.Change, path string, local *cache.Entry, src source) (cache.Entry, error) {
	ent, err := e.placeOnDisk(ctx, id, c, path, local, src)
	if err == nil {
		e.changed(path)
		if src.renameFrom != "" {
			e.changed(src.renameFrom)
		}
	}
	return ent, err
}

// placeOnDisk is place without the change report.
func (e *Engine) placeOnDisk(ctx context.Context, id crypto.NodeID, c proto.Change, path string, local *cache.Entry, src source) (cache.Entry, error) {
	// What it replaces is kept (the hold directory, then the version
	// store) with the node whose change it was.
	ctx = localdir.WithOrigin(ctx, localdir.Origin{Node: e.nodeLabel(id.String())})
	var expect *cache.LocalStat
	ent := cache.Entry{Path: path}
	if local != nil {
		ent = *local
		ent.Path = path
		if !local.Deleted && local.Local != (cache.LocalStat{}) {
			l := local.Local
			expect = &l
		}
	}
	ent.Deleted, ent.Remote = false, nil
	switch c.Op {
	case proto.OpPut:
		st, err := e.placeFile(ctx, id, c, path, local, expect, src)
		if err != nil {
			return ent, err
		}
		ent.Kind, ent.Hash, ent.Size, ent.Mode, ent.Target, ent.Local = cache.KindFile, c.Hash, c.Size, fileMode(c.Mode), "", st
		ent.ModTime = time.Unix(0, st.MTimeNs).UTC()
		r := remoteRef{Node: id.String(), Seq: &src.seq, Hash: c.Hash, Path: c.Path, Pack: c.Pack, Parts: c.Parts, Chunks: c.Chunks}
		ent.Remote = encodeRemote(r)
	case proto.OpSymlink:
		st, err := e.local.Install(ctx, path, nil, localdir.Meta{Kind: cache.KindSymlink, Target: c.Target, ModTime: c.ModTime}, expect)
		if err != nil {
			return ent, err
		}
		ent.Kind, ent.Hash, ent.Size, ent.Mode, ent.Target, ent.Local, ent.ModTime = cache.KindSymlink, [32]byte{}, 0, 0, c.Target, st, c.ModTime
	case proto.OpMkdir:
		if local != nil && !local.Deleted && local.Kind != cache.KindDir && expect != nil {
			return ent, fmt.Errorf("mkdir %q: a %s is there: %w", path, local.Kind, localdir.ErrLocalChanged)
		}
		st, err := e.local.Mkdir(ctx, path, fileMode(c.Mode))
		if err != nil {
			return ent, err
		}
		ent.Kind, ent.Hash, ent.Size, ent.Mode, ent.Target, ent.Local, ent.ModTime = cache.KindDir, [32]byte{}, 0, fileMode(c.Mode), "", st, c.ModTime
	case proto.OpDelete, proto.OpRmdir:
		if expect != nil {
			if err := e.local.Remove(ctx, path, *expect); err != nil {
				return ent, err
			}
		}
		if local == nil {
			ent.Kind = cache.KindFile
			if c.Op == proto.OpRmdir {
				ent.Kind = cache.KindDir
			}
		}
		ent.Deleted, ent.Hash, ent.Size, ent.Target, ent.Local = true, [32]byte{}, 0, "", cache.LocalStat{}
	case proto.OpMeta:
		meta := localdir.Meta{Kind: local.Kind, Mode: fileMode(c.Mode), ModTime: c.ModTime}
		if local.Kind == cache.KindSymlink {
			return ent, nil
		}
		st, err := e.local.SetMeta(ctx, path, meta, *expect)
		if err != nil {
			return ent, err
		}
		ent.Mode, ent.Local = meta.Mode, st
		if local.Kind == cache.KindFile {
			ent.ModTime = time.Unix(0, st.MTimeNs).UTC()
		}
		ent.Remote = local.Remote
	default:
		return ent, fmt.Errorf("change %q: unexpected op %q", c.Path, c.Op)
	}
	return ent, nil
}

// placeFile installs a put's content at path.
func (e *Engine) placeFile(ctx context.Context, id crypto.NodeID, c proto.Change, path string, local *cache.Entry, expect *cache.LocalStat, src source) (cache.LocalStat, error) {
	meta := localdir.Meta{Kind: cache.KindFile, Mode: fileMode(c.Mode), ModTime: c.ModTime}
	if src.renameFrom != "" && expect == nil {
		from, err := e.entry(src.renameFrom)
		if err != nil {
			return cache.LocalStat{}, err
		}
		if from != nil && !from.Deleted && !from.Dirty && from.Hash == c.Hash {
			if st, err := e.local.Rename(ctx, src.renameFrom, path, from.Local); err == nil {
				if err := e.store.Update(func(tx *cache.Tx) error {
					// The source is gone from disk; its delete follows.
					f := *from
					f.Local = cache.LocalStat{}
					return tx.Put(f)
				}); err != nil {
					return cache.LocalStat{}, err
				}
				return e.local.SetMeta(ctx, path, meta, st)
			}
			// Fall through: fetch the content after all.
		}
	}
	switch {
	case c.Size == 0:
		return e.local.Install(ctx, path, strings.NewReader(""), meta, expect)
	case src.file != "":
		f, err := os.Open(src.file)
		if err != nil {
			return cache.LocalStat{}, err
		}
		defer f.Close()
		// The scratch file becomes the installed one, without a copy.
		return e.local.Install(ctx, path, localdir.Move{F: f}, meta, expect)
	case len(c.Parts) > 0:
		return e.fetchParts(ctx, id, c, path, meta, expect)
	case c.Chunks != nil:
		return e.fetchChunks(ctx, id, c, path, meta, expect)
	case c.Pack != nil:
		// Not fetched ahead (the decision changed): fetch it alone.
		dir, err := os.MkdirTemp(e.cfg.Scratch, "pull-")
		if err != nil {
			return cache.LocalStat{}, err
		}
		defer os.RemoveAll(dir)
		srcs := []source{{}}
		if err := e.fetchPack(ctx, id, []proto.Change{c}, []int{0}, dir, srcs); err != nil {
			return cache.LocalStat{}, err
		}
		if srcs[0].missing {
			return cache.LocalStat{}, fmt.Errorf("content of %q is not on the relay: %w", c.Path, fs.ErrNotExist)
		}
		return e.placeFile(ctx, id, c, path, local, expect, srcs[0])
	}
	return cache.LocalStat{}, fmt.Errorf("content of %q is not on the relay: %w", c.Path, fs.ErrNotExist)
}

// fetchParts downloads a large file's parts into a file of the partial
// directory, remembering after each part how far it got, so that an
// interrupted download (a broken connection, a killed process) resumes at
// its last complete part; then it checks the whole content against the
// record and installs it. The file appears, complete and verified, or not
// at all.
func (e *Engine) fetchParts(ctx context.Context, id crypto.NodeID, c proto.Change, path string, meta localdir.Meta, expect *cache.LocalStat) (cache.LocalStat, error) {
	key := hashKey(c.Hash)
	p, err := e.openPartial(key, id, true, func(prog downloadProgress, _ io.ReaderAt) bool { return prog.Parts <= len(c.Parts) })
	if err != nil {
		return cache.LocalStat{}, err
	}
	defer p.f.Close()
	f, h, prog := p.f, p.hash, p.prog
	if prog.Parts > 0 {
		e.log.Info("resuming an interrupted download", "path", c.Path, "parts_done", prog.Parts, "parts", len(c.Parts))
	}
	forget := func() { e.forgetPartial(p) }
	tr := e.transfers.start(false, c.Path, c.Size)
	defer e.transfers.end(tr)
	e.transfers.set(tr, prog.Bytes)
	// Blocks of zeros become holes: a sparse file stays sparse here.
	sw := localdir.NewSparseWriter(f, prog.Bytes)
	for i := prog.Parts; i < len(c.Parts); i++ {
		n := &countingWriter{}
		err := e.down.GetParts(ctx, id, c.Parts[i:i+1], io.MultiWriter(sw, h, n))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, crypto.ErrBlobCorrupt) || errors.Is(err, crypto.ErrBlobTruncated) {
				forget()
				e.log.Warn("content of a peer is not on the relay or does not verify; skipped", "node", e.nodeLabel(id.String()), "path", c.Path, "err", err)
				return cache.LocalStat{}, errSkip
			}
			return cache.LocalStat{}, fmt.Errorf("fetching %q: %w", c.Path, err)
		}
		e.count(func(s *Stats) { s.BytesPulled += n.n; s.BytesHashed += n.n })
		if err := sw.Finish(); err != nil { // the length, should the part end in a hole
			return cache.LocalStat{}, fmt.Errorf("partial download: %w", err)
		}
		if err := f.Sync(); err != nil {
			return cache.LocalStat{}, fmt.Errorf("partial download: %w", err)
		}
		prog.Parts, prog.Bytes = i+1, prog.Bytes+n.n
		e.transfers.set(tr, prog.Bytes)
		if err := e.setDownload(key, &prog); err != nil {
			return cache.LocalStat{}, err
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum != c.Hash || prog.Bytes != c.Size {
		forget()
		e.log.Error("content does not match its record; skipped", "node", e.nodeLabel(id.String()), "path", c.Path, "bytes", prog.Bytes)
		return cache.LocalStat{}, errSkip
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return cache.LocalStat{}, err
	}
	st, err := e.local.Install(ctx, path, localdir.Move{F: f}, meta, expect)
	if err == nil {
		forget()
	}
	return st, err
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// errSkip leaves a change unapplied without failing the record.
var errSkip = errors.New("change skipped")
