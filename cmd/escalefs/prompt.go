package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/term"

	"github.com/escalefs/escalefs/relay"
)

// askedSecrets are what a run of sync or mount asks for on the terminal
// when neither the configuration nor the flags hold it, as Escale did: the
// repository passphrase and the relay password.
type askedSecrets struct {
	Passphrase    string `json:"passphrase,omitempty"`
	RelayPassword string `json:"relay_password,omitempty"`
}

// secretsEnv names the environment variable through which escalefs mount
// hands what it asked for to its background copy: an inherited pipe's file
// descriptor, read once and closed.
const secretsEnv = "ESCALEFS_SECRETS_FD"

// stdinTerminal reports whether standard input is a terminal to ask on.
func stdinTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// askHidden asks question on the terminal and reads the answer without
// echoing it.
func askHidden(w io.Writer, question string) (string, error) {
	fmt.Fprintf(w, "%s: ", question)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the answer to %q: %w", question, err)
	}
	return string(b), nil
}

// gatherSecrets fills f.asked: from the pipe of the mount that started
// this process in the background, or by asking on the terminal for what
// the flags and the configuration do not give. Without a terminal nothing
// is asked; the missing secret's error then names the option to set.
func (f *syncFlags) gatherSecrets(g *globals) error {
	if v, ok := os.LookupEnv(secretsEnv); ok {
		os.Unsetenv(secretsEnv)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return fmt.Errorf("$%s=%q is not a file descriptor", secretsEnv, v)
		}
		pipe := os.NewFile(uintptr(fd), "secrets")
		defer pipe.Close()
		if err := json.NewDecoder(pipe).Decode(&f.asked); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the secrets handed over by escalefs mount: %w", err)
		}
		f.applyAsked()
		return nil
	}
	if !stdinTerminal() {
		return nil
	}
	if !f.noEncryption && f.sf.passphraseFile == "" && f.sf.keyFile == "" {
		p, err := askHidden(g.stderr, "Passphrase of the repository at "+redactURL(f.relayURL))
		if err != nil {
			return err
		}
		if p == "" {
			return errors.New("no passphrase given: nothing to open the repository with")
		}
		f.asked.Passphrase = p
	}
	if user, host, ok := f.relayNeedsPassword(); ok {
		p, err := askHidden(g.stderr, fmt.Sprintf("Password of %s at %s", user, host))
		if err != nil {
			return err
		}
		f.asked.RelayPassword = p
	}
	f.applyAsked()
	return nil
}

// applyAsked makes the relay options use an asked password.
func (f *syncFlags) applyAsked() {
	if f.asked.RelayPassword != "" {
		f.rf.password = f.asked.RelayPassword
	}
}

// relayNeedsPassword reports the user and host of a relay URL that names
// a user for whom no password is set anywhere (URL, configuration,
// password file, environment, netrc). Anonymous FTP needs none.
func (f *syncFlags) relayNeedsPassword() (user, host string, needs bool) {
	u, err := relay.ParseURL(f.relayURL)
	if err != nil || u.User == nil || u.User.Username() == "" {
		return "", "", false
	}
	switch u.User.Username() {
	case "anonymous", "ftp":
		return "", "", false
	}
	opts := f.rf.options(&globals{stderr: io.Discard, stdout: io.Discard})
	_, pass, err := opts.Credentials(u, "")
	if err != nil || pass != "" {
		return "", "", false
	}
	return u.User.Username(), u.Host, true
}

// redactURL is raw without a password it may hold.
func redactURL(raw string) string {
	if u, err := relay.ParseURL(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// handOver starts a pipe that gives asked secrets to the background copy
// of escalefs mount: the read end for its ExtraFiles and the variable to
// add to its environment (fd is the descriptor it will have there). nil
// when nothing was asked.
func (a askedSecrets) handOver(fd int) (*os.File, string, error) {
	if a == (askedSecrets{}) {
		return nil, "", nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	// A pipe holds far more than the few bytes written: no deadlock.
	err = json.NewEncoder(w).Encode(a)
	w.Close()
	if err != nil {
		r.Close()
		return nil, "", err
	}
	return r, secretsEnv + "=" + strconv.Itoa(fd), nil
}
