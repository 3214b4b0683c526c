package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

// escalefs versions restore hands a running engine what to put back
// through the control directory, as escalefs access does: a request file
// in <control>/restore-requests/, which the engine carries out at its next
// round; it then writes the outcome beside it (the same name ending in
// .done) and removes the request.

const (
	// RestoreRequestsDir is where restore requests wait, one JSON file
	// each.
	RestoreRequestsDir = "restore-requests"
	// RestoreDoneSuffix replaces a request's .json once it is carried
	// out: the file holds its RestoreResult.
	RestoreDoneSuffix = ".done"
)

// RestoreRequest asks a running engine to put versions back.
type RestoreRequest struct {
	Items []RestoreItem `json:"items"`
}

// RestoreItem is one version to put back at its path.
type RestoreItem struct {
	Path    string `json:"path"`
	Version string `json:"version"` // its ID in the version store
}

// RestoreResult is what a restore request did.
type RestoreResult struct {
	Restored int      `json:"restored"`
	Errors   []string `json:"errors,omitempty"`
}

// Restore puts version v back at path: an ordinary local change, pushed
// to every node. What path holds now is kept as a version first (through
// the hold directory, released as a local version), so nothing is lost.
func (e *Engine) Restore(ctx context.Context, path string, v versions.Version) error {
	if !e.keepsVersions() {
		return errors.New("this node keeps no versions (--versions off)")
	}
	if err := cache.ValidPath(path); err != nil {
		return err
	}
	// What the folder holds now, as the cache knows it.
	if _, err := e.Scan(ctx, []string{path}); err != nil {
		return err
	}
	ent, err := e.entry(path)
	if err != nil {
		return err
	}
	var expect *cache.LocalStat
	if ent != nil && !ent.Deleted && ent.Local != (cache.LocalStat{}) {
		if ent.Kind == cache.KindDir {
			return fmt.Errorf("restoring %q: a directory is there", path)
		}
		l := ent.Local
		expect = &l
	}
	src, err := e.cfg.Versions.Open(v)
	if err != nil {
		return err
	}
	defer src.Close()
	meta := localdir.Meta{Kind: cache.KindFile, Mode: v.Mode.Perm(), ModTime: v.ModTime}
	if _, err := e.local.Install(localdir.WithOrigin(ctx, localdir.Origin{Local: true}), path, src, meta, expect); err != nil {
		return fmt.Errorf("restoring %q: %w", path, err)
	}
	e.changed(path)
	e.log.Info("restored an old version", "path", path, "replaced", v.Time, "reason", v.Reason)
	_, err = e.Scan(ctx, []string{path})
	return err
}

// applyRestoreRequests carries out the restore requests waiting in the
// control directory, oldest first.
func (e *Engine) applyRestoreRequests(ctx context.Context) {
	if e.cfg.Control == "" {
		return
	}
	paths, err := requestFiles(filepath.Join(e.cfg.Control, RestoreRequestsDir))
	if err != nil {
		e.log.Warn("restore requests", "err", err)
		return
	}
	for _, p := range paths {
		var res RestoreResult
		var r RestoreRequest
		if b, err := os.ReadFile(p); err != nil {
			continue
		} else if err := json.Unmarshal(b, &r); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("malformed request %s: %v", p, err))
		}
		for _, it := range r.Items {
			if err := e.restoreItem(ctx, it); err != nil {
				e.log.Warn("restore request", "path", it.Path, "err", err)
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", it.Path, err))
				continue
			}
			res.Restored++
		}
		b, _ := json.Marshal(res)
		done := strings.TrimSuffix(p, ".json") + RestoreDoneSuffix
		if err := os.WriteFile(done, b, 0o600); err != nil {
			e.log.Warn("restore request: writing its outcome", "file", done, "err", err)
		}
		_ = os.Remove(p)
	}
}

func (e *Engine) restoreItem(ctx context.Context, it RestoreItem) error {
	if !e.keepsVersions() {
		return errors.New("this node keeps no versions (--versions off)")
	}
	v, err := e.cfg.Versions.Get(it.Version)
	if err != nil {
		return err
	}
	if v.Path != it.Path {
		return fmt.Errorf("version %s is of %q, not of this path", v.ID, v.Path)
	}
	return e.Restore(ctx, it.Path, v)
}
