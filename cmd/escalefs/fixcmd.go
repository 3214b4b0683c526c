package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/localdir"
)

// fixFlags are the options of escalefs fix.
type fixFlags struct {
	s     syncFlags // the repository flags: relay, secret, name
	repo  repoFlag
	apply bool
	quick bool
}

func newFixCmd(g *globals) *cobra.Command {
	f := &fixFlags{}
	cmd := &cobra.Command{
		Use:   "fix --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [--apply] DIR",
		Short: "Rebuild a lost or damaged relay from this node",
		Long: `Fix checks what the relay holds of the repository that the folder DIR is
synced with, and rebuilds, from this node's state, what the relay lost or
damaged of this node's:

  - escale.json, when the relay lost it (wiped, or replaced by an empty
    directory): written back byte for byte from this node's copy, so that
    the repository keeps its ID and key check and every node joins it again;
  - this node's log, when records, its snapshot or the content they name are
    gone or damaged: its whole state is republished as one snapshot, the
    content of every file it holds uploaded again where needed, under the
    node's own sequence numbers (nothing is renumbered);
  - damaged objects of this node (records that fail to open, blobs whose
    SHA-256 does not match): deleted once the snapshot replaces them.

Damaged objects of other nodes are listed with their node's name: run
escalefs fix on that node. Other nodes whose log the relay lost republish
it themselves at their next sync, and then push the changes they queued.

Without --apply, fix only prints its plan and changes nothing. Fix never
changes a file in any folder. It refuses to run while escalefs sync or mount
runs for DIR: stop it first.`,
		Example: "  escalefs fix --relay file:///mnt/share/relay --key-file ~/.config/escalefs/key ~/Sync\n" +
			"  escalefs fix --apply --relay file:///mnt/share/relay --key-file ~/.config/escalefs/key ~/Sync",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("expected one DIR, the folder synced (or the mountpoint), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFix(cmd.Context(), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.s.relayURL, "relay", "", "URL of the relay holding the repository (see escalefs relay check --help)")
	fl.StringVar(&f.s.name, "name", "", "this node's name, as given to escalefs sync (default: the name it last ran under)")
	fl.BoolVar(&f.s.noEncryption, "no-encryption", false, "the repository has no secret")
	fl.BoolVar(&f.apply, "apply", false, "carry the plan out (default: only print it)")
	fl.BoolVar(&f.quick, "quick", false, "do not read every blob to check its SHA-256, only its presence and size")
	f.s.sf.register(fl)
	f.s.rf.register(fl)
	if err := cmd.MarkFlagRequired("relay"); err != nil {
		panic(err)
	}
	f.repo.register(cmd, g, &f.s.rf, 0)
	return cmd
}

func runFix(ctx context.Context, g *globals, f *fixFlags, dirArg string) error {
	if f.s.name != "" {
		if why := checkNodeName(f.s.name); why != "" {
			return fmt.Errorf("--name %q: %s", f.s.name, why)
		}
	}
	dir, err := syncDir(dirArg)
	if err != nil {
		return err
	}
	secret, err := f.s.secret()
	if err != nil {
		return err
	}
	root, err := stateRoot()
	if err != nil {
		return err
	}
	log := syncLogger(g)
	opts := f.s.rf.options(g)
	opts.Logger = log
	r, err := all.Open(ctx, f.s.relayURL, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	loc := r.Properties().Location
	repo, state, err := fixState(ctx, r, secret, root, dir, loc)
	if err != nil {
		return err
	}
	store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{Logger: log, Timeout: cacheOpenTimeout})
	switch {
	case errors.Is(err, cache.ErrInUse):
		pid := cacheHolder(err)
		return fmt.Errorf("another escalefs process is syncing %s (%s): stop it first; fix runs alone", dir, pid)
	case err != nil:
		return engineFailed(err, state)
	}
	defer store.Close()
	if repo, err = fixRepository(store, secret, repo, loc, state, dir); err != nil {
		return err
	}
	folder := dir
	if files := filepath.Join(state, "files"); isDir(files) {
		folder = files // a mount's files
	}
	local, err := localdir.New(folder, localdir.Options{Logger: log})
	if err != nil {
		return err
	}
	name, err := runName(f.s.name, store)
	if err != nil {
		return err
	}
	eng, err := escsync.New(escsync.Config{Relay: r, Repo: repo, Cache: store, Local: local, Name: name,
		Scratch: filepath.Join(state, "scratch"), Control: state, StopGrace: -1, Logger: log})
	if err != nil {
		return engineFailed(err, state)
	}
	rep, err := eng.Fix(ctx, log, escsync.FixOptions{Apply: f.apply, Quick: f.quick})
	if rep != nil {
		printFix(g.stdout, loc, dir, name, rep, f.apply && err == nil)
	}
	if err != nil {
		return fmt.Errorf("fix: %w", err)
	}
	return nil
}

// fixState returns the repository on the relay (nil if it holds none) and
// the state directory of the folder dir's node: named after the
// repository, which the relay may no longer tell.
func fixState(ctx context.Context, r relay.Relay, secret crypto.Secret, root, dir, loc string) (*escsync.Repository, string, error) {
	repo, err := escsync.OpenRepository(ctx, r, secret, escsync.RepoOptions{})
	switch {
	case err == nil:
		state := nodeStateDir(root, repo.ID, dir)
		if !isDir(state) {
			return nil, "", fmt.Errorf("%s was never synced with the repository at %s from this machine (no state in %s): "+
				"run escalefs fix on a node that synced it", dir, loc, state)
		}
		return repo, state, nil
	case errors.Is(err, crypto.ErrWrongSecret), errors.Is(err, crypto.ErrConfigCorrupt):
		return nil, "", fmt.Errorf("unlocking the repository at %s: %w", loc, err)
	case !errors.Is(err, escsync.ErrNoRepository):
		return nil, "", fmt.Errorf("opening the repository at %s: %w", loc, err)
	}
	prior, err := folderStateDirs(root, dir)
	if err != nil {
		return nil, "", fmt.Errorf("reading the state directories: %w", err)
	}
	switch len(prior) {
	case 0:
		return nil, "", fmt.Errorf("the relay %s holds no repository and %s was never synced on this machine: nothing to rebuild it from; "+
			"run escalefs fix on a node that synced the folder", loc, dir)
	case 1:
		return nil, prior[0], nil
	}
	return nil, "", fmt.Errorf("the relay %s holds no repository and %s was synced with %d repositories (%s): "+
		"move the state directories of the others away first", loc, dir, len(prior), strings.Join(prior, ", "))
}

// fixRepository returns repo, or, when the relay holds none, the one the
// node's cache kept, after checking that the node joined it.
func fixRepository(store *cache.Store, secret crypto.Secret, repo *escsync.Repository, loc, state, dir string) (*escsync.Repository, error) {
	if repo == nil {
		var err error
		if repo, err = escsync.KeptRepository(store, secret); err != nil {
			if errors.Is(err, escsync.ErrNoKeptConfig) {
				return nil, fmt.Errorf("the relay %s holds no repository, and this node's state (%s) has no copy of %s: it last "+
					"ran with an older escalefs; run escalefs fix on another node that synced %s: %w", loc, state, crypto.ConfigName, dir, err)
			}
			return nil, fmt.Errorf("the repository kept in %s: %w", state, err)
		}
	}
	var joined bool
	if err := store.View(func(tx *cache.Tx) error {
		var err error
		_, joined, err = tx.Meta(cache.MetaNodeID)
		return err
	}); err != nil {
		return nil, err
	}
	if !joined {
		return nil, fmt.Errorf("%s was never synced with the repository %s (its state %s holds no node): nothing to rebuild from",
			dir, repo.ID, state)
	}
	return repo, nil
}

// printFix prints what fix found and did (done) or would do.
func printFix(w io.Writer, loc, dir, name string, rep *escsync.FixReport, done bool) {
	fmt.Fprintf(w, "relay:      %s\nrepository: %s\nfolder:     %s\nnode:       %s (%s)\n\n", loc, rep.Repository, dir, name, rep.Node)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(w, "missing from the relay: %d objects of this node", len(rep.Missing))
		for i, m := range rep.Missing {
			if i == 5 {
				fmt.Fprintf(w, "\n  …")
				break
			}
			fmt.Fprintf(w, "\n  %s", m)
		}
		fmt.Fprintln(w)
	}
	var own []escsync.Damage
	for _, d := range rep.Damaged {
		if d.Own {
			own = append(own, d)
		}
	}
	if len(own) > 0 {
		fmt.Fprintf(w, "damaged objects of this node: %d\n", len(own))
		for _, d := range own {
			fmt.Fprintf(w, "  %s: %s\n", d.Name, d.Reason)
		}
	}
	if others := rep.OthersDamaged(); len(others) > 0 {
		fmt.Fprintf(w, "damaged objects of other nodes: %d (run escalefs fix on that node)\n", len(others))
		for _, d := range others {
			who := d.NodeName
			if who == "" {
				who = "unknown name"
			}
			fmt.Fprintf(w, "  %s (node %q, %s): %s\n", d.Name, who, d.Node, d.Reason)
		}
	}
	if !rep.RestoreConfig && !rep.Republish && len(own) == 0 {
		fmt.Fprintln(w, "nothing to rebuild: the relay holds everything this node published")
		return
	}
	if done {
		fmt.Fprintln(w, "\nrebuilt:")
	} else {
		fmt.Fprintln(w, "\nplan (dry run: nothing was changed; run again with --apply to do it):")
	}
	step := func(planned, did string, a ...any) {
		if done {
			fmt.Fprintf(w, "  - "+did+"\n", a...)
		} else {
			fmt.Fprintf(w, "  - "+planned+"\n", a...)
		}
	}
	if rep.RestoreConfig {
		step("write %s back from this node's copy (repository %s)", "wrote %s back from this node's copy (repository %s)",
			crypto.ConfigName, rep.Repository)
	}
	if rep.Republish {
		step("republish this node's state as %s: %d files (%d uploaded again, %s), %d directories, %d symlinks, %d deletions",
			"republished this node's state as %s: %d files (%d uploaded again, %s), %d directories, %d symlinks, %d deletions",
			layout.SnapshotName(rep.Node, rep.UpTo), rep.Files, rep.UploadFiles, units.FormatSize(rep.UploadBytes),
			rep.Dirs, rep.Symlinks, rep.Tombstones)
		if rep.NoContent > 0 {
			step("%d files without content on this node: the other nodes ask for them", "%d files without content on this node: the other nodes ask for them",
				rep.NoContent)
		}
	}
	for _, d := range own {
		if d.Name == layout.SnapshotName(rep.Node, rep.UpTo) && rep.Republish {
			continue
		}
		step("delete the damaged %s", "deleted the damaged %s", d.Name)
	}
	if done {
		fmt.Fprintln(w, "\nthe other nodes catch up at their next sync; those whose own log the relay lost republish it then")
	}
}
