package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/escalefs/escalefs/cache"
)

// The control directory lets `escalefs access` reach a running engine,
// whose cache it cannot open: it drops a request file into
// <control>/access-requests/, the engine applies it at its next round and
// removes it, and <control>/access.json always lists the modifiers set on
// this node (path → Escale notation), for reading.

const (
	// AccessRequestsDir is where access requests wait, one JSON file each.
	AccessRequestsDir = "access-requests"
	// AccessFile lists the modifiers set on this node.
	AccessFile = "access.json"
)

// AccessRequest asks a running engine to set the modifiers of Path
// (relative to the synced folder) to Mods (cache.ParseAccess notation).
type AccessRequest struct {
	Path string `json:"path"`
	Mods string `json:"mods"`
}

// SetAccessInCache sets path's modifiers in store directly, for a caller
// that holds the cache while no engine runs; it is what Engine.SetAccess
// does, queueing a file made readable again. readable tells whether the
// node's mode lets it push files at all.
func SetAccessInCache(store *cache.Store, path string, u cache.AccessUpdate, readable bool) (cache.Access, error) {
	var out cache.Access
	mayRead := func(ent cache.Entry) bool { return mayPush(ent.Access, readable) }
	err := store.Update(func(tx *cache.Tx) error {
		ent, ok, err := tx.Get(path)
		if err != nil {
			return err
		}
		if !ok || ent.Deleted {
			return fmt.Errorf("%q is not a synchronized file or directory (yet: a new file is known after the next sync round): %w", path, fs.ErrNotExist)
		}
		before := mayRead(ent)
		ent.Access = u.Apply(ent.Access)
		out = ent.Access
		if err := tx.Put(ent); err != nil {
			return err
		}
		if !before && mayRead(ent) && ent.Dirty {
			_, err = tx.Enqueue(path, nil)
		}
		return err
	})
	return out, err
}

// WriteAccessFile writes <control>/access.json from store: every path with a
// modifier set.
func WriteAccessFile(store *cache.Store, control string) error {
	m := make(map[string]string)
	err := store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if !ent.Deleted && ent.Access != (cache.Access{}) {
				m[ent.Path] = ent.Access.String()
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(control, AccessFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(control, AccessFile))
}

// ReadAccessFile reads <control>/access.json.
func ReadAccessFile(control string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(control, AccessFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(control, AccessFile), err)
	}
	return m, nil
}

// controlRequests carries out the requests waiting in the control
// directory: access modifiers, then restores.
func (e *Engine) controlRequests(ctx context.Context) error {
	err := e.applyAccessRequests(ctx)
	e.applyRestoreRequests(ctx)
	return err
}

// requestFiles lists the request files in dir (escalefs access, nodes
// forget) in the order they were written: their names sort by time. A
// missing dir holds none; temporary files being written are left out.
func requestFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var paths []string
	for _, d := range ents {
		if strings.HasSuffix(d.Name(), ".json") && !strings.HasPrefix(d.Name(), ".") {
			paths = append(paths, filepath.Join(dir, d.Name()))
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// applyAccessRequests applies the access requests waiting in the control
// directory, oldest first, and refreshes access.json.
func (e *Engine) applyAccessRequests(ctx context.Context) error {
	if e.cfg.Control == "" {
		return nil
	}
	paths, err := requestFiles(filepath.Join(e.cfg.Control, AccessRequestsDir))
	if err != nil {
		return err
	}
	changed := !e.accessWritten
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r AccessRequest
		if err := json.Unmarshal(b, &r); err != nil {
			e.log.Warn("ignoring a malformed access request", "file", p, "err", err)
		} else if u, err := cache.ParseAccess(r.Mods); err != nil {
			e.log.Warn("ignoring an access request", "file", p, "err", err)
		} else if _, err := e.SetAccess(ctx, r.Path, u); err != nil {
			e.log.Warn("access request", "path", r.Path, "err", err)
		} else {
			changed = true
			// The mount shows the modifiers as mode bits.
			e.changed(r.Path)
		}
		_ = os.Remove(p)
	}
	if changed {
		if err := WriteAccessFile(e.store, e.cfg.Control); err != nil {
			return fmt.Errorf("writing %s: %w", AccessFile, err)
		}
		e.accessWritten = true
	}
	return nil
}
