package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	escfs "github.com/escalefs/escalefs/fs"
	escsync "github.com/escalefs/escalefs/sync"
)

// unmountGrace bounds how long mount waits, when it stops, for the files
// still open in a busy mount to close before it exits anyway.
const unmountGrace = 10 * time.Second

// mountFlags are the options of escalefs mount: those of escalefs sync
// (but --once) and the mount's own.
type mountFlags struct {
	syncFlags
	foreground bool
	nonEmpty   bool
	debugFUSE  bool
	// versionsLocal keeps what writes through the mount replace.
	versionsLocal bool
	// options are the -o lists as given; fuse is what they ask of the
	// mount (mountopts.go).
	options []string
	fuse    escfs.Options
}

func newMountCmd(g *globals) *cobra.Command {
	f := &mountFlags{}
	cmd := &cobra.Command{
		Use:   "mount --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [flags] MOUNTPOINT",
		Short: "Mount the synchronized folder of a repository (FUSE)",
		Long: `Mount presents the folder that this node keeps in step with the other nodes
of the repository at URL as a FUSE filesystem on MOUNTPOINT, an existing
empty directory. It takes the same repository flags as escalefs sync.

The files live in the node's state directory ($XDG_STATE_HOME/escalefs, by
default ~/.local/state/escalefs, in a directory named after the repository
ID and MOUNTPOINT), under files/; reads and writes in the mount go straight
to them. A file closed after writing is pushed at once; files pulled from
the other nodes appear in the mount as they arrive.

Access modifiers (see escalefs access) show in the mode of a file: a w-
file has no write bits and cannot be opened for writing, an r- file has the
sticky bit (ls -l shows T). chmod a-w sets w-, chmod u+w sets w+, chmod +t
sets r- and chmod -t unsets it; the extended attribute user.escalefs.access
holds them too (getfattr, setfattr -v r-w+, setfattr -x).

Mount returns once the mount is ready, printing "mounted MOUNTPOINT (log:
FILE)", and keeps serving in the background, detached from the terminal,
logging to mount.log in the node's state directory (or to --log-file); its
process ID is in mount.pid there. If it fails before the mount is ready
(the relay, the key, the mountpoint), it prints why and exits with a
non-zero status, leaving no process behind; if the mount is not ready
within 60s, it stops the background process and says so. -f/--foreground
keeps it attached to the terminal, logging on standard error, until it
stops.

fusermount -u MOUNTPOINT stops it, and so do Ctrl-C (with -f) and SIGTERM:
it unmounts (lazily if a program still works in the mount), pushes what the
engine has queued, and exits.`,
		Example: "  mkdir -p ~/Sync\n" +
			"  escalefs mount --relay ftps://me@ftp.example.org/sync --key-file ~/.config/escalefs/key ~/Sync\n" +
			"  fusermount -u ~/Sync",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("missing MOUNTPOINT: give an empty directory to mount on, e.g. escalefs mount --relay URL --key-file FILE ~/Sync")
			case 1:
				return nil
			}
			return fmt.Errorf("%d mountpoints given (%s): escalefs mount mounts on exactly one MOUNTPOINT",
				len(args), strings.Join(args, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), g, f, args[0])
		},
	}
	f.register(cmd)
	f.registerConfig(cmd, g)
	// The -o options may name the configuration file (config=FILE) and
	// the repository's table (repo=NAME): they are read before either,
	// and then the root's hook reads the file.
	cmd.PersistentPreRunE = func(c *cobra.Command, a []string) error {
		if err := f.applyOptions(c); err != nil {
			return usage(err)
		}
		return c.Root().PersistentPreRunE(c, a)
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.options, "option", "o", nil,
		"mount options, comma-separated: allow_other, allow_root, default_permissions, ro, noatime, noexec, uid=N, gid=N, "+
			"umask=OCTAL, nonempty, and any flag of escalefs mount as NAME=VALUE (repo=NAME, config=FILE…); repeatable")
	fl.BoolVarP(&f.foreground, "foreground", "f", false, "stay attached to the terminal and log on standard error")
	fl.BoolVar(&f.nonEmpty, "nonempty", false, "mount over a directory that holds files, hiding them until unmounted")
	fl.BoolVar(&f.debugFUSE, "debug-fuse", false, "log every FUSE request on standard error")
	fl.BoolVar(&f.versionsLocal, "versions-local", false,
		"keep in the version store what writes, renames and deletes through the mount replace, "+
			"not only what pulls replace (a write keeps a copy of the file as it was)")
	return cmd
}

// mountHooks connect the engine to the mount: onChange invalidates the
// kernel's caches of what the engine changed, inUse tells it which files
// are open for writing, and reported that the mount reports every change
// made through it, so that the engine need not watch the folder
// (escsync.Config's OnChange, InUse and Reported).
type mountHooks struct {
	onChange func(path string)
	inUse    func(path string) bool
	reported bool
}

// engineEvents passes the changes made through the mount to the engine.
type engineEvents struct{ eng *escsync.Engine }

func (e engineEvents) Changed(rel string) { e.eng.Notify(rel) }

func runMount(ctx context.Context, g *globals, f *mountFlags, mountArg string) error {
	if err := f.check(); err != nil {
		return usage(err)
	}
	mnt := resolvePath(mountArg)
	if err := escfs.Check(mnt, f.nonEmpty); err != nil {
		if errors.Is(err, escfs.ErrFUSEUnavailable) {
			return err
		}
		return usage(err)
	}
	nt, err := takeNotifier(g)
	if err != nil {
		return err
	}
	if err := f.gatherSecrets(g); err != nil {
		return err
	}
	if nt == nil && !f.foreground {
		return mountBackground(ctx, g, mnt, f.asked)
	}
	// The server exists only once the engine does; the engine changes
	// nothing in the folder before Run, which starts after the mount.
	var srv atomic.Pointer[escfs.Server]
	hooks := mountHooks{
		onChange: func(p string) {
			if s := srv.Load(); s != nil {
				s.Invalidate(p)
			}
		},
		inUse: func(p string) bool {
			s := srv.Load()
			return s != nil && s.Writing(p)
		},
		reported: true,
	}
	var backing string
	n, err := openNode(ctx, g, &f.syncFlags, mnt, func(state string) (string, error) {
		backing = filepath.Join(state, "files")
		if err := os.MkdirAll(backing, 0o700); err != nil {
			return "", fmt.Errorf("creating the node's files directory: %w", err)
		}
		if nt != nil {
			if err := nt.openLog(state); err != nil {
				return "", err
			}
		}
		return backing, nil
	}, hooks)
	if err != nil {
		return err
	}
	defer n.close()
	s, err := mountFolder(ctx, f, n, mnt, backing)
	if err != nil {
		return err
	}
	srv.Store(s)
	if nt != nil {
		removePID, err := nt.ready(n.state)
		if err != nil {
			if serr := s.Stop(unmountGrace); serr != nil {
				n.log.Warn("unmounting", "err", serr)
			}
			return err
		}
		defer removePID()
	}
	n.logStart("mounted", "mountpoint", mnt, "dir", backing, "passthrough", s.Passthrough())
	return serveMount(ctx, n, s, mnt)
}

// mountFolder mounts the node's files (backing) on mnt.
func mountFolder(ctx context.Context, f *mountFlags, n *node, mnt, backing string) (*escfs.Server, error) {
	// The kernel applies the caller's umask to the modes of what it
	// creates before it asks the mount; the process's own must not apply
	// a second time (as libfuse's passthrough example does, umask 0).
	// Everything escalefs itself creates gives its mode explicitly.
	syscall.Umask(0)
	opts := f.fuse
	opts.Events, opts.Modifiers, opts.NonEmpty, opts.Debug = engineEvents{n.eng}, n.eng, f.nonEmpty, f.debugFUSE
	if n.versions != nil {
		opts.Versions = n.versions
		if f.versionsLocal {
			opts.LocalVersions = localKeeper{store: n.versions, skip: f.compiled.Skip, log: n.log}
		}
	}
	return escfs.Mount(ctx, mnt, backing, opts)
}

// serveMount runs the node's engine until the mount is unmounted, the
// engine stops or ctx ends, then unmounts and lets the engine drain its
// queue.
func serveMount(ctx context.Context, n *node, s *escfs.Server, mnt string) error {
	log := n.log
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	unmounted := make(chan struct{})
	go func() {
		s.Wait()
		close(unmounted)
	}()
	ran := make(chan error, 1)
	go func() { ran <- n.eng.Run(runCtx) }()

	var runErr error
	engineDone := false
	select {
	case <-ctx.Done():
		log.Info("stopping: unmounting", "mountpoint", mnt)
	case <-unmounted:
		log.Info("stopping: unmounted", "mountpoint", mnt)
	case runErr = <-ran:
		engineDone = true
	}
	select {
	case <-unmounted:
	default:
		if err := s.Stop(unmountGrace); err != nil {
			log.Warn("unmounting", "err", err)
		}
	}
	// The engine drains its queue once its context ends.
	cancel()
	if !engineDone {
		runErr = <-ran
	}
	if runErr != nil {
		return n.stopped(mnt, engineFailed(runErr, n.state))
	}
	logStats(log, "stopped", n.eng.Stats())
	return nil
}
