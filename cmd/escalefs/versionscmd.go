package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/internal/units"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

func newVersionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions PATH",
		Short: "List the old versions of a file that this node kept",
		Long: `Versions lists the old versions this node kept of PATH, a file or directory
in a folder kept in step by escalefs sync or mounted by escalefs mount (the
folder itself: every version): the content that pulled edits replaced and
pulled deletes removed (see --versions of escalefs sync). They are kept in
the node's state, never synced. Number 1 is the newest of each file.

escalefs versions restore puts one back.`,
		Example: "  escalefs versions ~/Sync/notes.txt\n  escalefs versions ~/Sync",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%d arguments given: escalefs versions takes one PATH, a file or directory in a synced folder", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			loc, err := locateVersions(args[0])
			if err != nil {
				return err
			}
			list, err := loc.store.List(loc.rel)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintf(g.stdout, "no version of %s is kept\n", args[0])
				return nil
			}
			printVersions(g, list)
			return nil
		},
	}
	cmd.AddCommand(newVersionsRestoreCmd(g), newVersionsPruneCmd(g))
	return cmd
}

func newVersionsPruneCmd(g *globals) *cobra.Command {
	f := &syncFlags{}
	cmd := &cobra.Command{
		Use:   "prune DIR",
		Short: "Apply the retention of old versions now",
		Long: `Prune applies the retention policy to the versions this node kept for DIR, a
synced folder or a mount, at once (a running node does it every hour): give
the same --versions flags as to escalefs sync or mount (their defaults
otherwise).`,
		Example: "  escalefs versions prune ~/Sync --versions-max-age 168h",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%d arguments given: escalefs versions prune takes one DIR, a synced folder", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if err := f.checkVersions(); err != nil {
				return usage(err)
			}
			loc, err := locateVersions(args[0])
			if err != nil {
				return err
			}
			p := f.withCap(f.versionPolicy, loc.store.Dir())
			before, err := loc.store.Usage()
			if err != nil {
				return err
			}
			n, err := loc.store.Prune(p)
			if err != nil {
				return err
			}
			after, err := loc.store.Usage()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "dropped %s (%s); %s kept (%s)\n", plural(n, "old version"),
				units.FormatSize(before.Bytes-after.Bytes), plural(after.Versions, "version"), units.FormatSize(after.Bytes))
			return nil
		},
	}
	f.registerVersions(cmd.Flags())
	return cmd
}

// versionsAt is where a path's versions are: the node's store and the
// path's place in its folder.
type versionsAt struct {
	sf    syncedFile
	rel   string // "" for the whole folder
	store *versions.Store
}

func locateVersions(path string) (versionsAt, error) {
	root, err := stateRoot()
	if err != nil {
		return versionsAt{}, err
	}
	var sf syncedFile
	abs, err := filepath.Abs(path)
	if err != nil {
		return versionsAt{}, err
	}
	if states, err := folderStateDirs(root, resolvePath(abs)); err == nil && len(states) == 1 {
		sf = syncedFile{dir: resolvePath(abs), state: states[0]}
	} else if sf, err = locateSynced(root, path); err != nil {
		return versionsAt{}, err
	}
	store, err := versions.Open(filepath.Join(sf.state, "versions"), versions.Options{Shared: true})
	if errors.Is(err, os.ErrNotExist) {
		return versionsAt{}, fmt.Errorf("no version is kept for %s: the node (state %s) keeps none yet, or runs with --versions off", sf.dir, sf.state)
	}
	if err != nil {
		return versionsAt{}, err
	}
	return versionsAt{sf: sf, rel: sf.rel, store: store}, nil
}

// numbered returns the versions of each path numbered from its newest (1).
func numbered(list []versions.Version) map[string]int {
	n := make(map[string]int)
	count := make(map[string]int)
	for i := len(list) - 1; i >= 0; i-- { // list is oldest first
		v := list[i]
		count[v.Path]++
		n[v.ID] = count[v.Path]
	}
	return n
}

func printVersions(g *globals, list []versions.Version) {
	num := numbered(list)
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tN\tREPLACED\tSIZE\tWHY\tBY\tMODIFIED")
	for _, v := range list {
		by := v.Node
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.Path, num[v.ID], v.Time.Local().Format("2006-01-02 15:04:05"),
			units.FormatSize(v.Size), v.Reason, by, v.ModTime.Local().Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
}

func newVersionsRestoreCmd(g *globals) *cobra.Command {
	var version int
	var at, to string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "restore PATH",
		Short: "Put an old version of a file back",
		Long: `Restore puts back a version of PATH that this node kept (see escalefs
versions): the newest, the one numbered --version, or the one PATH had at
--at. Put back in place, it is an ordinary local change, which escalefs
sync or mount pushes to every node; what PATH holds now is kept as a
version first, so nothing is lost. A running node does it itself (at its
next round: escalefs versions restore waits for it); for a stopped one it
is done in its folder, and pushed when it starts. --to writes it
elsewhere instead.

PATH may be a directory (or the folder itself): every file under it that
no longer exists is put back (its newest version); with --at, the directory
is put back as it was at that time, files changed since included (what they
hold is kept as a version first).`,
		Example: "  escalefs versions restore ~/Sync/notes.txt\n" +
			"  escalefs versions restore ~/Sync/notes.txt --version 2 --to /tmp/notes.txt\n" +
			"  escalefs versions restore ~/Sync/photos --at \"2026-12-06 10:00\"",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%d arguments given: escalefs versions restore takes one PATH", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var when time.Time
			if at != "" {
				t, err := parseAt(at)
				if err != nil {
					return err
				}
				when = t
			}
			if version < 0 || version > 0 && at != "" {
				return fmt.Errorf("--version %d: expected 1 (the newest) or more, and not with --at", version)
			}
			if wait <= 0 {
				return fmt.Errorf("--wait %s: expected a positive duration, such as 30s", wait)
			}
			return runVersionRestore(cmd.Context(), g, args[0], version, when, to, wait)
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "the version to put back, 1 being the newest (default: the newest)")
	cmd.Flags().StringVar(&at, "at", "", `put back what the file held at this time, such as "2026-12-06 10:00" (local time) or RFC 3339`)
	cmd.Flags().StringVar(&to, "to", "", "write the version here instead of in place")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute,
		"how long to wait for a running node to carry the restore out (it stays queued after that)")
	return cmd
}

func parseAt(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`--at %q: expected a time such as "2026-12-06 10:00", "2026-12-06" or RFC 3339`, s)
}

// pick chooses among the versions of one path (oldest first): number n
// (1 the newest), or the content it had at when (the first version
// replaced after it), or the newest.
func pick(vs []versions.Version, n int, when time.Time) (versions.Version, bool) {
	switch {
	case n > 0:
		if n > len(vs) {
			return versions.Version{}, false
		}
		return vs[len(vs)-n], true
	case !when.IsZero():
		i := slices.IndexFunc(vs, func(v versions.Version) bool { return v.Time.After(when) })
		if i < 0 {
			return versions.Version{}, false
		}
		return vs[i], true
	}
	return vs[len(vs)-1], len(vs) > 0
}

// restoreItem is one version to put back, and where.
type restoreItem struct {
	v    versions.Version
	dest string // absolute; in the folder (in place) or under --to
}

// planRestore chooses what restoring path puts back: its version (a
// file), or those of the files under it (a directory): the ones gone, or
// with when every one as it was then. dir is where the folder's files are.
func planRestore(loc versionsAt, path, dir string, n int, when time.Time, to string) ([]restoreItem, int, error) {
	list, err := loc.store.List(loc.rel)
	if err != nil {
		return nil, 0, err
	}
	byPath := make(map[string][]versions.Version)
	for _, v := range list {
		byPath[v.Path] = append(byPath[v.Path], v)
	}
	if vs, ok := byPath[loc.rel]; ok && loc.rel != "" {
		// One file.
		v, ok := pick(vs, n, when)
		if !ok {
			return nil, 0, fmt.Errorf("%s has %d versions kept, none that matches", path, len(vs))
		}
		dest := to
		if dest == "" {
			dest = filepath.Join(dir, filepath.FromSlash(v.Path))
		}
		return []restoreItem{{v, dest}}, 0, nil
	}
	if len(byPath) == 0 {
		return nil, 0, fmt.Errorf("no version of %s is kept", path)
	}
	// A directory: the files under it that are gone, or all as they were
	// at a time.
	var items []restoreItem
	skipped := 0
	for _, p := range slices.Sorted(maps.Keys(byPath)) {
		v, ok := pick(byPath[p], n, when)
		if !ok {
			continue
		}
		dest := filepath.Join(dir, filepath.FromSlash(p))
		if to != "" {
			rel := strings.TrimPrefix(strings.TrimPrefix(p, loc.rel), "/")
			dest = filepath.Join(to, filepath.FromSlash(rel))
		}
		if _, err := os.Lstat(dest); err == nil && (when.IsZero() || to != "") {
			skipped++ // there already: left alone
			continue
		}
		items = append(items, restoreItem{v, dest})
	}
	return items, skipped, nil
}

func runVersionRestore(ctx context.Context, g *globals, path string, n int, when time.Time, to string, wait time.Duration) error {
	loc, err := locateVersions(path)
	if err != nil {
		return err
	}
	if to != "" {
		items, skipped, err := planRestore(loc, path, loc.sf.dir, n, when, to)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := writeVersion(loc.store, it.v, it.dest); err != nil {
				return err
			}
		}
		reportRestore(g, path, items, skipped)
		return nil
	}
	// In place: a running node does it (its control requests); for a
	// stopped one, its cache is held meanwhile, so that it cannot start.
	dbPath := filepath.Join(loc.sf.state, "cache.db")
	store, err := cache.Open(dbPath, cache.Options{Logger: g.logger(), Timeout: accessCacheTimeout})
	switch {
	case errors.Is(err, cache.ErrInUse):
		items, skipped, perr := planRestore(loc, path, loc.sf.dir, n, when, "")
		if perr != nil {
			return perr
		}
		return requestRestore(ctx, g, loc.sf, path, items, skipped, wait, cacheHolder(err))
	case err != nil:
		return engineFailed(err, loc.sf.state)
	}
	defer store.Close()
	dir := loc.sf.dir
	if fi, err := os.Stat(filepath.Join(loc.sf.state, "files")); err == nil && fi.IsDir() {
		dir = filepath.Join(loc.sf.state, "files") // a mount's files, while it is stopped
	}
	items, skipped, err := planRestore(loc, path, dir, n, when, "")
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := keepCurrent(loc.store, it.dest, it.v.Path); err != nil {
			return err
		}
		if err := writeVersion(loc.store, it.v, it.dest); err != nil {
			return err
		}
	}
	reportRestore(g, path, items, skipped)
	return nil
}

// reportRestore tells what a restore put back.
func reportRestore(g *globals, path string, items []restoreItem, skipped int) {
	if len(items) == 1 && skipped == 0 {
		v := items[0].v
		fmt.Fprintf(g.stdout, "restored %s as it was before %s (%s) to %s\n", v.Path,
			v.Time.Local().Format("2006-01-02 15:04:05"), v.Reason, items[0].dest)
		return
	}
	fmt.Fprintf(g.stdout, "restored %s under %s (%s there already left alone)\n", plural(len(items), "file"), path, plural(skipped, "file"))
}

// requestRestore hands the restore to the running node through a request
// in its control directory, and waits for its outcome.
func requestRestore(ctx context.Context, g *globals, sf syncedFile, path string, items []restoreItem, skipped int, wait time.Duration, pid string) error {
	var req escsync.RestoreRequest
	for _, it := range items {
		req.Items = append(req.Items, escsync.RestoreItem{Path: it.v.Path, Version: it.v.ID})
	}
	if len(req.Items) == 0 {
		reportRestore(g, path, nil, skipped)
		return nil
	}
	file, err := writeControlRequest(sf.state, escsync.RestoreRequestsDir, req)
	if err != nil {
		return fmt.Errorf("handing the restore to the running node (%s): %w", pid, err)
	}
	queued := fmt.Sprintf("the restore of %s is queued: the running node (%s) carries it out at its next round", plural(len(items), "file"), pid)
	if taken, err := waitTaken(ctx, file, wait); err != nil {
		return fmt.Errorf("interrupted; %s", queued)
	} else if !taken {
		fmt.Fprintln(g.stdout, queued)
		return nil
	}
	done := strings.TrimSuffix(file, ".json") + escsync.RestoreDoneSuffix
	b, err := os.ReadFile(done)
	if err != nil {
		return fmt.Errorf("the running node (%s) took the restore but left no outcome (%w): see its log", pid, err)
	}
	_ = os.Remove(done)
	var res escsync.RestoreResult
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", done, err)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("the running node (%s) restored %s; %s failed:\n  %s", pid, plural(res.Restored, "file"),
			plural(len(res.Errors), "file"), strings.Join(res.Errors, "\n  "))
	}
	reportRestore(g, path, items, skipped)
	return nil
}

// keepCurrent keeps what dest holds now, if anything, as a local version
// of rel before a restore replaces it.
func keepCurrent(s *versions.Store, dest, rel string) error {
	fi, err := os.Lstat(dest)
	if errors.Is(err, os.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.Keep(dest, rel, versions.Local, ""); err != nil {
		return fmt.Errorf("keeping what %s holds now before the restore: %w", dest, err)
	}
	return nil
}

// writeVersion writes v's content, mode and time to dest, through a
// temporary file renamed over it.
func writeVersion(s *versions.Store, v versions.Version, dest string) error {
	src, err := s.Open(v)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	// A temporary name of the folder's own (localdir.TempPrefix): the
	// node's scans skip it, and clear it after a crash.
	tmp, err := os.CreateTemp(filepath.Dir(dest), localdir.TempPrefix+"restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return fmt.Errorf("restoring %s: %w", v.Path, err)
	}
	if err := tmp.Chmod(v.Mode.Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), time.Time{}, v.ModTime); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
