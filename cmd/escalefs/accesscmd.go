package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/cache"
	escsync "github.com/escalefs/escalefs/sync"
)

// accessCacheTimeout is how long escalefs access waits for the node's cache
// before deciding that escalefs sync runs and holds it.
const accessCacheTimeout = 500 * time.Millisecond

// controlPoll is how often escalefs access and nodes forget look whether
// the running node has taken their request.
const controlPoll = 50 * time.Millisecond

func newAccessCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "access FILE [MODS]",
		Short: "Read or set the access modifiers of a file in a synced folder",
		Long: `Access reads (without MODS) or sets the access modifiers of FILE, a file or
directory in a folder kept in step by escalefs sync or mounted by escalefs
mount (where chmod sets them too: see escalefs mount --help). They are this
node's own and are never sent to the other nodes:

  r-   never push this file: it stays private to this node
  w-   pulled versions never overwrite it: they are kept beside it as
       conflict copies (name.sync-conflict-DATE-NODE.ext)
  r+   push it (unless the node runs in download mode)
  w+   let pulled versions replace it, even in conservative mode
  r?   w?   unset: the mode's default applies

Letters combine: rw is r+w+, rw- is r-w-, r+w- sets both. Only the letters
named change.

The file must be known to the folder's sync: a new file becomes known at
the next sync round. When escalefs sync is running, the change is handed to
it and applied at its next round; escalefs access waits for it (--wait).`,
		Example: "  escalefs access ~/Sync/notes.txt r-\n" +
			"  escalefs access ~/Sync/shared/budget.ods w-\n" +
			"  escalefs access ~/Sync/notes.txt r?w?\n" +
			"  escalefs access ~/Sync/notes.txt",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("missing FILE: give the file whose access modifiers to read or set, e.g. escalefs access ~/Sync/notes.txt r-")
			case 1, 2:
				return nil
			}
			return fmt.Errorf("%d arguments given (%s): escalefs access takes FILE and optionally MODS, such as r- or w-",
				len(args), strings.Join(args, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var upd *cache.AccessUpdate
			if len(args) == 2 {
				u, err := cache.ParseAccess(args[1])
				if err != nil {
					return err
				}
				upd = &u
			}
			if wait <= 0 {
				return fmt.Errorf("--wait %s: expected a positive duration, such as 30s", wait)
			}
			return runAccess(cmd.Context(), g, args[0], upd, wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second,
		"how long to wait for a running escalefs sync to apply the change (it stays queued after that)")
	return cmd
}

// syncedFile is a file located in a folder synced by escalefs sync.
type syncedFile struct {
	dir   string // the synced folder, absolute and resolved
	state string // the node's state directory
	rel   string // the file's cache path: relative to dir, slash-separated
}

// locateSynced finds the synced folder holding file, and the node's state
// directory under root: the nearest ancestor of file for which a state
// directory exists.
func locateSynced(root, file string) (syncedFile, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return syncedFile{}, err
	}
	// The parent's links are resolved, not file's own: a symbolic link in
	// the folder is synced as a link.
	p := abs
	if parent := filepath.Dir(abs); parent != abs {
		p = filepath.Join(resolvePath(parent), filepath.Base(abs))
	}
	for d := p; ; {
		states, err := folderStateDirs(root, d)
		if err != nil {
			return syncedFile{}, err
		}
		switch {
		case len(states) > 1:
			return syncedFile{}, fmt.Errorf("%s is in the folder %s, which escalefs sync keeps in step with %d repositories "+
				"(state directories: %s): cannot tell which one; remove the state directory of the one no longer synced",
				file, d, len(states), strings.Join(states, ", "))
		case len(states) == 1 && d == p:
			return syncedFile{}, fmt.Errorf("%s is the synced folder itself: give a file or directory inside it", file)
		case len(states) == 1:
			rel, err := filepath.Rel(d, p)
			if err != nil {
				return syncedFile{}, err
			}
			return syncedFile{dir: d, state: states[0], rel: filepath.ToSlash(rel)}, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return syncedFile{}, fmt.Errorf("%s is not in a folder synced by escalefs sync (no state under %s for %s or a folder above it)",
		file, root, p)
}

func runAccess(ctx context.Context, g *globals, file string, upd *cache.AccessUpdate, wait time.Duration) error {
	root, err := stateRoot()
	if err != nil {
		return err
	}
	sf, err := locateSynced(root, file)
	if err != nil {
		return err
	}
	dbPath := filepath.Join(sf.state, "cache.db")
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("the state directory %s of %s holds no cache (%v): run escalefs sync first", sf.state, sf.dir, err)
	}
	store, err := cache.Open(dbPath, cache.Options{Logger: g.logger(), Timeout: accessCacheTimeout})
	switch {
	case errors.Is(err, cache.ErrInUse):
		pid := cacheHolder(err)
		if upd == nil {
			return readRunningAccess(g, sf)
		}
		return requestAccess(ctx, g, sf, *upd, wait, pid)
	case err != nil:
		return engineFailed(err, sf.state)
	}
	defer store.Close()

	if upd == nil {
		ent, ok, err := store.Get(sf.rel)
		if err != nil {
			return err
		}
		if !ok || ent.Deleted {
			return notKnown(file, sf)
		}
		printAccess(g, sf.rel, ent.Access)
		return nil
	}
	a, err := escsync.SetAccessInCache(store, sf.rel, *upd, true)
	if errors.Is(err, fs.ErrNotExist) {
		return notKnown(file, sf)
	}
	if err != nil {
		return err
	}
	if err := escsync.WriteAccessFile(store, sf.state); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(sf.state, escsync.AccessFile), err)
	}
	printAccess(g, sf.rel, a)
	return nil
}

// notKnown is the error for a file the node's cache does not know.
func notKnown(file string, sf syncedFile) error {
	return fmt.Errorf("%s is not known to the sync of %s yet: a new file becomes known after the next sync round "+
		"(escalefs sync scans the folder), or never if a filter of escalefs sync excludes it", file, sf.dir)
}

// runningAccess reads the modifiers of rel from the access file that the
// running sync keeps.
func runningAccess(sf syncedFile) (cache.Access, error) {
	m, err := escsync.ReadAccessFile(sf.state)
	if err != nil {
		return cache.Access{}, err
	}
	s, ok := m[sf.rel]
	if !ok || s == "" {
		return cache.Access{}, nil
	}
	u, err := cache.ParseAccess(s)
	if err != nil {
		return cache.Access{}, fmt.Errorf("%s: %q: %w", filepath.Join(sf.state, escsync.AccessFile), sf.rel, err)
	}
	return u.Apply(cache.Access{}), nil
}

func readRunningAccess(g *globals, sf syncedFile) error {
	a, err := runningAccess(sf)
	if err != nil {
		return err
	}
	printAccess(g, sf.rel, a)
	return nil
}

// requestAccess hands the update to the running sync through a request file
// in its control directory and waits until it has taken it.
func requestAccess(ctx context.Context, g *globals, sf syncedFile, upd cache.AccessUpdate, wait time.Duration, pid string) error {
	before, err := runningAccess(sf)
	if err != nil {
		return err
	}
	want := upd.Apply(before)
	req, err := writeControlRequest(sf.state, escsync.AccessRequestsDir, escsync.AccessRequest{Path: sf.rel, Mods: updateString(upd)})
	if err != nil {
		return fmt.Errorf("handing the change to the running escalefs sync (%s): %w", pid, err)
	}
	queued := fmt.Sprintf("%s: %s queued: the running escalefs sync (%s) applies it at its next round", sf.rel, want.String(), pid)
	if taken, err := waitTaken(ctx, req, wait); err != nil {
		return fmt.Errorf("interrupted; %s", strings.TrimPrefix(queued, sf.rel+": "))
	} else if !taken {
		fmt.Fprintln(g.stdout, queued)
		return nil
	}
	got, err := runningAccess(sf)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the running escalefs sync (%s) did not set %s on %s (it has %q): "+
			"a new file becomes known after the next sync round, a file excluded by a filter never; see its log",
			pid, want.String(), sf.rel, got.String())
	}
	printAccess(g, sf.rel, got)
	return nil
}

// updateString writes u in cache.ParseAccess notation.
func updateString(u cache.AccessUpdate) string {
	var parts []string
	for _, f := range []struct {
		c   string
		set bool
		p   cache.Perm
	}{{"r", u.SetRead, u.Read}, {"w", u.SetWrite, u.Write}} {
		if !f.set {
			continue
		}
		switch f.p {
		case cache.PermAllow:
			parts = append(parts, f.c+"+")
		case cache.PermDeny:
			parts = append(parts, f.c+"-")
		default:
			parts = append(parts, f.c+"?")
		}
	}
	return strings.Join(parts, "")
}

// waitTaken waits until the running node has taken the request file req
// (removed it), for at most wait: false when it has not by then. The error
// is ctx's, when ctx ends first.
func waitTaken(ctx context.Context, req string, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(controlPoll)
	defer tick.Stop()
	for {
		if _, err := os.Lstat(req); errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
	}
}

// writeControlRequest writes req as JSON into the directory sub of the
// control directory, atomically (a temporary file renamed into place),
// under a name that sorts by time, and returns its path: a request that a
// running engine picks up at its next round (access, forget).
func writeControlRequest(control, sub string, req any) (string, error) {
	dir := filepath.Join(control, sub)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	data, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%d-%s.json", time.Now().UnixNano(), hex.EncodeToString(rnd[:]))
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	final := filepath.Join(dir, name)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return final, nil
}

// printAccess prints the modifiers of rel, with what they mean.
func printAccess(g *globals, rel string, a cache.Access) {
	if a == (cache.Access{}) {
		fmt.Fprintf(g.stdout, "%s: no modifiers set (the mode's defaults apply)\n", rel)
		return
	}
	var why []string
	switch a.Read {
	case cache.PermDeny:
		why = append(why, "never pushed: private to this node")
	case cache.PermAllow:
		why = append(why, "pushed unless the node runs in download mode")
	}
	switch a.Write {
	case cache.PermDeny:
		why = append(why, "protected: pulled versions are kept beside it as conflict copies")
	case cache.PermAllow:
		why = append(why, "pulled versions replace it, even in conservative mode")
	}
	fmt.Fprintf(g.stdout, "%s: %s (%s)\n", rel, a.String(), strings.Join(why, "; "))
}
