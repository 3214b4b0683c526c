package sync

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
)

// scanTxSize bounds the changes recorded in one cache transaction.
const scanTxSize = 2000

// Scan compares the folder (or only paths, each with its subtree) with the
// cache, records every local change as a dirty entry and queues it for the
// next Push. It returns how many changes it recorded, not counting
// fingerprint updates (OpRestat), which leave nothing to push.
func (e *Engine) Scan(ctx context.Context, paths []string) (int, error) {
	return e.scanPaths(ctx, paths, false)
}

// scanPaths is Scan; with open, it also records files open for writing
// (which the push holds back until they are closed).
func (e *Engine) scanPaths(ctx context.Context, paths []string, open bool) (int, error) {
	e.scanMu.Lock()
	defer e.scanMu.Unlock()
	n, err := e.scan(ctx, paths, open)
	if err != nil || len(paths) == 0 {
		return n, err
	}
	// A write through one name of a file with several hard links
	// changes every name: the mount and the watcher report only the one
	// written, so the others are scanned too, and every name's content
	// reaches the peers (which hold them as separate files).
	if linked := e.linkedPaths(paths); len(linked) > 0 {
		m, err := e.scan(ctx, linked, open)
		return n + m, err
	}
	return n, nil
}

// linkedPaths returns the paths the cache knows, other than paths, whose
// file is the same as that of one of paths with more than one link.
func (e *Engine) linkedPaths(paths []string) []string {
	r, ok := e.local.(interface{ Root() string })
	if !ok {
		return nil
	}
	inodes := make(map[uint64]bool)
	for _, p := range paths {
		var st syscall.Stat_t
		if syscall.Lstat(filepath.Join(r.Root(), filepath.FromSlash(p)), &st) == nil &&
			st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink > 1 {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var out []string
	_ = e.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if !ent.Deleted && ent.Kind == cache.KindFile && inodes[ent.Local.Inode] && !slices.Contains(paths, ent.Path) {
				out = append(out, ent.Path)
			}
			return nil
		})
	})
	return out
}

// scan scans paths (nil: the whole folder) and records the changes found,
// those of files open for writing only with open.
func (e *Engine) scan(ctx context.Context, paths []string, open bool) (int, error) {
	paths, err := e.withNewParents(paths)
	if err != nil {
		return 0, fmt.Errorf("scanning the folder: %w", err)
	}
	opts := localdir.ScanOptions{Paths: paths}
	if e.cfg.Chunks {
		// The files pushed as chunks are hashed by them.
		opts.Chunks, opts.ChunksFrom = chunkHasher{e.chunker}, e.cfg.PackLimit
	}
	res, err := e.local.Scan(ctx, e.store, opts)
	if err != nil {
		return 0, fmt.Errorf("scanning the folder: %w", err)
	}
	e.count(func(s *Stats) { s.BytesHashed += res.HashedBytes })
	for _, f := range res.Failed {
		e.log.Warn("cannot read local file; skipped", "path", f.Path, "err", f.Err)
	}
	if len(res.Unstable) > 0 {
		e.log.Debug("files changing while scanned; next scan takes them", "paths", res.Unstable)
	}
	if len(paths) == 0 && !e.cfg.AllowEmpty {
		if err := e.checkEmptied(res.Changes); err != nil {
			return 0, err
		}
	}
	if !open {
		res.Changes = e.withoutOpenFiles(res.Changes)
	}
	n := 0
	for chunk := range slices.Chunk(res.Changes, scanTxSize) {
		err := e.store.Update(func(tx *cache.Tx) error {
			for _, ch := range chunk {
				if err := e.record(tx, ch); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("recording local changes: %w", err)
		}
		for _, ch := range chunk {
			if ch.Op != localdir.OpRestat {
				n++
			}
		}
	}
	return n, nil
}

// withNewParents replaces each of paths that lies in a directory the cache
// does not hold by the highest such directory, so that a directory is
// recorded (and pushed) before anything in it. A file scanned alone in a
// directory made a moment ago would otherwise reach the peers without its
// directory, which they create to hold it and which the rmdir, found by a
// scan of a path the cache never knew, would never remove.
func (e *Engine) withNewParents(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return paths, nil
	}
	out := make([]string, len(paths))
	err := e.store.View(func(tx *cache.Tx) error {
		for i, p := range paths {
			out[i] = p
			for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
				ent, ok, err := tx.Get(dir)
				if err != nil {
					return err
				}
				if ok && !ent.Deleted && ent.Kind == cache.KindDir {
					break
				}
				out[i] = dir
			}
		}
		return nil
	})
	return out, err
}

// withoutOpenFiles drops the content changes of files open for writing
// (Config.InUse): a file is pushed once its writer closes it, which the
// mount reports, not half-written.
func (e *Engine) withoutOpenFiles(changes []localdir.Change) []localdir.Change {
	if e.cfg.InUse == nil {
		return changes
	}
	return slices.DeleteFunc(changes, func(ch localdir.Change) bool {
		switch ch.Op {
		case localdir.OpCreate, localdir.OpModify, localdir.OpTouch:
			if e.cfg.InUse(ch.Path) {
				e.log.Debug("file open for writing; pushed once closed", "path", ch.Path)
				return true
			}
		}
		return false
	})
}

// ErrFolderEmptied means a scan found every synchronized file gone at once.
var ErrFolderEmptied = errors.New("the folder was emptied")

// checkEmptied refuses a scan in which everything the cache knows is gone
// and nothing is new: far more often an unmounted drive or a folder moved
// away than a wish to delete every file on every node.
func (e *Engine) checkEmptied(changes []localdir.Change) error {
	removals := 0
	for _, ch := range changes {
		switch ch.Op {
		case localdir.OpDelete, localdir.OpRmdir:
			removals++
		case localdir.OpRestat:
		default:
			return nil
		}
	}
	if removals < 2 {
		return nil
	}
	live := 0
	err := e.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if !ent.Deleted && ent.Local != (cache.LocalStat{}) {
				live++
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if removals < live {
		return nil
	}
	return fmt.Errorf("every one of the %d synchronized files and directories is gone from the folder; "+
		"not propagating their deletion to the other nodes (is a drive unmounted, or the folder moved?). "+
		"If you meant to delete them all, delete them on another node, or keep one new file here: %w", live, ErrFolderEmptied)
}

// record stores one local change in the cache and queues what must be
// pushed. A dirty entry keeps the version it had: Push bumps it.
func (e *Engine) record(tx *cache.Tx, ch localdir.Change) error {
	old, had, err := tx.Get(ch.Path)
	if err != nil {
		return err
	}
	ent := old
	if !had {
		ent = cache.Entry{Path: ch.Path}
	}
	if ch.Chunks != nil {
		// The chunks the scan cut the file into: a push takes them from
		// here instead of cutting it again, and a pull may find chunks
		// here.
		if err := tx.SetChunks(ch.Path, ch.Local, ch.Chunks); err != nil {
			return err
		}
	}
	switch ch.Op {
	case localdir.OpRestat:
		ent.Local = ch.Local
		return tx.Put(ent)
	case localdir.OpDelete, localdir.OpRmdir:
		if !had || old.Deleted {
			return nil
		}
		if len(old.Version) == 0 {
			// Never pushed nor pulled: no peer knows the path, so there
			// is no delete to tell them; its queue item is dropped.
			return tx.Delete(ch.Path)
		}
		ent.Deleted, ent.Hash, ent.Size, ent.Target, ent.Local = true, [32]byte{}, 0, "", cache.LocalStat{}
		ent.Remote = nil
		return e.dirty(tx, ent)
	case localdir.OpRename:
		return e.recordRename(tx, ch)
	}
	fill(&ent, ch)
	return e.dirty(tx, ent)
}

// fill sets ent's state from a scanned change.
func fill(ent *cache.Entry, ch localdir.Change) {
	ent.Kind = ch.Kind
	ent.Deleted = false
	ent.Size, ent.ModTime, ent.Mode = ch.Size, ch.ModTime, ch.Mode
	ent.Target = ch.Target
	if ch.Kind != cache.KindFile {
		ent.Size, ent.Hash = 0, [32]byte{}
	} else {
		ent.Hash = ch.Hash
	}
	if ch.Kind == cache.KindSymlink {
		ent.Mode = 0
	}

	ent.Local = ch.Local
}

// dirty stores ent as changed here and queues it.
func (e *Engine) dirty(tx *cache.Tx, ent cache.Entry) error {
	return e.dirtyPayload(tx, ent, "")
}

// payloadPut marks a queue item whose file must go out with its content,
// not as a meta change: the peers may have deleted it.
const payloadPut = "put"

// dirtyPayload is dirty with a queue payload.
func (e *Engine) dirtyPayload(tx *cache.Tx, ent cache.Entry, payload string) error {
	ent.Dirty = true
	ent.Origin = e.selfID
	if err := tx.Put(ent); err != nil {
		return err
	}
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	_, err := tx.Enqueue(ent.Path, p)
	return err
}

// recordRename records a rename as the creation of the new path (keeping
// the old one's content reference, so that Push need not upload it again)
// followed by the deletion of the old one; a directory moves with its
// subtree.
func (e *Engine) recordRename(tx *cache.Tx, ch localdir.Change) error {
	var moved []cache.Entry
	err := tx.Walk(ch.From, func(ent cache.Entry) error {
		if !ent.Deleted {
			moved = append(moved, ent)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// New paths first, parents before children; then the old ones,
	// children before parents.
	for _, old := range moved {
		to := ch.Path + strings.TrimPrefix(old.Path, ch.From)
		prev, had, err := tx.Get(to)
		if err != nil {
			return err
		}
		ent := old
		ent.Path = to
		ent.Version = nil
		if had {
			ent.Version = prev.Version
			ent.Access = prev.Access
		}
		if old.Path == ch.From {
			fill(&ent, ch)
		}
		if err := e.dirty(tx, ent); err != nil {
			return err
		}
	}
	for i := len(moved) - 1; i >= 0; i-- {
		ent := moved[i]
		ent.Deleted, ent.Hash, ent.Size, ent.Target, ent.Local, ent.Remote = true, [32]byte{}, 0, "", cache.LocalStat{}, nil
		if err := e.dirty(tx, ent); err != nil {
			return err
		}
	}
	if len(moved) == 0 {
		ent := cache.Entry{Path: ch.Path}
		if prev, had, err := tx.Get(ch.Path); err != nil {
			return err
		} else if had {
			ent = prev
		}
		fill(&ent, ch)
		return e.dirty(tx, ent)
	}
	return nil
}
