package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/check"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create repository key files; print the age identity that decrypts blobs",
	}
	cmd.AddCommand(newKeyGenerateCmd(g), newKeyAgeIdentityCmd(g))
	return cmd
}

// defaultKeyPath is where key generate writes without -o:
// $XDG_CONFIG_HOME/escalefs/key, or ~/.config/escalefs/key.
func defaultKeyPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default place for the key file (%v); give one with -o FILE", err)
	}
	return filepath.Join(dir, "escalefs", "key"), nil
}

func newKeyGenerateCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate [-o FILE]",
		Short: "Write a new random repository key to a file (mode 0600)",
		Long: `Generate writes a new random 256-bit repository key to FILE, with mode 0600,
and says how to bring it to the other nodes. It never overwrites a file: a
repository whose key is lost cannot be read again.

Without -o the key goes to $XDG_CONFIG_HOME/escalefs/key (by default
~/.config/escalefs/key); the directory is created with mode 0700.

A key file replaces a passphrase: it is stronger (no passphrase to guess) and
needs no key stretching, but every node needs a copy of it. Give it to
commands with --key-file FILE.`,
		Example: "  escalefs key generate\n  escalefs key generate -o /media/usb/escalefs.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyGenerate(g, out, time.Now())
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the key to; it must not exist (default $XDG_CONFIG_HOME/escalefs/key)")
	return cmd
}

func runKeyGenerate(g *globals, path string, now time.Time) error {
	if path == "" {
		p, err := defaultKeyPath()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("creating the key file's directory: %w", err)
		}
		path = p
	}
	if err := crypto.WriteKeyFile(path, crypto.GenerateKey(), now); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; escalefs never overwrites a key file, since a repository whose key is lost "+
				"cannot be read again: choose another path with -o, or move the old file away if you are sure no repository uses it", path)
		}
		return err
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fmt.Fprintf(g.stdout, `Wrote a new repository key to %[1]s (mode 0600).

This file is the repository's secret: whoever holds it can read and forge
everything escalefs stores on the relay. Give it to each node of the
repository, and to nothing else:
  1. copy it to every other node, over SSH or on a USB stick (delete it from
     the stick afterwards):
       ssh OTHER-HOST 'mkdir -p -m 700 ~/.config/escalefs'
       scp -p %[1]s OTHER-HOST:.config/escalefs/key
  2. on every node, keep it private: chmod 600 ~/.config/escalefs/key
     (escalefs refuses a key file that group or others can read);
  3. never put it on the relay, in the synced folder, or in e-mail or chat.
Keep one more copy offline (a USB stick in a drawer, a password manager): if
every copy is lost, nothing on the relay can be decrypted, not even with age.

Commands take it with --key-file %[1]s
`, path)
	return nil
}

// secretFlags say where a repository's secret comes from. Every command
// that opens a repository takes them.
type secretFlags struct {
	passphraseFile string
	keyFile        string
}

func (f *secretFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the repository passphrase (mode 0600)")
	fs.StringVar(&f.keyFile, "key-file", "", "repository key file, from escalefs key generate (mode 0600)")
}

// read reads the secret from the one file given.
func (f *secretFlags) read() (crypto.Secret, error) {
	s, err := f.readFiles()
	return s, usage(err)
}

func (f *secretFlags) readFiles() (crypto.Secret, error) {
	const which = "exactly one of --passphrase-file FILE and --key-file FILE is required " +
		"(a repository is protected by either a passphrase or a key file)"
	switch {
	case f.passphraseFile != "" && f.keyFile != "":
		return crypto.Secret{}, errors.New("both --passphrase-file and --key-file given: " + which)
	case f.passphraseFile != "":
		return crypto.ReadPassphraseFile(f.passphraseFile)
	case f.keyFile != "":
		return crypto.ReadKeyFile(f.keyFile)
	}
	return crypto.Secret{}, errors.New("no secret given: " + which)
}

func newKeyAgeIdentityCmd(g *globals) *cobra.Command {
	var (
		rf        relayFlags
		sf        secretFlags
		relayURL  string
		recipient bool
		repo      repoFlag
	)
	cmd := &cobra.Command{
		Use:   "age-identity --relay URL (--passphrase-file FILE | --key-file FILE)",
		Short: "Print the age identity that decrypts the repository's blobs",
		Long: `Age-identity reads the repository's escale.json from the relay at URL, unlocks
it with the passphrase or key file, and prints the repository's age identity
(AGE-SECRET-KEY-1…) on standard output. With it the stock age tool decrypts
any blob of the repository without escalefs:

  age -d -i IDENTITY-FILE BLOB > file

The identity is as secret as the passphrase or key file: write it only to a
private file (mode 0600) and delete it afterwards. With --recipient the
public age recipient (age1…) is printed instead; it encrypts for the
repository but decrypts nothing.`,
		Example: "  (umask 077; escalefs key age-identity --relay ftps://me@ftp.example.org/sync \\\n" +
			"     --passphrase-file ~/.config/escalefs/passphrase > id.txt)\n" +
			"  age -d -i id.txt blobs/<node>/<id> > file",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyAgeIdentity(cmd.Context(), g, relayURL, &sf, recipient, rf.options(g))
		},
	}
	cmd.Flags().StringVar(&relayURL, "relay", "", "URL of the relay holding the repository (see escalefs relay check --help)")
	cmd.Flags().BoolVar(&recipient, "recipient", false, "print the public age recipient (age1…) instead of the identity")
	sf.register(cmd.Flags())
	rf.register(cmd.Flags())
	if err := cmd.MarkFlagRequired("relay"); err != nil {
		panic(err)
	}
	repo.register(cmd, g, &rf, -1)
	return cmd
}

func runKeyAgeIdentity(ctx context.Context, g *globals, rawURL string, sf *secretFlags, recipient bool, opts relay.Options) error {
	secret, err := sf.read()
	if err != nil {
		return err
	}
	cfg, loc, err := readRepoConfig(ctx, g, rawURL, opts)
	if err != nil {
		return err
	}
	if cfg.Encryption == crypto.EncryptionOff {
		return fmt.Errorf("the repository at %s has encryption off: its blobs are the files themselves, in the clear, "+
			"and need no age identity", loc)
	}
	keys, err := cfg.Unlock(secret)
	if err != nil {
		return fmt.Errorf("unlocking the repository at %s: %w", loc, err)
	}
	if recipient {
		fmt.Fprintln(g.stdout, keys.AgeRecipient())
		fmt.Fprintf(g.stderr, "# public age recipient of repository %s: it encrypts for the repository but decrypts nothing\n",
			keys.Repository())
		return nil
	}
	fmt.Fprintln(g.stdout, keys.AgeIdentity())
	fmt.Fprintf(g.stderr, "# age identity of repository %s, as secret as its %s: save it to a private file (mode 0600) "+
		"and decrypt a blob with: age -d -i FILE BLOB > out\n", keys.Repository(), secretName(cfg.Secret))
	return nil
}

func secretName(k crypto.SecretKind) string {
	if k == crypto.SecretKey {
		return "key file"
	}
	return string(k)
}

// maxConfigRead bounds what is read of escale.json; crypto.ParseConfig
// rejects anything near this size.
const maxConfigRead = 64 << 10

// readRepoConfig opens the relay at rawURL and parses its escale.json. It
// returns the relay's location (without credentials) for messages. Relay
// failures are reported on stderr with their likely cause and give an
// *exitError.
func readRepoConfig(ctx context.Context, g *globals, rawURL string, opts relay.Options) (*crypto.Config, string, error) {
	relayFailed := func(err error) error {
		fmt.Fprintf(g.stderr, "escalefs: %v\n", err)
		if cause := check.Diagnose(err); cause != "" {
			fmt.Fprintf(g.stderr, "likely cause: %s\n", cause)
		}
		return printed(err)
	}
	r, err := all.Open(ctx, rawURL, opts)
	if err != nil {
		return nil, "", relayFailed(err)
	}
	defer r.Close()
	loc := r.Properties().Location
	var data []byte
	err = r.Get(ctx, crypto.ConfigName, 0, -1, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(rd, maxConfigRead))
		return err
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, loc, fmt.Errorf("no escalefs repository at %s (%s not found)", loc, crypto.ConfigName)
	case err != nil:
		return nil, loc, relayFailed(fmt.Errorf("reading %s: %w", crypto.ConfigName, err))
	}
	cfg, err := crypto.ParseConfig(data)
	if err != nil {
		return nil, loc, fmt.Errorf("%s: %w", strings.TrimSuffix(loc, "/")+"/"+crypto.ConfigName, err)
	}
	return cfg, loc, nil
}
