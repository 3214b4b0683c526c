package sync

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/proto"
)

// mayRead reports whether the engine may read ent's local file, and so push
// it: its r modifier when set, else whether the node's mode pushes.
func (e *Engine) mayRead(ent cache.Entry) bool {
	return mayPush(ent.Access, e.cfg.Mode != proto.ModeDownload)
}

// mayPush is the r rule: a file is pushed unless it is r- or the node's mode
// pushes nothing (r+ does not override download mode).
func mayPush(a cache.Access, modePushes bool) bool {
	return a.Read != cache.PermDeny && modePushes
}

// writeVerdict is what the w modifier and the mode say about letting a
// pulled version replace the local state of a path.
type writeVerdict int

const (
	writeAllowed writeVerdict = iota
	// writeKeepCopy: w-. The local file stays; the pulled version is kept
	// beside it as a conflict copy.
	writeKeepCopy
	// writeRefused: conservative mode over a file made or changed here.
	// The local file stays; the pulled version is acknowledged and
	// dropped, so that it leaves the relay.
	writeRefused
)

// mayWrite decides for local, the entry a pulled change would replace.
// Nothing on disk (no entry, a tombstone, a path never installed) is never
// protected.
func (e *Engine) mayWrite(local *cache.Entry) writeVerdict {
	if local == nil || local.Deleted || local.Local == (cache.LocalStat{}) {
		return writeAllowed
	}
	switch local.Access.Write {
	case cache.PermAllow:
		return writeAllowed
	case cache.PermDeny:
		return writeKeepCopy
	}
	if e.cfg.Mode == proto.ModeConservative && (local.Origin == e.selfID || local.Dirty) {
		return writeRefused
	}
	return writeAllowed
}

// SetAccess sets the access modifiers of path (see cache.ParseAccess) and
// returns the new ones. A file made readable again is queued, so that a
// change kept private while it was r- is pushed now. The path must be known
// to the cache (scanned or pulled).
func (e *Engine) SetAccess(ctx context.Context, path string, u cache.AccessUpdate) (cache.Access, error) {
	out, err := SetAccessInCache(e.store, path, u, e.cfg.Mode != proto.ModeDownload)
	if err != nil {
		return out, fmt.Errorf("access %q: %w", path, err)
	}
	e.log.Info("access modifiers set", "path", path, "access", out.String())
	if e.cfg.Control != "" {
		if err := WriteAccessFile(e.store, e.cfg.Control); err != nil {
			e.log.Warn("writing the access file", "err", err)
		}
	}
	return out, nil
}

// Access returns the access modifiers of path as set on this node.
func (e *Engine) Access(path string) (cache.Access, bool, error) {
	ent, ok, err := e.store.Get(path)
	if err != nil || !ok || ent.Deleted {
		return cache.Access{}, false, err
	}
	return ent.Access, true, nil
}

// Known makes sure the cache knows path, so that its modifiers can be set:
// a path it does not know yet (a file just made through the mount, not
// scanned) is scanned now, and queued for push like any scanned change. The
// error wraps fs.ErrNotExist when path is still unknown after that: missing,
// or excluded by a filter.
func (e *Engine) Known(ctx context.Context, path string) error {
	for scanned := false; ; scanned = true {
		if _, ok, err := e.Access(path); err != nil || ok {
			return err
		}
		if scanned {
			return fmt.Errorf("%q is not a synchronized file or directory: %w", path, fs.ErrNotExist)
		}
		// A file just closed may still count as open for writing: the
		// kernel sends its release after close returns. It is recorded
		// all the same; the push holds it back while it is open.
		if _, err := e.scanPaths(ctx, []string{path}, true); err != nil {
			return err
		}
	}
}

// requeueDirty queues every dirty entry the node may push: changes kept
// back while the node was in download mode, or made while a file was r-,
// go out once that no longer holds.
func (e *Engine) requeueDirty() error {
	if e.cfg.Mode == proto.ModeDownload {
		return nil
	}
	var paths []string
	err := e.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if ent.Dirty && e.mayRead(ent) {
				paths = append(paths, ent.Path)
			}
			return nil
		})
	})
	if err != nil || len(paths) == 0 {
		return err
	}
	return e.store.Update(func(tx *cache.Tx) error {
		q, err := tx.Peek(0)
		if err != nil {
			return err
		}
		queued := make(map[string]bool, len(q))
		for _, it := range q {
			queued[it.Path] = true
		}
		for _, p := range paths {
			if !queued[p] {
				if _, err := tx.Enqueue(p, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
