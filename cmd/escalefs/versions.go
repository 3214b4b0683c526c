package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/pflag"

	escfs "github.com/escalefs/escalefs/fs"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

// versionsDefaultCap is the version store's default cap: a share of the
// disk that holds it.
const versionsDefaultCap = 10 // percent

// Defaults of the version store's flags, which their zero values also mean.
const defaultVersionsKeep = 10

// registerVersions registers the version store's flags.
func (f *syncFlags) registerVersions(fl *pflag.FlagSet) {
	fl.StringVar(&f.versions, "versions", string(versions.Staggered),
		"keep what pulls replace or delete in the node's state: staggered (all for an hour, then one per hour for a day, "+
			"one per day, one per week up to --versions-max-age), simple (the --versions-keep newest) or off")
	fl.IntVar(&f.versionsKeep, "versions-keep", defaultVersionsKeep, "with --versions simple, how many versions of each file to keep")
	fl.DurationVar(&f.versionsMaxAge, "versions-max-age", versions.DefaultMaxAge, "drop versions older than this")
	fl.StringVar(&f.versionsMaxSize, "versions-max-size", "",
		"cap the version store, oldest first: a size such as 5GiB, or a percentage of the disk such as 10% (default: 10%; 0: no cap)")
}

// checkVersions validates the version store's flags.
func (f *syncFlags) checkVersions() error {
	kind := versions.Staggered
	if f.versions != "" {
		k, err := versions.ParseKind(f.versions)
		if err != nil {
			return fmt.Errorf("--%v", err)
		}
		kind = k
	}
	keep, maxAge := f.versionsKeep, f.versionsMaxAge
	if keep < 0 {
		return fmt.Errorf("--versions-keep %d: expected 1 or more versions of each file", keep)
	} else if keep == 0 {
		keep = defaultVersionsKeep
	}
	if maxAge < 0 {
		return fmt.Errorf("--versions-max-age %s: expected a positive duration, such as 720h (30 days)", maxAge)
	} else if maxAge == 0 {
		maxAge = versions.DefaultMaxAge
	}
	var err error
	if f.versionsCap, err = units.ParseMinFree(f.versionsMaxSize); err != nil {
		return fmt.Errorf("--versions-max-size %q: %v; %s", f.versionsMaxSize, err, units.MinFreeForm)
	}
	f.versionPolicy = versions.Policy{Kind: kind, Keep: keep, MaxAge: maxAge}
	return nil
}

// openVersions opens the node's version store in its state directory,
// with the policy the flags give (the cap computed on its disk); nil when
// versions are off.
func (f *syncFlags) openVersions(state string, log *slog.Logger) (*versions.Store, versions.Policy, error) {
	p := f.versionPolicy
	if p.Kind == versions.Off {
		return nil, p, nil
	}
	dir := filepath.Join(state, "versions")
	s, err := versions.Open(dir, versions.Options{Logger: log})
	if err != nil {
		return nil, p, err
	}
	return s, f.withCap(p, dir), nil
}

// withCap sets p's size cap from --versions-max-size, a percentage taken
// of the disk holding dir.
func (f *syncFlags) withCap(p versions.Policy, dir string) versions.Policy {
	var total int64
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil {
		total = int64(st.Blocks) * st.Bsize
	}
	n, ok := f.versionsCap.Of(total)
	if !ok {
		n = total * versionsDefaultCap / 100
	}
	p.MaxSize = n
	return p
}

// localKeeper keeps in the version store what changes through the mount
// replace (--versions-local): the files the folder syncs, not temporary or
// filtered ones.
type localKeeper struct {
	store *versions.Store
	skip  func(rel string, isDir bool) bool
	log   *slog.Logger
}

func (k localKeeper) Keep(rel string, f *os.File, how escfs.Replaced) {
	if localdir.IsTemp(rel) || k.skip != nil && k.skip(rel, false) {
		return
	}
	var err error
	switch how {
	case escfs.Overwritten:
		_, err = k.store.KeepCopy(f, rel, versions.Local, "")
	case escfs.RenamedOver:
		_, err = k.store.KeepInode(f, rel, versions.Local, "")
	case escfs.Unlinked:
		_, err = k.store.KeepInode(f, rel, versions.LocalDelete, "")
	}
	if err != nil {
		k.log.Warn("keeping what a change in the mount replaces", "path", rel, "err", err)
	}
}
