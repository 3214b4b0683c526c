package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/check"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/filter"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/versions"
)

// cacheOpenTimeout is how long sync waits for another process to release
// the node's cache before saying that one is already syncing the folder.
const cacheOpenTimeout = 2 * time.Second

// syncFlags are the options of escalefs sync.
type syncFlags struct {
	rf           relayFlags
	sf           secretFlags
	asked        askedSecrets // asked on the terminal (prompt.go)
	relayURL     string
	name         string
	noEncryption bool
	refresh      time.Duration
	pullers      int
	lockTimeout  time.Duration
	once         bool
	mode         string
	diskQuota    string
	minFree      string
	stopGrace    time.Duration
	chunks       bool
	// The version store (versions.go).
	versions        string
	versionsKeep    int
	versionsMaxAge  time.Duration
	versionsMaxSize string
	filter          filter.Options
	cf              configFlags // configflags.go
	// command is the command that runs the node, sync or mount, for its
	// status file.
	command string
	// maintainer is told when the node stops on an error (maintainer.go).
	maintainer string
	// noFollow keeps openNode on the relay given even when it holds a
	// moved marker (escalefs migrate, follow.go).
	noFollow bool

	// Parsed by check.
	parsedMode    proto.Mode
	parsedQuota   int64
	parsedMinFree units.MinFree
	versionPolicy versions.Policy
	versionsCap   units.MinFree
	compiled      *filter.Filter
}

func newSyncCmd(g *globals) *cobra.Command {
	f := &syncFlags{}
	cmd := &cobra.Command{
		Use:   "sync --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [flags] DIR",
		Short: "Keep a folder in step with the other nodes of a repository",
		Long: `Sync keeps the folder DIR in step with every other node that syncs the same
repository through the relay at URL. It runs in the foreground until it is
interrupted (Ctrl-C, SIGTERM), pushing local changes as they happen and
pulling the other nodes' changes on a timer that slows down to --refresh
when nothing happens. With --once it does a single round (scan, push, pull,
acknowledge, collect) and exits.

The first node to sync creates the repository on the relay (escale.json),
protected by the key file or passphrase given; the others join it with the
same secret. A repository without a secret (whose files the relay can read
and alter) is made or joined only with --no-encryption.

DIR must exist. The node's state (its cache and temporary files) lives in
$XDG_STATE_HOME/escalefs (by default ~/.local/state/escalefs), in a directory
named after the repository ID and DIR. Only one escalefs process syncs a
folder at a time.

--mode chooses what the node does: shared (push and pull, the default),
upload (push only), download (pull only) or conservative (push, and let a
pulled version replace only a file that came from another node and was
never changed here). --include, --exclude, --extension, --include-dir and
--exclude-dir choose the files synced; editors' and systems' temporary files
are never synced unless --no-default-ignores is given. escalefs access sets
the access modifiers of single files.

Every file pushed or pulled is logged on standard error; -v adds every relay
call.`,
		Example: "  escalefs key generate -o ~/.config/escalefs/key\n" +
			"  escalefs sync --relay ftps://me@ftp.example.org/sync --key-file ~/.config/escalefs/key ~/Sync\n" +
			"  escalefs sync --once --relay file:///mnt/share/relay --passphrase-file ~/.config/escalefs/passphrase ~/Sync",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("missing DIR: give the folder to keep in step, e.g. escalefs sync --relay URL --key-file FILE ~/Sync")
			case 1:
				return nil
			}
			return fmt.Errorf("%d folders given (%s): escalefs sync keeps exactly one DIR in step", len(args), strings.Join(args, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSync(cmd.Context(), g, f, args[0])
		},
	}
	f.register(cmd)
	f.registerConfig(cmd, g)
	cmd.Flags().BoolVar(&f.once, "once", false, "do one round (scan, push, pull) and exit")
	return cmd
}

// register adds the repository and engine flags, which escalefs sync and
// escalefs mount share, to cmd.
func (f *syncFlags) register(cmd *cobra.Command) {
	f.command = cmd.Name()
	fl := cmd.Flags()
	fl.StringVar(&f.relayURL, "relay", "", "URL of the relay holding the repository (see escalefs relay check --help)")
	fl.StringVar(&f.name, "name", "", "this node's name, shown to the other nodes (default: the host name)")
	fl.BoolVar(&f.noEncryption, "no-encryption", false, "create or join a repository without a secret: the relay can read and alter everything")
	fl.DurationVar(&f.refresh, "refresh", escsync.DefaultRefresh, "how often an idle node looks for the other nodes' changes")
	fl.IntVar(&f.pullers, "pullers", 0, "how many nodes must have pulled a file before its data is deleted from the relay (0: every node)")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", escsync.DefaultLockTimeout, "how long a silent node holds back the deletion of data it has not pulled (negative: forever)")
	fl.StringVar(&f.mode, "mode", string(proto.ModeShared),
		"synchronization mode: shared (push and pull), upload (push only), download (pull only) or conservative "+
			"(push; pull only over files that came from other nodes untouched)")
	fl.StringVar(&f.diskQuota, "disk-quota", "0",
		"what the repository may hold on the relay, such as 500MB or 2GiB; pushes wait for the other nodes to pull when it is reached (0: no quota)")
	fl.StringVar(&f.minFree, "min-free", "",
		"the room a download must leave on the local disk: a size such as 1GiB, or a percentage such as 5% (default: "+
			"the smaller of 1GiB and 5%; 0: no check); a file that does not fit waits, and smaller ones go on")
	fl.DurationVar(&f.stopGrace, "stop-grace", escsync.DefaultStopGrace,
		"when stopped, how long to keep pushing the files changed but not yet pushed (0: stop at once); "+
			"what is left stays queued on disk and is pushed at the next start (escalefs status shows it)")
	f.registerVersions(fl)
	fl.StringArrayVar(&f.filter.Include, "include", nil,
		"sync only the files matching this glob or /regex/ (on the name; on the path from the folder when it has a slash); repeatable")
	fl.StringArrayVar(&f.filter.Exclude, "exclude", nil,
		"do not sync the files matching this glob or /regex/ (as --include); repeatable, wins over --include")
	fl.StringArrayVar(&f.filter.Extensions, "extension", nil, "sync only the files with this extension, such as txt or .jpg; repeatable")
	fl.StringArrayVar(&f.filter.IncludeDirs, "include-dir", nil,
		"sync only this directory (a path from the folder, components may be globs, or /regex/) and the files directly in the folder; repeatable")
	fl.StringArrayVar(&f.filter.ExcludeDirs, "exclude-dir", nil,
		"do not sync the directories with this name (a glob, any depth), this path (with a slash) or matching /regex/; repeatable")
	fl.BoolVar(&f.chunks, "chunks", true,
		"push files of 1 MiB and more as content-defined chunks, so that an edit, a copy or a rename moves only what changed; "+
			"--chunks=false while nodes of an escalefs older than 0.11 still sync (they cannot read chunks)")
	fl.BoolVar(&f.filter.NoDefaults, "no-default-ignores", false,
		"also sync editors' and systems' temporary files (swap, lock, backup, partial download files, .DS_Store, Thumbs.db…)")
	f.sf.register(fl)
	f.rf.register(fl)
	registerMaintainer(fl, &f.maintainer)
	if err := cmd.MarkFlagRequired("relay"); err != nil {
		panic(err)
	}
}

// syncLogger is the logger of sync: info by default, so that every file
// pushed or pulled shows, debug with -v. Other commands keep globals.logger.
func syncLogger(g *globals) *slog.Logger { return g.newLogger(slog.LevelInfo) }

// check validates the flags that need no file or relay.
func (f *syncFlags) check() error {
	if f.refresh <= 0 {
		return fmt.Errorf("--refresh %s: expected a positive duration, such as 10s or 1m", f.refresh)
	}
	if f.pullers < 0 {
		return fmt.Errorf("--pullers %d: expected 0 (every node) or a positive number of nodes", f.pullers)
	}
	if f.lockTimeout == 0 {
		return fmt.Errorf("--lock-timeout %s: expected a positive duration, such as 72h, or a negative one to wait forever", f.lockTimeout)
	}
	if f.stopGrace < 0 {
		return fmt.Errorf("--stop-grace %s: expected 0 (stop at once, leaving the queue for the next start) "+
			"or a positive duration, such as 5s or 1m", f.stopGrace)
	}
	mode, err := proto.ParseMode(f.mode)
	if err != nil {
		return fmt.Errorf("--mode %q: expected shared, upload (or push-only), download (or pull-only) or conservative", f.mode)
	}
	f.parsedMode = mode
	quota, err := units.ParseSize(f.diskQuota)
	if err != nil {
		return fmt.Errorf("--disk-quota %q: %v; %s", f.diskQuota, err, units.SizeForm)
	}
	f.parsedQuota = quota
	if f.parsedMinFree, err = units.ParseMinFree(f.minFree); err != nil {
		return fmt.Errorf("--min-free %q: %v; %s", f.minFree, err, units.MinFreeForm)
	}
	if err := f.checkVersions(); err != nil {
		return err
	}
	if err := checkFilterFlags(f.filter); err != nil {
		return err
	}
	if f.compiled, err = filter.Compile(f.filter); err != nil {
		return err
	}
	if f.name != "" {
		if why := checkNodeName(f.name); why != "" {
			return fmt.Errorf("--name %q: %s", f.name, why)
		}
	}
	return nil
}

// checkFilterFlags compiles every filter pattern alone, so that a malformed
// one is reported with the flag that gave it.
func checkFilterFlags(o filter.Options) error {
	for _, fl := range []struct {
		name string
		vals []string
		opts func(string) filter.Options
	}{
		{"--include", o.Include, func(p string) filter.Options { return filter.Options{Include: []string{p}} }},
		{"--exclude", o.Exclude, func(p string) filter.Options { return filter.Options{Exclude: []string{p}} }},
		{"--extension", o.Extensions, func(p string) filter.Options { return filter.Options{Extensions: []string{p}} }},
		{"--include-dir", o.IncludeDirs, func(p string) filter.Options { return filter.Options{IncludeDirs: []string{p}} }},
		{"--exclude-dir", o.ExcludeDirs, func(p string) filter.Options { return filter.Options{ExcludeDirs: []string{p}} }},
	} {
		for _, v := range fl.vals {
			opts := fl.opts(v)
			opts.NoDefaults = true
			if _, err := filter.Compile(opts); err != nil {
				return fmt.Errorf("%s %q: %w", fl.name, v, err)
			}
		}
	}
	return nil
}

// secret reads the repository secret, insisting that a repository without
// one is asked for explicitly.
func (f *syncFlags) secret() (crypto.Secret, error) {
	s, err := f.chooseSecret()
	return s, usage(err)
}

func (f *syncFlags) chooseSecret() (crypto.Secret, error) {
	given := f.sf.passphraseFile != "" || f.sf.keyFile != ""
	switch {
	case f.noEncryption && given:
		return crypto.Secret{}, errors.New("--no-encryption and a secret (--passphrase-file or --key-file) given: " +
			"give a secret to encrypt the repository, or --no-encryption alone for one without a secret")
	case f.noEncryption:
		return crypto.NoSecret(), nil
	case !given && f.asked.Passphrase != "":
		return crypto.Passphrase(f.asked.Passphrase), nil
	case !given:
		return crypto.Secret{}, errors.New("no secret given: exactly one of --passphrase-file FILE and --key-file FILE is required " +
			"(or the passphrase-file or key-file key in the configuration; create a key file with escalefs key generate), " +
			"or run on a terminal to be asked for the passphrase; for a repository without a secret, whose files the relay " +
			"can read and alter, give --no-encryption")
	}
	return f.sf.read()
}

// runName is the name a node runs under: the one given (--name, or
// the table's), else the one it last ran under, else the host name. A
// node's name changes only when asked.
func runName(given string, store *cache.Store) (string, error) {
	if given != "" {
		return given, nil
	}
	if stored, err := escsync.StoredName(store); err != nil || stored != "" {
		return stored, err
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("the host has no name (%v): give this node one with --name NODE", err)
	}
	if why := checkNodeName(host); why != "" {
		return "", fmt.Errorf("the host name %q cannot name this node (%s): give it one with --name NODE", host, why)
	}
	return host, nil
}

// checkNodeName reports why name cannot be sealed in the node's records, or
// "" if it can.
func checkNodeName(name string) string {
	switch {
	case name == "":
		return "expected a non-empty name"
	case len(name) > proto.MaxNodeNameLen:
		return fmt.Sprintf("longer than %d bytes", proto.MaxNodeNameLen)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return fmt.Sprintf("contains the control character %#02x", c)
		}
	}
	return ""
}

// syncDir checks that dir is an existing directory and returns its absolute
// path, symbolic links resolved.
func syncDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("folder %s does not exist: create it first (mkdir -p %s), then run escalefs sync again", dir, dir)
	case err != nil:
		return "", fmt.Errorf("folder %s: %w", dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory: escalefs sync keeps a folder in step; give an existing directory, "+
			"or create one (mkdir -p DIR)", dir)
	}
	return resolvePath(dir), nil
}

// resolvePath returns p absolute and with the symbolic links of its longest
// existing prefix resolved.
func resolvePath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	rest := ""
	for {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(resolved, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// stateRoot is where nodes keep their state: $XDG_STATE_HOME/escalefs, or
// ~/.local/state/escalefs.
func stateRoot() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "escalefs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no place for the node's state: set $XDG_STATE_HOME or $HOME (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "escalefs"), nil
}

// nodeStateDir is the state directory of the node that syncs dir (absolute,
// symbolic links resolved) with repository id:
// <root>/<repository ID>-<folder key>.
func nodeStateDir(root string, id crypto.RepoID, dir string) string {
	return filepath.Join(root, id.String()+"-"+folderKey(dir))
}

// folderKey is the part of a state directory's name that stands for the
// synced folder dir: the first 4 bytes of its path's SHA-256, in hex.
func folderKey(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(h[:4])
}

// folderStateDirs lists the state directories under root of the nodes that
// sync dir (absolute, symbolic links resolved), whatever their repository:
// usually none or one.
func folderStateDirs(root, dir string) ([]string, error) {
	// Read rather than globbed: root may hold glob characters.
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	suffix := "-" + folderKey(dir)
	var dirs []string
	for _, d := range ents {
		if !strings.HasSuffix(d.Name(), suffix) || len(d.Name()) == len(suffix) {
			continue
		}
		if p := filepath.Join(root, d.Name()); isDir(p) {
			dirs = append(dirs, p)
		}
	}
	return dirs, nil
}

// joinedCheck refuses, before any key is derived, a relay whose
// escale.json is not the repository that dir was synced with (its state
// directories prior): another repository, which a relay that swapped the
// file or the wrong relay would hold, or the same repository with another
// escale.json than the one the node kept (other key derivation parameters,
// which a hostile relay could make costly).
func joinedCheck(dir string, prior []string) func(*crypto.Config, []byte) error {
	return func(cfg *crypto.Config, raw []byte) error {
		id := cfg.Repository.String()
		var ids []string
		mine := ""
		for _, d := range prior {
			rid := strings.TrimSuffix(filepath.Base(d), "-"+folderKey(dir))
			ids = append(ids, rid)
			if rid == id {
				mine = d
			}
		}
		if mine == "" {
			return fmt.Errorf("the relay holds repository %s, but %s was synced with repository %s (state: %s): refused, "+
				"before deriving any key: %w. If the relay's repository is the one meant, move the state directory away "+
				"(for a mount, its files/ holds the folder's files) and start again to join it as a new node",
				id, dir, strings.Join(ids, ", "), strings.Join(prior, ", "), escsync.ErrOtherRepository)
		}
		store, err := cache.Open(filepath.Join(mine, "cache.db"), cache.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return nil // in use or older: the engine's binding of the cache decides
		}
		defer store.Close()
		kept, err := escsync.KeptConfig(store)
		if err != nil || bytes.Equal(kept, raw) {
			return nil
		}
		return fmt.Errorf("the relay's %s of repository %s is not the one this node joined (its keys or key derivation "+
			"changed): refused before deriving any key: %w", crypto.ConfigName, id, escsync.ErrRepoChanged)
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// cacheHolder names the process that holds a cache open, from the
// cache.ErrInUse error of cache.Open: "pid N", or "pid unknown".
func cacheHolder(err error) string {
	var e *cache.InUseError
	if errors.As(err, &e) {
		return e.Holder()
	}
	return "pid unknown"
}

func runSync(ctx context.Context, g *globals, f *syncFlags, dirArg string) error {
	if err := f.check(); err != nil {
		return usage(err)
	}
	if err := f.gatherSecrets(g); err != nil {
		return err
	}
	dir, err := syncDir(dirArg)
	if err != nil {
		return usage(err)
	}
	joined := false
	for hop := 0; ; hop++ {
		err := runSyncOn(ctx, g, f, dir)
		switch {
		case errors.Is(err, errCreatedTwice) && !joined:
			// Another node made the repository at the same moment, and
			// the relay kept its escale.json: open it again, which
			// joins that one.
			joined = true
			continue
		case !errors.Is(err, escsync.ErrMoved) || hop >= maxMoveHops:
			return err
		}
		// The repository moved while the node ran: open it again, which
		// follows the marker (follow.go).
	}
}

// runSyncOn runs the node once; a move of the repository is returned as
// an error wrapping escsync.ErrMoved, for runSync to follow.
func runSyncOn(ctx context.Context, g *globals, f *syncFlags, dir string) error {
	n, err := openNode(ctx, g, f, dir, func(string) (string, error) { return dir, nil }, mountHooks{})
	if err != nil {
		return err
	}
	defer n.close()
	log, eng, state := n.log, n.eng, n.state
	n.logStart("syncing", "dir", dir)

	if f.once {
		if c, err := n.local.CleanTemp(ctx); err != nil {
			log.Warn("removing temporary files", "err", err)
		} else if c > 0 {
			log.Info("removed temporary files of an interrupted run", "count", c)
		}
		res, err := eng.Round(ctx)
		if n.createdTwice(ctx, err) {
			return errCreatedTwice
		}
		if err != nil {
			n.stopErr = err
			if ctx.Err() != nil {
				return fmt.Errorf("sync of %s interrupted", dir)
			}
			if errors.Is(err, escsync.ErrMoved) {
				return err
			}
			if errors.Is(err, escsync.ErrRepoChanged) || errors.Is(err, cache.ErrCorrupt) {
				return n.stopped(dir, engineFailed(err, state))
			}
			return n.relayFailed(fmt.Errorf("sync round failed: %w", err))
		}
		logStats(log, "round done", eng.Stats(), "scanned", res.Scanned, "pushed", res.Pushed,
			"pulled", res.Pulled, "applied", res.Applied)
		return n.leftUnpushed(dir)
	}
	if err := eng.Run(ctx); err != nil {
		if errors.Is(err, escsync.ErrMoved) && ctx.Err() == nil {
			return err
		}
		if n.createdTwice(ctx, err) {
			return errCreatedTwice
		}
		return n.stopped(dir, engineFailed(err, state))
	}
	logStats(log, "stopped", eng.Stats())
	return nil
}

// node is what escalefs sync and escalefs mount set up alike: the relay,
// the repository, the node's state and cache, its folder and the engine.
type node struct {
	g     *globals
	f     *syncFlags
	log   *slog.Logger
	loc   string // the relay's location
	name  string // the node's name
	state string // the node's state directory
	relay relay.Relay
	repo  *escsync.Repository
	local *localdir.Dir
	eng   *escsync.Engine
	// versions is the node's version store; nil with --versions off.
	versions *versions.Store
	closer   []func()
	// stopErr is the error the node stops on, for its status file, when
	// the engine does not know it.
	stopErr error
}

// openNode opens the relay and the repository for the folder or mountpoint
// dir (absolute, symbolic links resolved), which keys the node's state
// directory, and sets up the engine over the folder that folder returns
// for that state directory (dir itself for sync), with the mount's hooks
// (none for sync). The flags must have been checked.
func openNode(ctx context.Context, g *globals, f *syncFlags, dir string, folder func(state string) (string, error),
	hooks mountHooks) (_ *node, err error) {
	secret, err := f.secret()
	if err != nil {
		return nil, err
	}
	root, err := stateRoot()
	if err != nil {
		return nil, err
	}
	if err := checkPlaces(root, dir, f.relayURL); err != nil {
		return nil, err
	}
	n := &node{g: g, f: f, log: syncLogger(g)}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	opts := f.rf.options(g)
	opts.Logger = n.log
	r, repo, store, err := n.joinRepository(ctx, root, dir, secret, opts)
	if err != nil {
		return nil, err
	}
	offline := store != nil
	n.closer = append(n.closer, func() {
		if r != nil {
			r.Close()
		}
	})
	n.loc = r.Properties().Location
	if repo.Created {
		n.log.Info("created a new repository at "+n.loc, "repository", repo.ID.String(),
			"encryption", string(repo.Config.Encryption), "secret", secretName(repo.Config.Secret))
	}
	if repo.Keys == nil {
		n.log.Warn("the repository has no secret: the relay can read and alter every file in it", "relay", n.loc)
	}
	n.state = nodeStateDir(root, repo.ID, dir)
	if store, err = n.openCache(dir, store); err != nil {
		return nil, err
	}
	if n.name, err = runName(f.name, store); err != nil {
		return nil, err
	}
	if !f.noFollow && !offline {
		// The relay's closer closes r, whichever relay it is by then.
		if r, repo, err = n.followMoves(ctx, r, repo, secret, store, n.state, opts); err != nil {
			return nil, err
		}
	}
	n.relay, n.repo = r, repo
	folderDir, err := folder(n.state)
	if err != nil {
		return nil, err
	}
	if err := n.startEngine(dir, folderDir, store, hooks); err != nil {
		return nil, err
	}
	return n, nil
}

// checkPlaces refuses a folder that holds the state directories (root),
// or that overlaps a file relay.
func checkPlaces(root, dir, relayURL string) error {
	if within(resolvePath(root), dir) {
		return fmt.Errorf("the state directory %s is inside the folder %s, which would sync the node's own cache: "+
			"sync another folder, or set $XDG_STATE_HOME to a directory outside it", root, dir)
	}
	if u, err := relay.ParseURL(relayURL); err == nil && u.Scheme == "file" {
		if rd := resolvePath(u.Path); within(rd, dir) || within(dir, rd) {
			return fmt.Errorf("the relay directory %s and the folder %s overlap: escalefs would sync its own relay; "+
				"keep them apart", rd, dir)
		}
	}
	return nil
}

// joinRepository opens the relay and its repository for the folder dir:
// one synced before joins its repository only (a relay without one is
// more likely an unmounted share or an emptied account than a fresh
// start, and a new repository there would take the folder away from its
// other nodes). store is the node's cache when the relay could not be
// reached (the node starts offline).
func (n *node) joinRepository(ctx context.Context, root, dir string, secret crypto.Secret, opts relay.Options) (
	relay.Relay, *escsync.Repository, *cache.Store, error) {
	prior, err := folderStateDirs(root, dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the state directories: %w", err)
	}
	ropts := escsync.RepoOptions{Create: len(prior) == 0}
	if n.f.noEncryption {
		ropts.Encryption = crypto.EncryptionOff
	}
	if len(prior) > 0 {
		ropts.Check = joinedCheck(dir, prior)
	}
	r, repo, store, err := n.openRepo(ctx, secret, opts, ropts, prior)
	switch {
	case errors.Is(err, crypto.ErrWrongSecret), errors.Is(err, crypto.ErrConfigCorrupt):
		return nil, nil, nil, err
	case errors.Is(err, escsync.ErrNoRepository) && len(prior) > 0:
		return nil, nil, nil, fmt.Errorf("the relay %s holds no repository, but %s was synced through one before (its state: %s): "+
			"the relay may be unmounted, emptied or not the one meant; check --relay. To start a new repository for "+
			"this folder anyway, move that state directory away first (for a mount, its files/ holds the folder's files)",
			redactedURL(n.f.relayURL), dir, prior[0])
	case errors.Is(err, cache.ErrInUse):
		return nil, nil, nil, fmt.Errorf("another escalefs process is syncing %s (%s): stop it first, or let it run", dir, cacheHolder(err))
	case errors.Is(err, escsync.ErrOtherRepository), errors.Is(err, escsync.ErrRepoChanged):
		return nil, nil, nil, err
	case err != nil:
		return nil, nil, nil, n.relayFailed(err)
	}
	return r, repo, store, nil
}

// openCache makes the node's state directory and opens its cache there
// (unless store is open already), closed with the node.
func (n *node) openCache(dir string, store *cache.Store) (*cache.Store, error) {
	if err := os.MkdirAll(n.state, 0o700); err != nil {
		return nil, fmt.Errorf("creating the node's state directory: %w", err)
	}
	var err error
	if store == nil {
		store, err = cache.Open(filepath.Join(n.state, "cache.db"), cache.Options{Logger: n.log, Timeout: cacheOpenTimeout})
	}
	switch {
	case errors.Is(err, cache.ErrInUse):
		return nil, fmt.Errorf("another escalefs process is syncing %s (%s): stop it first, or let it run", dir, cacheHolder(err))
	case err != nil:
		return nil, n.stopped(dir, engineFailed(err, n.state))
	}
	n.closer = append(n.closer, func() {
		if err := store.Close(); err != nil {
			n.log.Warn("closing the cache", "err", err)
		}
	})
	return store, nil
}

// startEngine makes the node's engine over the folder's files
// (folderDir), its version store and its status publisher.
func (n *node) startEngine(dir, folderDir string, store *cache.Store, hooks mountHooks) error {
	f, log, state := n.f, n.log, n.state
	flt := f.compiled
	local, err := localdir.New(folderDir, localdir.Options{Logger: log, Skip: flt.Skip, Hold: filepath.Join(state, "held"),
		HoldCopy: f.versionPolicy.Kind != versions.Off})
	if err != nil {
		return err
	}
	n.local = local
	stopGrace := f.stopGrace
	if stopGrace == 0 {
		stopGrace = -1 // none
	}
	pub := newStatusPublisher(state, log)
	vstore, vpolicy, err := f.openVersions(state, log)
	if err != nil {
		return err
	}
	n.versions = vstore
	eng, err := escsync.New(escsync.Config{
		Relay:         n.relay,
		Repo:          n.repo,
		Cache:         store,
		Local:         local,
		Mode:          f.parsedMode,
		Name:          n.name,
		Scratch:       filepath.Join(state, "scratch"),
		Control:       state,
		Skip:          flt.Skip,
		Refresh:       f.refresh,
		DiskQuota:     f.parsedQuota,
		MinFree:       f.parsedMinFree,
		Pullers:       f.pullers,
		LockTimeout:   f.lockTimeout,
		OnChange:      hooks.onChange,
		InUse:         hooks.inUse,
		Reported:      hooks.reported,
		StopGrace:     stopGrace,
		Chunks:        f.chunks,
		OnStatus:      pub.notify,
		Versions:      vstore,
		VersionPolicy: vpolicy,
		Logger:        log,
	})
	if err != nil {
		return n.stopped(dir, engineFailed(err, state))
	}
	n.eng = eng
	base := statusFile{Command: f.command, Once: f.once, Folder: dir, Relay: n.loc, Node: n.name,
		NodeID: eng.Node().String(), Mode: string(f.parsedMode)}
	if folderDir != dir {
		base.Files = folderDir
	}
	pub.start(eng, base)
	n.closer = append(n.closer, func() { pub.stop(n.stopErr) })
	return nil
}

// leftUnpushed tells, after sync --once, what the round left that it
// could not push: files that can never be pushed, and the queue that
// waits (for room on the relay, or for a file to stop changing). Either
// gives exitUnsynced, so that a script knows its folder is not on the relay.
func (n *node) leftUnpushed(dir string) error {
	st, err := n.eng.Status()
	if err != nil {
		return err
	}
	for _, u := range st.Unpushable {
		fmt.Fprintf(n.g.stderr, "escalefs: %s (%s) is not pushed: %s\n", u.Path, units.FormatSize(u.Size), u.Reason)
	}
	if st.Queue.Empty() && len(st.Unpushable) == 0 {
		return nil
	}
	if !st.Queue.Empty() {
		fmt.Fprintf(n.g.stderr, "escalefs: sync --once of %s left %s; the next run pushes it when it can (escalefs status shows it)\n",
			dir, queueString(st.Queue))
	}
	return &exitError{code: exitUnsynced}
}

// close releases what openNode opened, last first.
func (n *node) close() {
	for i := len(n.closer) - 1; i >= 0; i-- {
		n.closer[i]()
	}
	n.closer = nil
}

// relayFailed reports an error of the relay with its likely cause.
func (n *node) relayFailed(err error) error {
	fmt.Fprintf(n.g.stderr, "escalefs: %v\n", err)
	if cause := check.Diagnose(err); cause != "" {
		fmt.Fprintf(n.g.stderr, "likely cause: %s\n", cause)
	}
	return printed(err)
}

// logStart logs msg with what the node does: where (first, as attrs), with
// which relay, as which node.
func (n *node) logStart(msg string, attrs ...any) {
	attrs = append(attrs, "relay", n.loc, "node", n.name, "id", n.eng.Node().String(), "state", n.state,
		"mode", string(n.f.parsedMode))
	if n.f.parsedQuota > 0 {
		attrs = append(attrs, "disk_quota", n.f.parsedQuota)
	}
	if s := n.f.compiled.String(); s != "no filter" {
		attrs = append(attrs, "filter", s)
	}
	n.log.Info(msg, attrs...)
}

// engineFailed adds what to do to an error that retrying cannot fix.
func engineFailed(err error, state string) error {
	switch {
	case errors.Is(err, escsync.ErrMoved):
		return fmt.Errorf("%w; start this node again to follow it, or give it --relay with the new relay", err)
	case errors.Is(err, escsync.ErrRepoChanged):
		return fmt.Errorf("%w; if the repository on the relay was replaced on purpose, remove the state directory %s "+
			"to join it afresh", err, state)
	case errors.Is(err, cache.ErrCorrupt):
		return fmt.Errorf("%w; remove the state directory %s and sync again to rebuild it", err, state)
	}
	return err
}

func logStats(log *slog.Logger, msg string, s escsync.Stats, args ...any) {
	args = append(args, "files_pushed", s.FilesPushed, "bytes_pushed", s.BytesPushed,
		"files_pulled", s.FilesPulled, "bytes_pulled", s.BytesPulled, "bytes_hashed", s.BytesHashed, "conflicts", s.Conflicts)
	log.Info(msg, args...)
}
