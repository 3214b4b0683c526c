package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/migrate"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
)

// migrateFlags are the options of escalefs migrate: those of sync for the
// repository and its current relay, and the new relay's.
type migrateFlags struct {
	sync syncFlags
	to   string
	// The new relay's options; each not given is the current relay's.
	toPasswordFile    string
	toNetrcFile       string
	toCredentialsFile string
	toCAFile          string
	toPinSHA256       string
	toCertFile        string
	toKeyFile         string
	toVerifySSL       bool
	toS3Endpoint      string
	toS3Region        string
	toSSHKey          string
	toKnownHosts      string
	toHostKeySHA256   string
}

func newMigrateCmd(g *globals) *cobra.Command {
	f := &migrateFlags{}
	cmd := &cobra.Command{
		Use:   "migrate --relay URL --to NEW-URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [flags] DIR",
		Short: "Move a repository to another relay; the other nodes follow",
		Long: `Migrate moves the repository that DIR is synced with from its relay (--relay,
or the relay key of its table in the configuration file) to the relay at
NEW-URL (--to), which must be empty or hold an interrupted migrate of the
same repository.

It first pushes this node's queued changes to the current relay, then copies
every object of the repository (escale.json, nodes/, blobs/) to the new
relay, checking each copy; objects already there with the same size are
skipped, so an interrupted migrate resumes where it stopped. Only then does
it leave on the old relay a marker, sealed with the repository's keys, that
names the new relay (without any password). Every other node sees it at its
next poll: it copies there what it published since, and goes on syncing
through the new relay if it can open it with its own relay options;
otherwise it stops with an error that says what to change. A node stopped
during the move does the same at its next start.

This node's configuration table, if it runs from one, gets the new relay
key; otherwise, give --relay NEW-URL from now on. The new relay is opened
with the current relay's options (password file, TLS…) unless the --to-…
flags give others. A destination that cannot be reached or written changes
nothing. Stop escalefs sync for DIR on this machine first.`,
		Example: "  escalefs migrate --relay ftp://me@old.example.org/sync --key-file ~/.config/escalefs/key \\\n" +
			"      --to webdavs://me@dav.example.org/sync --to-password-file ~/.config/escalefs/davpw ~/Sync\n" +
			"  escalefs migrate --repo work --to file:///mnt/nas/escalefs",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("missing DIR: give the folder whose repository is to move, e.g. escalefs migrate --relay URL --to NEW-URL --key-file FILE ~/Sync")
			case 1:
				return nil
			}
			return fmt.Errorf("%d folders given (%s): escalefs migrate takes exactly one DIR", len(args), strings.Join(args, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd.Context(), g, f, cmd, args[0])
		},
	}
	f.sync.register(cmd)
	f.sync.registerConfig(cmd, g)
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "URL of the relay to move the repository to (see escalefs relay check --help)")
	fl.StringVar(&f.toPasswordFile, "to-password-file", "", "file holding the new relay's password (default: as the current relay's)")
	fl.StringVar(&f.toNetrcFile, "to-netrc", "", "netrc file to read the new relay's password from")
	fl.StringVar(&f.toCredentialsFile, "to-credentials", "", "Google Drive credentials, or an AWS credentials file, of the new relay")
	fl.StringVar(&f.toCAFile, "to-ca-file", "", "PEM file of certificates to trust for the new relay")
	fl.StringVar(&f.toPinSHA256, "to-pin-sha256", "", "trust exactly the new relay's certificate with this SHA-256 fingerprint")
	fl.StringVar(&f.toCertFile, "to-certificate", "", "PEM client certificate for the new relay")
	fl.StringVar(&f.toKeyFile, "to-certificate-key", "", "PEM key of the new relay's client certificate")
	fl.BoolVar(&f.toVerifySSL, "to-verify-ssl", true, "verify the new relay's TLS certificate")
	fl.StringVar(&f.toS3Endpoint, "to-s3-endpoint", "", "S3 service `URL` of the new relay, for stores other than Amazon's")
	fl.StringVar(&f.toS3Region, "to-s3-region", "", "S3 region of the new relay")
	fl.StringVar(&f.toSSHKey, "to-ssh-key", "", "SSH private key file for the new sftp relay")
	fl.StringVar(&f.toKnownHosts, "to-known-hosts", "", "known_hosts file for the new sftp relay's host key")
	fl.StringVar(&f.toHostKeySHA256, "to-host-key-sha256", "", "trust exactly this SSH host key (SHA256:…) on the new sftp relay")
	if err := cmd.MarkFlagRequired("to"); err != nil {
		panic(err)
	}
	return cmd
}

// toOptions are the new relay's options: the current relay's, with the
// --to-… flags given, and those flags as the configuration keys they set
// (each key is the flag's name without "to-").
func (f *migrateFlags) toOptions(cmd *cobra.Command, g *globals) (relay.Options, map[string]string) {
	opts := f.sync.rf.options(g)
	fl := cmd.Flags()
	keys := map[string]string{}
	for name, set := range map[string]func() string{
		"to-password-file": func() string {
			opts.PasswordFile, opts.Password = f.toPasswordFile, ""
			return quotedPath(f.toPasswordFile)
		},
		"to-netrc":       func() string { opts.NetrcFile = f.toNetrcFile; return quotedPath(f.toNetrcFile) },
		"to-credentials": func() string { opts.CredentialsFile = f.toCredentialsFile; return quotedPath(f.toCredentialsFile) },
		"to-ca-file":     func() string { opts.TLS.CAFile = f.toCAFile; return quotedPath(f.toCAFile) },
		"to-pin-sha256":  func() string { opts.TLS.PinSHA256 = f.toPinSHA256; return strconv.Quote(f.toPinSHA256) },
		"to-certificate": func() string { opts.TLS.CertFile = f.toCertFile; return quotedPath(f.toCertFile) },
		"to-certificate-key": func() string {
			opts.TLS.KeyFile = f.toKeyFile
			return quotedPath(f.toKeyFile)
		},
		"to-verify-ssl": func() string {
			opts.TLS.InsecureSkipVerify = !f.toVerifySSL
			return strconv.FormatBool(f.toVerifySSL)
		},
		"to-s3-endpoint": func() string { opts.S3Endpoint = f.toS3Endpoint; return strconv.Quote(f.toS3Endpoint) },
		"to-s3-region":   func() string { opts.S3Region = f.toS3Region; return strconv.Quote(f.toS3Region) },
		"to-ssh-key":     func() string { opts.SSH.KeyFile = f.toSSHKey; return quotedPath(f.toSSHKey) },
		"to-known-hosts": func() string { opts.SSH.KnownHostsFile = f.toKnownHosts; return quotedPath(f.toKnownHosts) },
		"to-host-key-sha256": func() string {
			opts.SSH.HostKeySHA256 = f.toHostKeySHA256
			return strconv.Quote(f.toHostKeySHA256)
		},
	} {
		if fl.Changed(name) {
			keys[strings.TrimPrefix(name, "to-")] = set()
		}
	}
	return opts, keys
}

// quotedPath is a file name as a TOML string, absolute.
func quotedPath(p string) string { return strconv.Quote(resolvePath(expandHome(p))) }

// movedOptions are the options of the new relay at u that its moved marker
// carries (escsync.MovedOptionKeys): what the other nodes cannot know from
// the URL. An S3 store's endpoint and region, and an SSH server's pinned
// host key; an absent one means the default (Amazon S3, known_hosts).
func movedOptions(u *url.URL, opts relay.Options) map[string]string {
	o := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			o[k] = v
		}
	}
	switch u.Scheme {
	case "s3":
		set("s3-endpoint", cmp.Or(opts.S3Endpoint, os.Getenv("AWS_ENDPOINT_URL")))
		set("s3-region", cmp.Or(opts.S3Region, os.Getenv("AWS_REGION")))
	case "sftp":
		set("host-key-sha256", opts.SSH.HostKeySHA256)
	}
	if len(o) == 0 {
		return nil
	}
	return o
}

// markerURL checks the new relay's URL and returns it as the marker names
// it: with a user name, never a password.
func markerURL(to string) (string, error) {
	u, err := relay.ParseURL(to)
	if err != nil {
		return "", fmt.Errorf("--to: %w", err)
	}
	if _, ok := u.User.Password(); ok {
		return "", fmt.Errorf("--to %s: the URL holds a password, which every node would read from the old relay's marker: "+
			"give it with --to-password-file instead", u.Redacted())
	}
	if u.Scheme == "file" {
		if u.Path, err = filepath.Abs(u.Path); err != nil {
			return "", err
		}
		u = &url.URL{Scheme: "file", Path: u.Path}
	}
	s := u.String()
	if err := escsync.CheckMovedURL(s); err != nil {
		return "", fmt.Errorf("--to %s: %w", u.Redacted(), err)
	}
	return s, nil
}

func runMigrate(ctx context.Context, g *globals, f *migrateFlags, cmd *cobra.Command, dirArg string) error {
	sf := &f.sync
	sf.noFollow = true // this command acts on the relay given, marker or not
	if err := sf.check(); err != nil {
		return err
	}
	dir, err := syncDir(dirArg)
	if err != nil {
		return err
	}
	newURL, err := markerURL(f.to)
	if err != nil {
		return err
	}
	if u, err := relay.ParseURL(newURL); err == nil && u.Scheme == "file" {
		if rd := resolvePath(u.Path); within(rd, dir) || within(dir, rd) {
			return fmt.Errorf("the new relay directory %s and the folder %s overlap: keep them apart", rd, dir)
		}
	}
	n, err := openNode(ctx, g, sf, dir, func(string) (string, error) { return dir, nil }, mountHooks{})
	if err != nil {
		return err
	}
	defer n.close()
	log := n.log

	toOpts, toKeys := f.toOptions(cmd, g)
	dst, err := all.Open(ctx, newURL, toOpts)
	if err != nil {
		return fmt.Errorf("opening the new relay: %w; nothing was changed", err)
	}
	defer dst.Close()
	dloc := dst.Properties().Location
	if dloc == n.loc {
		return fmt.Errorf("--to %s is the relay the repository is on already; nothing was changed", dloc)
	}
	// Fail before anything else when the new relay is unusable.
	if _, err := migrate.CheckDest(ctx, dst, n.repo.Raw); err != nil {
		return fmt.Errorf("migrating to %s: %w; nothing was changed", dloc, err)
	}

	// This node's queue goes to the old relay first, while it is the
	// repository's; what cannot be pushed stays queued for the new one.
	if res, err := n.eng.Round(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, escsync.ErrMoved) {
		log.Warn("pushing this node's queue to the old relay failed; it stays queued and is pushed to the new relay at the next sync",
			"err", err)
	} else if err == nil {
		log.Info("pushed this node's queue to the old relay", "pushed", res.Pushed, "pulled", res.Pulled)
	}

	log.Info("migrating the repository", "repository", n.repo.ID.String(), "from", n.loc, "to", dloc)
	nu, err := relay.ParseURL(newURL)
	if err != nil {
		return err
	}
	m := escsync.Moved{URL: newURL, Time: time.Now(), Node: n.eng.Node(), Options: movedOptions(nu, toOpts)}
	res, err := migrate.Move(ctx, n.relay, dst, n.repo, m, migrate.Options{Logger: log, TempDir: n.state})
	if err != nil {
		if !res.Marker {
			return fmt.Errorf("migrating to %s: %w; the old relay is unchanged and the nodes keep using it: run escalefs migrate again "+
				"to resume the copy", dloc, err)
		}
		return fmt.Errorf("migrating to %s: %w; the nodes now follow the move: run escalefs migrate again to copy the rest", dloc, err)
	}
	if err := writeMovedState(n.state, movedState{From: n.loc, To: newURL, Marker: hex.EncodeToString(res.Hash[:]), Time: time.Now()}); err != nil {
		log.Warn("recording the move in the node's state", "err", err)
	}
	fmt.Fprintf(g.stderr, "moved repository %s from %s to %s: %d objects copied (%d bytes), %d already there\n",
		n.repo.ID, n.loc, dloc, res.Copied, res.Bytes, res.Skipped)
	if res.Vanished > 0 {
		fmt.Fprintf(g.stderr, "%d objects were deleted by running nodes while they were copied (collected, no longer needed)\n", res.Vanished)
	}
	toKeys["relay"] = strconv.Quote(newURL)
	done, err := updateConfigRelay(g, cmd, sf, dirArg, toKeys)
	switch {
	case err != nil:
		fmt.Fprintf(g.stderr, "could not update the configuration file (%v): set %s in this repository's table yourself\n",
			err, tomlLines(toKeys))
	case done != "":
		fmt.Fprintf(g.stderr, "%s\n", done)
	default:
		fmt.Fprintf(g.stderr, "from now on, sync this folder with --relay %s%s\n", newURL, flagsOf(toKeys))
	}
	fmt.Fprintf(g.stderr, "the other nodes follow at their next poll of %s, which keeps its objects: delete them once every node has moved\n", n.loc)
	return nil
}

// sortedKeys are the keys of a table update, relay first.
func sortedKeys(keys map[string]string) []string {
	names := slices.Sorted(maps.Keys(keys))
	if i := slices.Index(names, "relay"); i > 0 {
		names = append([]string{"relay"}, slices.Delete(names, i, i+1)...)
	}
	return names
}

// tomlLines writes a table update as key = value, … for a message.
func tomlLines(keys map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(keys) {
		parts = append(parts, k+" = "+keys[k])
	}
	return strings.Join(parts, ", ")
}

// flagsOf writes a table update, but its relay, as the flags that give it.
func flagsOf(keys map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(keys) {
		if k == "relay" {
			continue
		}
		v := keys[k]
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		fmt.Fprintf(&b, " --%s %s", k, v)
	}
	return b.String()
}

// updateConfigRelay sets keys (TOML values by key: the relay and the
// options of the new relay) in the repository's table when this node runs
// from a configuration table that sets its relay, and tells what it did;
// "" when there is no such table.
func updateConfigRelay(g *globals, cmd *cobra.Command, sf *syncFlags, dirArg string, keys map[string]string) (string, error) {
	cfg := g.config.cfg
	if cfg == nil {
		return "", nil
	}
	r, err := pickRepo(cfg, cmd, sf.cf.repoName, []string{dirArg})
	if err != nil || r == nil {
		return "", err
	}
	if _, ok := r.Lines["relay"]; !ok {
		return "", nil
	}
	if err := r.SetKeys(keys, "relay"); err != nil {
		return "", err
	}
	return fmt.Sprintf("updated %s:%d: [%s] %s", cfg.Path, r.Lines["relay"], r.Name, tomlLines(keys)), nil
}
