package sync

import (
	"context"
	"os"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

// holdGrace is how long a file replaced or deleted by a pull is kept at
// least, for a program that still has it open to finish writing: it is
// looked at once the grace is over and again at the next round.
const holdGrace = 5 * time.Second

// holder is a Local that keeps the files a pull replaces or deletes
// (localdir.Dir with a hold directory).
type holder interface {
	Held() ([]localdir.Held, error)
	Checked(h localdir.Held) error
	Release(h localdir.Held) error
	OpenHeld(h localdir.Held) (*os.File, error)
	HeldFile(h localdir.Held) string
}

// versionPruneEvery is how often the version store is pruned at most.
const versionPruneEvery = time.Hour

// checkHeld looks at the files kept after a pull replaced or deleted
// them. One that was written meanwhile (a program still had it open) is
// installed beside its path as a conflict copy, which is pushed like any
// new file: the write is not lost. The others are let go once they were
// found unchanged after the grace period and at a later round.
func (e *Engine) checkHeld(ctx context.Context) error {
	h, ok := e.local.(holder)
	if !ok {
		return nil
	}
	held, err := h.Held()
	if err != nil {
		return err
	}
	for _, f := range held {
		reason := versions.PulledEdit
		switch {
		case f.Origin.Local:
			reason = versions.Local
		case f.Deleted:
			reason = versions.PulledDelete
		}
		switch {
		case f.Changed:
			if err := e.keepHeld(ctx, h, f); err != nil {
				e.log.Warn("keeping a file written after a pull replaced it", "path", f.Path, "err", err)
				continue
			}
			// What the program wrote lost to the pull: its conflict
			// copy is beside the file, and the version keeps it too.
			reason = versions.Conflict
		case f.Age < holdGrace:
			continue
		case f.Checks == 0:
			if err := h.Checked(f); err != nil {
				return err
			}
			continue
		}
		e.keepVersion(h, f, reason)
		if err := h.Release(f); err != nil {
			return err
		}
	}
	e.pruneVersions()
	return nil
}

// keepVersion keeps the content of the released file f in the version
// store, if there is one: a link, no copy, as the hold directory is in the
// node's state as the store is. A failure is logged: the pull was right,
// only its old content is not kept.
func (e *Engine) keepVersion(h holder, f localdir.Held, reason versions.Reason) {
	if !e.keepsVersions() {
		return
	}
	if _, err := e.cfg.Versions.Keep(h.HeldFile(f), f.Path, reason, f.Origin.Node); err != nil {
		e.log.Warn("keeping the old version of a file a pull replaced", "path", f.Path, "err", err)
	}
}

func (e *Engine) keepsVersions() bool {
	return e.cfg.Versions != nil && e.cfg.VersionPolicy.Kind != versions.Off
}

// keepConflict keeps the loser of a conflict over path, now the file name
// beside it, in the version store too (a copy: the conflict copy stays
// and may be edited). winner is the ID of the node whose version won. A
// failure is logged: the conflict copy keeps the content anyway.
func (e *Engine) keepConflict(ctx context.Context, path, name, winner string) {
	if !e.keepsVersions() {
		return
	}
	ent, err := e.entry(name)
	if err != nil || ent == nil || ent.Kind != cache.KindFile || ent.Local == (cache.LocalStat{}) {
		return
	}
	f, err := e.local.Open(ctx, name, ent.Local)
	if err == nil {
		_, err = e.cfg.Versions.KeepCopy(f, path, versions.Conflict, e.nodeLabel(winner))
		f.Close()
	}
	if err != nil {
		e.log.Warn("keeping the loser of a conflict as a version", "path", path, "copy", name, "err", err)
	}
}

// pruneVersions applies the version policy, at most every
// versionPruneEvery. A failure is logged: the next hour tries again.
func (e *Engine) pruneVersions() {
	if e.cfg.Versions == nil {
		return
	}
	now := e.clock.Now()
	if !e.lastPrune.IsZero() && now.Sub(e.lastPrune) < versionPruneEvery {
		return
	}
	e.lastPrune = now
	n, err := e.cfg.Versions.Prune(e.cfg.VersionPolicy)
	switch {
	case err != nil:
		e.log.Warn("pruning the version store", "err", err)
	case n > 0:
		e.log.Debug("pruned the version store", "versions", n)
	}
}

// keepHeld installs the held file f as a conflict copy of its path, and
// has it scanned, so that it is pushed.
func (e *Engine) keepHeld(ctx context.Context, h holder, f localdir.Held) error {
	name, _, err := e.freeName(f.Path, f.ModTime, e.selfID, cache.KindFile, [32]byte{}, "", false)
	if err != nil {
		return err
	}
	src, err := h.OpenHeld(f)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := e.local.Install(ctx, name, src,
		localdir.Meta{Kind: cache.KindFile, Mode: f.Mode.Perm(), ModTime: f.ModTime}, nil); err != nil {
		return err
	}
	e.log.Warn("a program wrote to a file after a pull replaced it: its version is kept as a conflict copy",
		"path", f.Path, "copy", name)
	_, err = e.Scan(ctx, []string{name})
	return err
}
