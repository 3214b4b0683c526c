package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escalefs/escalefs/config"
	"github.com/escalefs/escalefs/relay"
)

// configSource is the configuration file of a run: --config FILE, or the
// default one if it exists. Its values are the defaults of the flags not
// given on the command line.
type configSource struct {
	path   string // --config
	loaded bool
	cfg    *config.Config // nil: no file
}

// configAnnotation, set to configWritten on a command, says that the
// command writes the configuration file (escalefs init), which a --config
// FILE may therefore name before it exists.
const (
	configAnnotation = "escalefs/config"
	configWritten    = "written"
)

// register adds --config to root, and applies the file's [global] table
// to the global flags before any command runs.
func (c *configSource) register(root *cobra.Command) {
	root.PersistentFlags().StringVar(&c.path, "config", "",
		"configuration `FILE` (default $XDG_CONFIG_HOME/escalefs/config.toml, if it exists); flags override its values")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Annotations[configAnnotation] == configWritten {
			// escalefs init writes the file: it need not exist yet.
			if _, err := os.Stat(c.path); c.path != "" && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
		}
		cfg, err := c.load()
		if err != nil || cfg == nil {
			return usage(err)
		}
		return usage(applyGlobal(cmd, cfg))
	}
}

// load reads the configuration file once. A missing default file is no
// error: escalefs then runs on flags alone.
func (c *configSource) load() (*config.Config, error) {
	if c.loaded {
		return c.cfg, nil
	}
	path, given := c.path, c.path != ""
	if !given {
		p, err := config.DefaultPath()
		if err != nil {
			return nil, nil
		}
		path = p
	}
	cfg, err := config.Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !given:
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("--config %s: the file does not exist", path)
	case err != nil:
		return nil, err
	}
	c.cfg, c.loaded = cfg, true
	return cfg, nil
}

// applyGlobal sets the global flags that the command line did not set
// from the [global] table.
func applyGlobal(cmd *cobra.Command, cfg *config.Config) error {
	g := cfg.Global
	vals := map[string]string{}
	if _, ok := g.Set["log-file"]; ok {
		vals["log-file"] = g.LogFile
	}
	if _, ok := g.Set["log-max-size"]; ok {
		vals["log-max-size"] = strconv.FormatInt(g.LogMaxSize, 10)
	}
	if _, ok := g.Set["log-max-backups"]; ok {
		vals["log-max-backups"] = strconv.Itoa(g.LogMaxBackups)
	}
	if _, ok := g.Set["log-level"]; ok {
		vals["log-level"] = g.LogLevel
	}
	for name, v := range vals {
		fl := cmd.Flag(name)
		if fl == nil || fl.Changed {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			return fmt.Errorf("%s:%d: [global] %s: %v", cfg.Path, g.Set[name], name, err)
		}
	}
	return nil
}

// configKeysWithoutFlag are the keys of a repository's table that set no
// flag of the same name: applyRepo handles them.
var configKeysWithoutFlag = []string{"path", "mountpoint", "password", "encryption"}

// mountOnlyKeys are the keys whose flag only escalefs mount has: escalefs
// sync ignores them.
var mountOnlyKeys = []string{"versions-local"}

// configFlags are the flags of sync and mount that choose the
// repository's table and those of its keys that no other flag has.
type configFlags struct {
	repoName string // --repo
	username string // --username
	checksum string // --checksum
	// folder is the table's path (sync) or mountpoint (mount), used when
	// the command line gives none.
	folder string
}

// folderKeyOf is the key of a repository's table that gives the command's
// argument: path for sync, mountpoint for mount.
func folderKeyOf(cmd *cobra.Command) string {
	if cmd.Name() == "mount" {
		return "mountpoint"
	}
	return "path"
}

// registerConfig adds --repo, --username and --checksum to cmd (sync or
// mount), and has it take its defaults from the repository's table before
// the flags are checked; without DIR or MOUNTPOINT, the table's path or
// mountpoint is used.
func (f *syncFlags) registerConfig(cmd *cobra.Command, g *globals) {
	fl := cmd.Flags()
	fl.StringVar(&f.cf.repoName, "repo", "",
		"the repository's table in the configuration file (default: its only one, or the one whose "+folderKeyOf(cmd)+" is the argument)")
	fl.StringVar(&f.cf.username, "username", "", "user name on the relay, when the relay URL names none")
	fl.StringVar(&f.cf.checksum, "checksum", "sha256", "checksum algorithm of the file contents: sha256, the only one")

	args, run := cmd.Args, cmd.RunE
	cmd.Args = func(c *cobra.Command, a []string) error {
		if len(a) == 0 {
			return nil // from the configuration file, or the error below
		}
		return args(c, a)
	}
	cmd.PreRunE = func(c *cobra.Command, a []string) error {
		if err := f.applyConfig(c, g, a); err != nil {
			return usage(err)
		}
		if len(a) == 0 && f.cf.folder == "" {
			return usage(args(c, a))
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, a []string) error {
		if len(a) == 0 {
			a = []string{f.cf.folder}
		}
		return run(c, a)
	}
}

// applyConfig sets the flags that the command line did not set from the
// repository's table, and checks --username and --checksum.
func (f *syncFlags) applyConfig(cmd *cobra.Command, g *globals, args []string) error {
	cfg, err := g.config.load()
	if err != nil {
		return err
	}
	r, err := pickRepo(cfg, cmd, f.cf.repoName, args)
	if err != nil {
		return err
	}
	if r != nil {
		if err := f.applyRepo(cmd, cfg, r); err != nil {
			return err
		}
	}
	if f.cf.checksum != "sha256" {
		return fmt.Errorf("--checksum %q: expected sha256, the only checksum algorithm escalefs uses", f.cf.checksum)
	}
	if f.cf.username != "" && f.relayURL != "" {
		u, err := relay.ParseURL(f.relayURL)
		if err != nil {
			return err
		}
		switch {
		case u.Scheme == "file":
		case u.User == nil:
			u.User = url.User(f.cf.username)
			f.relayURL = u.String()
		case u.User.Username() != f.cf.username:
			return fmt.Errorf("the relay URL %s names the user %q, but the user name given is %q: give one of them",
				u.Redacted(), u.User.Username(), f.cf.username)
		}
	}
	return nil
}

// pickRepo chooses the repository's table: --repo NAME, else the only
// table, else the table whose folder is the argument; nil when there is
// none to choose.
func pickRepo(cfg *config.Config, cmd *cobra.Command, name string, args []string) (*config.Repo, error) {
	key := folderKeyOf(cmd)
	switch {
	case name != "" && cfg == nil:
		return nil, fmt.Errorf("--repo %s: there is no configuration file (give one with --config FILE)", name)
	case name != "":
		r, ok := cfg.Repo(name)
		if !ok {
			return nil, fmt.Errorf("--repo %s: %s has no table [%s]; its repositories: %s", name, cfg.Path, name, names(cfg))
		}
		return r, nil
	case cfg == nil || len(cfg.Repos) == 0:
		return nil, nil
	case len(cfg.Repos) == 1:
		return cfg.Repos[0], nil
	case len(args) == 0:
		return nil, fmt.Errorf("%s has %d repositories (%s): choose one with --repo NAME", cfg.Path, len(cfg.Repos), names(cfg))
	}
	arg := resolvePath(args[0])
	for _, r := range cfg.Repos {
		if p, ok := r.String(key); ok && resolvePath(p) == arg {
			return r, nil
		}
	}
	return nil, nil
}

func names(cfg *config.Config) string {
	return strings.Join(cfg.Names(), ", ")
}

// applyRepo sets every flag that the command line did not set from the
// table r of cfg.
func (f *syncFlags) applyRepo(cmd *cobra.Command, cfg *config.Config, r *config.Repo) error {
	return applyTable(cmd, cfg, r, &f.rf, func(key, v string) {
		if key == folderKeyOf(cmd) {
			f.cf.folder = v
		}
	})
}

// applyTable sets every flag of cmd that the command line did not set from
// the table r of cfg: the keys are the flags' names. The password key
// fills rf, encryption = false sets --no-encryption, the name defaults to
// the table's, and folder, if not nil, is given the path and mountpoint
// keys. A command that takes --relay must get it from one or the other.
func applyTable(cmd *cobra.Command, cfg *config.Config, r *config.Repo, rf *relayFlags, folder func(key, v string)) error {
	if err := r.CheckFiles(); err != nil {
		return err
	}
	fl := cmd.Flags()
	set := func(name string, vals ...string) error {
		flag := fl.Lookup(name)
		if flag == nil || flag.Changed {
			return nil
		}
		for _, v := range vals {
			if err := fl.Set(name, v); err != nil {
				return fmt.Errorf("%s:%d: [%s] %s: %v", cfg.Path, r.Lines[name], r.Name, name, err)
			}
		}
		return nil
	}
	for name, v := range r.Values {
		var s []string
		switch v := v.(type) {
		case string:
			s = []string{v}
		case int:
			s = []string{strconv.Itoa(v)}
		case int64:
			s = []string{strconv.FormatInt(v, 10)}
		case bool:
			s = []string{strconv.FormatBool(v)}
		case time.Duration:
			s = []string{v.String()}
		case []string:
			s = v
		}
		switch name {
		case "path", "mountpoint":
			if folder != nil {
				folder(name, v.(string))
			}
		case "password":
			if !fl.Changed("password-file") {
				rf.password = v.(string)
			}
		case "encryption":
			if !v.(bool) {
				if err := set("no-encryption", "true"); err != nil {
					return err
				}
			}
		default:
			if err := set(name, s...); err != nil {
				return err
			}
		}
	}
	if _, ok := r.Values["name"]; !ok {
		if err := set("name", r.Name); err != nil {
			return err
		}
	}
	if fl.Lookup("relay") != nil && !fl.Changed("relay") {
		return fmt.Errorf("no relay for the repository [%s] of %s: add relay = \"URL\" to its table, or give --relay URL",
			r.Name, cfg.Path)
	}
	return nil
}

// repoFlag gives a command that talks to a repository, but keeps no
// folder, the --repo flag: the table it names (or the configuration's
// only table, or the one whose path or mountpoint is the command's
// folder argument, if it has one) fills the flags not given.
type repoFlag struct {
	name string
}

// register adds --repo to cmd, with the table applied before cmd runs.
// folderArg is the index of cmd's folder argument, or -1.
func (t *repoFlag) register(cmd *cobra.Command, g *globals, rf *relayFlags, folderArg int) {
	cmd.Flags().StringVar(&t.name, "repo", "",
		"the repository's table in the configuration file, whose relay, secret and options are used (default: its only one)")
	pre := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, a []string) error {
		if err := t.apply(c, g, rf, a, folderArg); err != nil {
			return usage(err)
		}
		if pre != nil {
			return pre(c, a)
		}
		return nil
	}
}

func (t *repoFlag) apply(cmd *cobra.Command, g *globals, rf *relayFlags, args []string, folderArg int) error {
	cfg, err := g.config.load()
	if err != nil {
		return err
	}
	var r *config.Repo
	switch {
	case t.name != "" && cfg == nil:
		return fmt.Errorf("--repo %s: there is no configuration file (give one with --config FILE)", t.name)
	case t.name != "":
		var ok bool
		if r, ok = cfg.Repo(t.name); !ok {
			return fmt.Errorf("--repo %s: %s has no table [%s]; its repositories: %s", t.name, cfg.Path, t.name, names(cfg))
		}
	case cfg == nil || len(cfg.Repos) == 0:
		return nil
	case folderArg >= 0 && folderArg < len(args):
		arg := resolvePath(args[folderArg])
		for _, c := range cfg.Repos {
			for _, key := range []string{"path", "mountpoint"} {
				if p, ok := c.String(key); ok && resolvePath(p) == arg {
					r = c
				}
			}
		}
	}
	if r == nil && t.name == "" && len(cfg.Repos) == 1 && !cmd.Flags().Changed("relay") {
		r = cfg.Repos[0]
	}
	if r == nil {
		return nil
	}
	return applyTable(cmd, cfg, r, rf, nil)
}

// flagNames lists the flags of fs, for tests.
func flagNames(fs *pflag.FlagSet) map[string]bool {
	out := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
	return out
}
