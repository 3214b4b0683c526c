package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/escalefs/escalefs/config"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/proto"
)

// licenseNotice is shown by escalefs init until it is accepted, as Escale
// did.
const licenseNotice = `escalefs is free software, governed by the CeCILL-C license
(https://cecill.info/licences/Licence_CeCILL-C_V1-en.html), like Escale.
You may use, modify and redistribute it under its terms. It comes with no
warranty: you use it at your own risk, and the authors are not liable for
data lost or disclosed through it.`

// licenseAcceptedFile records, in the configuration directory, that the
// notice was accepted.
const licenseAcceptedFile = "license-accepted"

// initFlags are the options of escalefs init; what is missing is asked for
// when standard input is a terminal.
type initFlags struct {
	rf             relayFlags
	relayURL       string
	repo           string
	name           string
	path           string
	mountpoint     string
	mode           string
	passphraseFile string
	keyFile        string
	noEncryption   bool
	join           bool
	acceptLicense  bool
	skipCheck      bool
	fromEscale     string
}

func newInitCmd(g *globals) *cobra.Command {
	f := &initFlags{}
	cmd := &cobra.Command{
		Use:   "init [flags]",
		Short: "Set up a repository on this machine and write its configuration",
		Long: `Init sets up this machine as a node of a repository and writes its table in
the configuration file ($XDG_CONFIG_HOME/escalefs/config.toml, or --config
FILE), with mode 0600. Run on a terminal, it asks for what its flags do not
give:

  1. the relay URL, and its password (hidden);
  2. it checks the relay, as escalefs relay check does;
  3. the repository's secret: a generated key file (the default) or a
     passphrase (hidden, asked twice), and shows how to bring it to the
     other nodes;
  4. the mode and the folder (or mountpoint);
  5. it writes the configuration.

Without a terminal, the flags must give the relay and the folder; without
--key-file, --passphrase-file or --no-encryption a key file is generated.
A relay without a repository gets one; --join instead requires an existing
repository and checks that the secret opens it.

On first use init shows the license notice (CeCILL-C) and asks to accept
it; --accept-license accepts it in scripts.`,
		Example: "  escalefs init\n" +
			"  escalefs init --accept-license --relay ftps://me@ftp.example.org/sync --name laptop \\\n" +
			"      --passphrase-file ~/.config/escalefs/work.passphrase --path ~/Work\n" +
			"  escalefs init --join --relay ftps://me@ftp.example.org/sync --key-file work.key --mountpoint ~/Work",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{configAnnotation: configWritten},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd.Context(), g, f, newPrompter(os.Stdin, g.stdout))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.relayURL, "relay", "", "URL of the relay (see escalefs relay check --help)")
	fl.StringVar(&f.repo, "repo", "", "name of the repository's table in the configuration (default: the node's name)")
	fl.StringVar(&f.name, "name", "", "this node's name (default: the host name)")
	fl.StringVar(&f.path, "path", "", "the folder to keep in step with escalefs sync")
	fl.StringVar(&f.mountpoint, "mountpoint", "", "the directory to mount the folder on with escalefs mount (instead of --path)")
	fl.StringVar(&f.mode, "mode", "", "shared (default), upload, download or conservative")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the repository passphrase (mode 0600)")
	fl.StringVar(&f.keyFile, "key-file", "", "repository key file (mode 0600); generated when none is given")
	fl.BoolVar(&f.noEncryption, "no-encryption", false, "a repository without a secret: the relay can read and alter everything")
	fl.BoolVar(&f.join, "join", false, "join an existing repository: fail if the relay has none")
	fl.BoolVar(&f.acceptLicense, "accept-license", false, "accept the CeCILL-C license notice without being asked")
	fl.BoolVar(&f.skipCheck, "no-check", false, "do not check the relay before writing the configuration")
	fl.StringVar(&f.fromEscale, "from-escale", "", "convert the Escale configuration `FILE` (escale.conf) into tables, reporting what cannot be carried over")
	f.rf.register(fl)
	return cmd
}

// prompter asks questions on a terminal.
type prompter struct {
	in  *bufio.Reader
	fd  int // of the input, for hidden input; -1 if not a terminal
	out io.Writer
}

func newPrompter(in *os.File, out io.Writer) *prompter {
	fd := -1
	if term.IsTerminal(int(in.Fd())) {
		fd = int(in.Fd())
	}
	return &prompter{in: bufio.NewReader(in), fd: fd, out: out}
}

func (p *prompter) interactive() bool { return p != nil && p.fd >= 0 }

// ask prints question (with the default in brackets) and returns the
// answer, or def for an empty one.
func (p *prompter) ask(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(p.out, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(p.out, "%s: ", question)
	}
	line, err := p.in.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", fmt.Errorf("reading the answer to %q: %w", question, err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return def, nil
	}
	return line, nil
}

// hidden asks for a secret without echoing it.
func (p *prompter) hidden(question string) (string, error) {
	// Echo goes off before the question shows, so that an answer typed
	// or pasted at once is never echoed.
	restore, err := noEcho(p.fd)
	if err != nil {
		return "", fmt.Errorf("reading the answer to %q: %w", question, err)
	}
	defer restore()
	fmt.Fprintf(p.out, "%s: ", question)
	b, err := term.ReadPassword(p.fd)
	fmt.Fprintln(p.out)
	if err != nil {
		return "", fmt.Errorf("reading the answer to %q: %w", question, err)
	}
	return string(b), nil
}

// noEcho turns the terminal fd's echo off, and returns what turns it on
// again.
func noEcho(fd int) (restore func(), err error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	old := *t
	t.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, &old) }, nil
}

func runInit(ctx context.Context, g *globals, f *initFlags, p *prompter) error {
	if !p.interactive() {
		p = nil
	}
	cfgPath, err := initConfigDirs(g, f, p)
	if err != nil || f.fromEscale != "" {
		if err == nil {
			err = initFromEscale(g, cfgPath, f.fromEscale)
		}
		return err
	}
	cfgDir := filepath.Dir(cfgPath)

	// 1. The relay URL, checked as it is given, the node's name and its
	// table.
	if err := askRelayURL(g, f, p); err != nil {
		return err
	}
	name, err := askNodeName(g, f, p)
	if err != nil {
		return err
	}
	repo := f.repo
	if repo == "" {
		repo = name
	}
	if existing, err := config.Load(cfgPath); err == nil {
		if _, ok := existing.Repo(repo); ok {
			return usage(fmt.Errorf("%s already has a table [%s]: choose another name with --repo NAME, or edit the file", cfgPath, repo))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return usage(fmt.Errorf("the configuration file is not valid, fix it first: %w", err))
	}

	// 2. The login, tried as soon as it is given, and the relay check.
	// A secret init wrote is removed again when it does not work.
	login := &relayLogin{pwFile: filepath.Join(cfgDir, repo+".relay-password")}
	defer login.discard()
	if err := askRelay(ctx, g, f, p, login); err != nil {
		return err
	}
	values := map[string]any{"relay": f.relayURL}
	if f.name != "" || name != repo {
		values["name"] = name
	}
	opts := f.rf.options(g)
	maps.Copy(values, f.rf.configValues())

	// 3. The secret, kept in memory until the repository opens with it.
	if err := initSecretAndRepository(ctx, g, f, p, cfgDir, repo, opts, values); err != nil {
		return err
	}

	// 4. Mode and folder.
	mode, err := askMode(g, f, p)
	if err != nil {
		return err
	}
	if mode != "" && mode != "shared" {
		values["mode"] = mode
	}
	key, dir, err := askFolder(g.stdout, f, p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	values[key] = resolvePath(dir)

	// 5. Write the configuration.
	if err := appendTable(cfgPath, repo, values); err != nil {
		return err
	}
	login.keep()
	if _, err := config.Load(cfgPath); err != nil {
		return fmt.Errorf("the configuration written is not valid (please report this): %w", err)
	}
	command := "sync"
	if key == "mountpoint" {
		command = "mount"
	}
	fmt.Fprintf(g.stdout, "Wrote [%s] to %s (mode 0600).\nStart the node with: escalefs %s --repo %s\n", repo, cfgPath, command, repo)
	return nil
}

// initSecretAndRepository makes or takes the repository's secret, opens
// (or creates) the repository with it, saves it, and notes where it is in
// the table's values.
func initSecretAndRepository(ctx context.Context, g *globals, f *initFlags, p *prompter, cfgDir, repo string,
	opts relay.Options, values map[string]any) error {
	sec, err := initSecret(f, p, cfgDir, repo, g.stdout)
	if err != nil {
		return err
	}
	if err := initRepository(ctx, g, f, opts, sec); err != nil {
		return err
	}
	if err := sec.save(g.stdout, f.relayURL); err != nil {
		return err
	}
	if sec.key != "" {
		values[sec.key] = sec.path
	} else {
		values["encryption"] = false
	}
	return nil
}

// initConfigDirs makes the configuration's directories, has the license
// accepted, and returns the configuration file's path.
func initConfigDirs(g *globals, f *initFlags, p *prompter) (string, error) {
	cfgPath := g.config.path
	if cfgPath == "" {
		var err error
		if cfgPath, err = config.DefaultPath(); err != nil {
			return "", err
		}
	}
	cfgDir := filepath.Dir(cfgPath)
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		return "", fmt.Errorf("creating the configuration directory: %w", err)
	}
	// The acceptance is the user's, whatever the file.
	userDir := cfgDir
	if def, err := config.DefaultPath(); err == nil {
		userDir = filepath.Dir(def)
	}
	if err := os.MkdirAll(userDir, 0o700); err != nil {
		return "", fmt.Errorf("creating the configuration directory: %w", err)
	}
	if err := acceptLicense(userDir, f.acceptLicense, p, g.stdout); err != nil {
		return "", err
	}
	return cfgPath, nil
}

// askRelayURL asks for the relay URL until a valid one is given (from
// --relay, or on the terminal).
func askRelayURL(g *globals, f *initFlags, p *prompter) error {
	for {
		if f.relayURL == "" {
			if p == nil {
				return usage(errors.New("no relay given: give --relay URL (e.g. ftps://me@ftp.example.org/sync), or run escalefs init on a terminal to be asked"))
			}
			var err error
			if f.relayURL, err = p.ask("Relay URL (ftp://, ftps://, webdav://, webdavs://, sftp://, s3://, gdrive://, file:///path)", ""); err != nil {
				return err
			}
		}
		err := checkRelayURL(f.relayURL)
		if err == nil {
			return nil
		}
		if p == nil {
			return usage(fmt.Errorf("--relay %s: %w", f.relayURL, err))
		}
		fmt.Fprintf(g.stdout, "  %v\n", err)
		f.relayURL = ""
	}
}

// askNodeName returns the node's name: --name, or asked on the terminal
// (the host's name offered).
func askNodeName(g *globals, f *initFlags, p *prompter) (string, error) {
	name, err := initNodeName(f.name)
	if err != nil {
		return "", err
	}
	for p != nil && f.name == "" {
		if name, err = p.ask("This node's name", name); err != nil {
			return "", err
		}
		why := checkNodeName(name)
		if why == "" {
			break
		}
		fmt.Fprintf(g.stdout, "  %q: %s; again.\n", name, why)
	}
	return name, nil
}

// askMode returns the node's mode: --mode, or asked on the terminal.
func askMode(g *globals, f *initFlags, p *prompter) (string, error) {
	mode := f.mode
	for mode == "" && p != nil {
		var err error
		if mode, err = p.ask("Mode: shared, upload, download or conservative", "shared"); err != nil {
			return "", err
		}
		if _, err := proto.ParseMode(mode); err != nil {
			fmt.Fprintf(g.stdout, "  %q is not a mode; again.\n", mode)
			mode = ""
		}
	}
	if _, err := proto.ParseMode(mode); mode != "" && err != nil {
		return "", usage(fmt.Errorf("--mode %q: expected shared, upload, download or conservative", mode))
	}
	return mode, nil
}

// initFromEscale appends the sections of an Escale configuration file to
// the configuration as tables, and says what did not carry over.
func initFromEscale(g *globals, cfgPath, escalePath string) error {
	tables, err := escaleTables(g, cfgPath, escalePath)
	if err != nil {
		return err
	}
	passwords, err := writeEscaleTables(cfgPath, escalePath, tables)
	if err != nil {
		return err
	}
	for _, t := range tables {
		fmt.Fprintf(g.stdout, "[%s]: converted %d options\n", t.Name, len(t.Values))
		if pw, ok := t.Values["password-file"].(string); ok && passwords[pw] != "" {
			fmt.Fprintf(g.stdout, "  the relay password from Escale's credential file is in %s (mode 0600)\n", pw)
		}
		for _, n := range t.Notes {
			fmt.Fprintf(g.stdout, "  not carried over: %s\n", n)
		}
	}
	fmt.Fprintf(g.stdout, "Wrote %d tables to %s (mode 0600). Check them, then start a node with escalefs sync --repo NAME.\n",
		len(tables), cfgPath)
	return nil
}

// escaleTables converts the Escale file's sections to tables, and keeps
// those that have a relay (printing why the others are not written) and
// no table of the configuration file has the name of.
func escaleTables(g *globals, cfgPath, escalePath string) ([]config.EscaleTable, error) {
	fh, err := os.Open(escalePath)
	if err != nil {
		return nil, fmt.Errorf("--from-escale: %w", err)
	}
	defer fh.Close()
	tables, err := config.ConvertEscale(fh, filepath.Dir(resolvePath(escalePath)))
	if err != nil {
		return nil, fmt.Errorf("--from-escale %s: %w", escalePath, err)
	}
	existing, err := config.Load(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		existing = nil
	case err != nil:
		return nil, fmt.Errorf("the configuration file is not valid, fix it first: %w", err)
	}
	// A table without a relay is not written: it would not run.
	var skipped []config.EscaleTable
	tables = slices.DeleteFunc(tables, func(t config.EscaleTable) bool {
		if _, ok := t.Values["relay"]; !ok {
			skipped = append(skipped, t)
			return true
		}
		return false
	})
	for _, t := range skipped {
		fmt.Fprintf(g.stdout, "[%s]: not written, it has no relay escalefs can reach:\n", t.Name)
		for _, n := range t.Notes {
			fmt.Fprintf(g.stdout, "  %s\n", n)
		}
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("--from-escale %s: no section has a relay escalefs can reach; nothing was written", escalePath)
	}
	for _, t := range tables {
		if existing == nil {
			break
		}
		if _, ok := existing.Repo(t.Name); ok {
			return nil, usage(fmt.Errorf("%s already has a table [%s]: remove it or rename the section in %s", cfgPath, t.Name, escalePath))
		}
	}
	return tables, nil
}

// writeEscaleTables appends the tables to the configuration file, through
// a copy: a conversion that does not load leaves the file as it was.
// Passwords out of Escale's "user:password" files go to files of their
// own (returned by name), written only once the tables load.
func writeEscaleTables(cfgPath, escalePath string, tables []config.EscaleTable) (map[string]string, error) {
	tmp := cfgPath + ".escale-import"
	old, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := writePrivate(tmp, old); err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	passwords := map[string]string{}
	for _, t := range tables {
		if t.Password != "" {
			pw := filepath.Join(filepath.Dir(cfgPath), t.Name+".relay-password")
			passwords[pw] = t.Password
			t.Values["password-file"] = pw
		}
		if err := appendTable(tmp, t.Name, t.Values); err != nil {
			return nil, err
		}
	}
	if _, err := config.Load(tmp); err != nil {
		return nil, fmt.Errorf("the converted tables do not load, and %s is unchanged; fix %s and try again: %w", cfgPath, escalePath, err)
	}
	for pw, secret := range passwords {
		if err := writePrivate(pw, []byte(secret+"\n")); err != nil {
			return nil, err
		}
	}
	return passwords, os.Rename(tmp, cfgPath)
}

// acceptLicense makes sure the license notice was accepted once.
func acceptLicense(cfgDir string, given bool, p *prompter, out io.Writer) error {
	marker := filepath.Join(cfgDir, licenseAcceptedFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if !given {
		if p == nil {
			return errors.New("the license notice is not accepted yet: read it (escalefs init on a terminal shows it, and README.md) and give --accept-license")
		}
		fmt.Fprintf(out, "%s\n\n", licenseNotice)
		a, err := p.ask("Do you accept these terms? (yes/no)", "no")
		if err != nil {
			return err
		}
		if a = strings.ToLower(a); a != "yes" && a != "y" {
			return errors.New("the license notice was not accepted: nothing was set up")
		}
	}
	return writePrivate(marker, []byte("CeCILL-C accepted "+time.Now().UTC().Format(time.RFC3339)+"\n"))
}

// initSecretChoice is the repository's secret chosen by init: key is its
// configuration key (key-file or passphrase-file; "" for none) and path
// its file, which save writes when init made it.
type initSecretChoice struct {
	key, path string
	secret    crypto.Secret
	write     []byte // the file to write, nil if it exists already
	generated bool   // a key generated now
}

// initSecret returns the secret given by the flags, or a key generated or
// a passphrase asked for.
func initSecret(f *initFlags, p *prompter, cfgDir, repo string, out io.Writer) (*initSecretChoice, error) {
	switch {
	case f.noEncryption:
		return &initSecretChoice{}, nil
	case f.keyFile != "" && f.passphraseFile != "":
		return nil, errors.New("both --key-file and --passphrase-file given: a repository has one secret")
	case f.keyFile != "":
		s, err := crypto.ReadKeyFile(f.keyFile)
		return &initSecretChoice{key: "key-file", path: resolvePath(f.keyFile), secret: s}, err
	case f.passphraseFile != "":
		s, err := crypto.ReadPassphraseFile(f.passphraseFile)
		return &initSecretChoice{key: "passphrase-file", path: resolvePath(f.passphraseFile), secret: s}, err
	}
	usePassphrase := false
	if p != nil {
		a, err := p.ask("Protect the repository with a generated key file (k) or a passphrase (p)?", "k")
		if err != nil {
			return nil, err
		}
		usePassphrase = strings.HasPrefix(strings.ToLower(a), "p")
	}
	if usePassphrase {
		for {
			a, err := p.hidden("Passphrase")
			if err != nil {
				return nil, err
			}
			b, err := p.hidden("The same passphrase again")
			if err != nil {
				return nil, err
			}
			switch {
			case a != b:
				fmt.Fprintln(out, "The two passphrases differ; again.")
				continue
			case len(a) < 12:
				fmt.Fprintln(out, "A passphrase needs 12 characters or more; again.")
				continue
			}
			return &initSecretChoice{key: "passphrase-file", path: filepath.Join(cfgDir, repo+".passphrase"),
				secret: crypto.Passphrase(a), write: []byte(a + "\n")}, nil
		}
	}
	return &initSecretChoice{key: "key-file", path: filepath.Join(cfgDir, repo+".key"), secret: crypto.GenerateKey(),
		generated: true}, nil
}

// save writes the secret's file if init made the secret, and says how to
// bring it to the other nodes.
func (c *initSecretChoice) save(out io.Writer, relayURL string) error {
	switch {
	case c.generated:
		if err := crypto.WriteKeyFile(c.path, c.secret, time.Now()); err != nil {
			return fmt.Errorf("writing the key file: %w", err)
		}
		fmt.Fprintf(out, "Generated the repository key %s (mode 0600).\n"+
			"Copy it to the other nodes over a channel you trust (scp, a USB stick), then run there:\n"+
			"  escalefs init --join --relay %s --key-file KEYFILE --path DIR\n", c.path, relayURL)
	case c.write != nil:
		if err := writePrivate(c.path, c.write); err != nil {
			return err
		}
		fmt.Fprintf(out, "The passphrase is in %s (mode 0600). The other nodes need the same passphrase:\n"+
			"  escalefs init --join --relay %s --passphrase-file FILE --path DIR\n", c.path, relayURL)
	}
	return nil
}

// initRepository opens the repository on the relay with the secret, making
// it unless --join, so that a wrong secret or a missing repository shows
// now rather than at the first sync.
func initRepository(ctx context.Context, g *globals, f *initFlags, opts relay.Options, sec *initSecretChoice) error {
	r, err := all.Open(ctx, f.relayURL, opts)
	if err != nil {
		return fmt.Errorf("opening the relay %s: %w", f.relayURL, err)
	}
	defer r.Close()
	ropts := escsync.RepoOptions{Create: !f.join}
	if sec.key == "" {
		ropts.Encryption = crypto.EncryptionOff
	}
	repo, err := escsync.OpenRepository(ctx, r, sec.secret, ropts)
	switch {
	case errors.Is(err, escsync.ErrNoRepository):
		return fmt.Errorf("--join: the relay %s holds no repository to join; run escalefs init without --join to create one", f.relayURL)
	case err != nil:
		return fmt.Errorf("opening the repository at %s: %w", f.relayURL, err)
	case repo.Created:
		fmt.Fprintf(g.stdout, "Created a new repository (id %s) on the relay.\n", repo.ID)
	default:
		fmt.Fprintf(g.stdout, "Joined the repository (id %s) on the relay: the secret opens it.\n", repo.ID)
	}
	return nil
}

// appendTable adds the table name with values to the configuration file at
// path, creating it with mode 0600.
func appendTable(path, name string, values map[string]any) error {
	body, err := toml.Marshal(values)
	if err != nil {
		return err
	}
	header, err := toml.Marshal(map[string]any{name: map[string]any{}})
	if err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	if fi, err := fh.Stat(); err == nil && fi.Mode().Perm() != 0o600 {
		if err := fh.Chmod(0o600); err != nil {
			fh.Close()
			return err
		}
	}
	text := "\n# Written by escalefs init on " + time.Now().Format("2006-01-02") + ".\n" +
		strings.TrimSpace(string(header)) + "\n" + string(body)
	if _, err := fh.WriteString(text); err != nil {
		fh.Close()
		return fmt.Errorf("writing the configuration: %w", err)
	}
	return fh.Close()
}

// writePrivate writes a file only its owner may read.
func writePrivate(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// initNodeName is name, or the host name.
func initNodeName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	host, err := os.Hostname()
	if err != nil || checkNodeName(host) != "" {
		return "", errors.New("the host name cannot name this node: give one with --name NODE")
	}
	return host, nil
}

// expandHome replaces a leading ~ with the home directory.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}
