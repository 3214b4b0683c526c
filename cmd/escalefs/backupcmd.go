package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/backup"
	"github.com/escalefs/escalefs/relay/all"
)

// archiveFlags are the options of escalefs backup and restore.
type archiveFlags struct {
	rf       relayFlags
	relayURL string
	force    bool
	tempDir  string
	repo     repoFlag
}

func (f *archiveFlags) register(cmd *cobra.Command, g *globals) {
	fl := cmd.Flags()
	fl.StringVar(&f.relayURL, "relay", "", "URL of the relay holding the repository (see escalefs relay check --help)")
	f.rf.register(fl)
	if err := cmd.MarkFlagRequired("relay"); err != nil {
		panic(err)
	}
	f.repo.register(cmd, g, &f.rf, -1)
}

func newBackupCmd(g *globals) *cobra.Command {
	f := &archiveFlags{}
	cmd := &cobra.Command{
		Use:   "backup --relay URL [flags] ARCHIVE",
		Short: "Copy a repository's objects from its relay into a tar archive",
		Long: `Backup copies every object of the repository on the relay at URL
(escale.json and everything under nodes/ and blobs/) into the tar archive
ARCHIVE, byte for byte, followed by a manifest (escalefs-backup.json) with
the size and SHA-256 of each object, so that restore can check the archive.
ARCHIVE is compressed with gzip when it ends in .tar.gz or .tgz; "-" writes
a plain tar to standard output.

No secret is needed: the objects are the repository's encrypted records and
blobs and its public escale.json, so the archive is as safe to store as the
relay itself. Nodes may keep running; an object a node deletes while the
backup runs is left out with a note.`,
		Example: "  escalefs backup --relay file:///mnt/share/relay relay-backup.tar.gz\n" +
			"  escalefs backup --relay ftps://me@ftp.example.org/sync --password-file ~/.relaypw - | ssh host 'cat > sync.tar'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), g, f, args[0])
		},
	}
	f.register(cmd, g)
	return cmd
}

func runBackup(ctx context.Context, g *globals, f *archiveFlags, path string) error {
	r, err := all.Open(ctx, f.relayURL, f.rf.options(g))
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := backup.Create(path, g.stdout)
	if err != nil {
		return err
	}
	sum, err := backup.Write(ctx, r, out, backup.Options{Logger: syncLogger(g)})
	if err != nil {
		out.Abort()
		if errors.Is(err, backup.ErrNoRepository) {
			return fmt.Errorf("backup of %s: %w; check --relay", r.Properties().Location, err)
		}
		return fmt.Errorf("backup of %s: %w", r.Properties().Location, err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	where := path
	if path == "-" {
		where = "standard output"
	}
	fmt.Fprintf(g.stderr, "backed up repository %s: %d objects, %d bytes in %.1f s to %s\n",
		sum.Repository, sum.Objects, sum.Bytes, sum.Elapsed.Seconds(), where)
	if sum.Vanished > 0 {
		fmt.Fprintf(g.stderr, "%d objects were deleted by a running node while the backup ran and are not in it\n", sum.Vanished)
	}
	return nil
}

func newRestoreCmd(g *globals) *cobra.Command {
	f := &archiveFlags{}
	cmd := &cobra.Command{
		Use:   "restore --relay URL [--force] [flags] ARCHIVE",
		Short: "Copy the objects of a backup archive onto a relay",
		Long: `Restore puts the objects of the archive ARCHIVE, written by escalefs backup,
onto the relay at URL. It first reads the whole archive and checks it
against its manifest (every entry listed, sizes and SHA-256 equal, valid
names, escale.json present); a damaged archive changes nothing on the relay.
ARCHIVE may be gzip-compressed; "-" reads it from standard input, copied
first to a temporary file in --temp-dir.

The relay should be empty. A relay that holds another repository is always
refused. One that holds objects of the archive's repository is refused
unless --force is given: then the objects already present with the same
size are kept and only the others are put. Stop the nodes of the
repository while restoring.`,
		Example: "  escalefs restore --relay file:///mnt/share/new-relay relay-backup.tar.gz\n" +
			"  ssh host 'cat sync.tar' | escalefs restore --relay webdavs://me@dav.example.org/sync -",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, f, args[0], cmd.InOrStdin())
		},
	}
	f.register(cmd, g)
	cmd.Flags().BoolVar(&f.force, "force", false, "restore into a relay that already holds the same repository, putting only the objects it lacks")
	cmd.Flags().StringVar(&f.tempDir, "temp-dir", os.TempDir(), "where a piped or compressed archive is unpacked before it is checked")
	return cmd
}

func runRestore(ctx context.Context, g *globals, f *archiveFlags, path string, stdin io.Reader) error {
	log := syncLogger(g)
	a, err := backup.Open(path, stdin, f.tempDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer a.Close()
	idx, err := backup.Verify(ctx, a, a.Size)
	if err != nil {
		return fmt.Errorf("restore: %w; nothing was written to the relay", err)
	}
	log.Info("archive verified", "repository", idx.Manifest.Repository, "objects", len(idx.Entries), "bytes", idx.Bytes,
		"created", idx.Manifest.Created)
	r, err := all.Open(ctx, f.relayURL, f.rf.options(g))
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := backup.Restore(ctx, r, a, idx, backup.RestoreOptions{Options: backup.Options{Logger: log}, Force: f.force})
	if err != nil {
		if sum.Objects > 0 {
			return fmt.Errorf("restore to %s: %w (%d objects were put; run restore again with --force to finish)",
				r.Properties().Location, err, sum.Objects)
		}
		return fmt.Errorf("restore to %s: %w", r.Properties().Location, err)
	}
	fmt.Fprintf(g.stderr, "restored repository %s: %d objects, %d bytes in %.1f s to %s", sum.Repository,
		sum.Objects, sum.Bytes, sum.Elapsed.Seconds(), r.Properties().Location)
	if sum.Skipped > 0 {
		fmt.Fprintf(g.stderr, "; %d already present, skipped", sum.Skipped)
	}
	fmt.Fprintln(g.stderr)
	return nil
}
