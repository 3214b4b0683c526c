package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/check"
)

// checkRelayURL checks a relay URL's form without connecting: a scheme
// some backend serves and, for a server, a host after "//".
func checkRelayURL(raw string) error {
	u, _, err := all.Backends().Lookup(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "file":
		if u.Path == "" {
			return fmt.Errorf("relay URL %q names no directory; expected file:///path", u.Redacted())
		}
	case u.Opaque != "":
		return fmt.Errorf("relay URL %q has no // after %s:; expected e.g. %s://user@host/dir", u.Redacted(), u.Scheme, u.Scheme)
	case u.Host == "" && u.Scheme != "gdrive":
		return fmt.Errorf("relay URL %q names no host; expected e.g. %s://user@host/dir", u.Redacted(), u.Scheme)
	}
	return nil
}

// finalError is an answer that ends the wizard rather than being asked
// again: the terminal closed, or the user declined.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// relayLogin is the relay secret init asked for and wrote: removed again
// unless the configuration that names it was written (keep).
type relayLogin struct {
	pwFile  string
	written bool
}

// discard removes the secret init wrote, unless it was kept.
func (l *relayLogin) discard() {
	if l.written {
		os.Remove(l.pwFile)
		l.written = false
	}
}

func (l *relayLogin) keep() { l.written = false }

// askRelay gets a working login to the relay f.relayURL: on a terminal it
// asks for what the login needs, tries it at once and asks again when it
// is refused (the password) or when the relay cannot be reached (the URL),
// then checks the relay as escalefs relay check does. Without a terminal,
// a failure is the error.
func askRelay(ctx context.Context, g *globals, f *initFlags, p *prompter, login *relayLogin) error {
	for {
		err := tryRelay(ctx, g, f, p, login)
		var fe finalError
		if err == nil || p == nil || errors.As(err, &fe) {
			return err
		}
		login.discard()
		if f.rf.passwordFile == login.pwFile {
			f.rf.passwordFile = ""
		}
		if errors.Is(err, relay.ErrAuth) {
			fmt.Fprintf(g.stdout, "  The relay refused the login (%v); again.\n", err)
			continue
		}
		fmt.Fprintf(g.stdout, "  %v\n", err)
		for {
			f.relayURL = ""
			if f.relayURL, err = p.ask("Relay URL", ""); err != nil {
				return err
			}
			if err = checkRelayURL(f.relayURL); err == nil {
				break
			}
			fmt.Fprintf(g.stdout, "  %v\n", err)
		}
	}
}

// tryRelay asks for the login of f.relayURL (on a terminal), connects with
// it, and checks the relay.
func tryRelay(ctx context.Context, g *globals, f *initFlags, p *prompter, login *relayLogin) error {
	if p != nil {
		u, err := relay.ParseURL(f.relayURL)
		if err != nil {
			return err
		}
		orig := u.User.String()
		written := f.rf.passwordFile == ""
		if err := askRelayLogin(p, g.stdout, u, &f.rf, login.pwFile); err != nil {
			return finalError{err}
		}
		login.written = login.written || written && f.rf.passwordFile == login.pwFile
		if u.User.String() != orig {
			f.relayURL = u.String()
		}
		if u.Scheme == "sftp" && f.rf.hostKeySHA256 == "" && !f.skipCheck {
			if err := askHostKey(ctx, p, g.stdout, f.relayURL, &f.rf, f.rf.options(g)); err != nil {
				return finalError{err} // a key the user did not trust
			}
		}
		// The login, at once.
		r, err := all.Open(ctx, f.relayURL, f.rf.options(g))
		if err != nil {
			if cause := check.Diagnose(err); cause != "" {
				err = fmt.Errorf("%w (likely cause: %s)", err, cause)
			}
			return err
		}
		r.Close()
	}
	if f.skipCheck {
		return nil
	}
	fmt.Fprintf(g.stdout, "Checking the relay %s:\n", f.relayURL)
	if err := runRelayCheck(ctx, g, f.relayURL, f.rf.options(g)); err != nil {
		if p != nil {
			return errors.New("the relay check failed (see above)")
		}
		return fmt.Errorf("the relay check failed (see above); fix the URL or the credentials and run escalefs init again: %w", err)
	}
	return nil
}

// askFolder returns the folder's key (path for sync, mountpoint for
// mount) and directory, from the flags or asked. A mountpoint must be
// empty: on a terminal, one that is not is asked again, with the offer to
// keep it in step as a plain folder instead.
func askFolder(out io.Writer, f *initFlags, p *prompter) (key, dir string, err error) {
	key, dir = "path", f.path
	if f.mountpoint != "" {
		key, dir = "mountpoint", f.mountpoint
	}
	if dir != "" {
		if key == "mountpoint" && !emptyOrMissing(expandHome(dir)) {
			return "", "", usage(fmt.Errorf("--mountpoint %s is not empty: a mount would hide its files; give an empty "+
				"directory, or keep this folder in step with --path %s (escalefs sync)", dir, dir))
		}
		return key, expandHome(dir), nil
	}
	if p == nil {
		return "", "", usage(errors.New("no folder given: give --path DIR (for escalefs sync) or --mountpoint DIR (for escalefs mount)"))
	}
	how, err := p.ask("Mount the folder with FUSE (m) or keep a plain folder in step (s)?", "m")
	if err != nil {
		return "", "", err
	}
	key = "mountpoint"
	if strings.HasPrefix(strings.ToLower(how), "s") {
		key = "path"
	}
	for {
		if dir, err = p.ask("Directory", filepath.Join("~", "Sync")); err != nil {
			return "", "", err
		}
		dir = expandHome(dir)
		if key == "path" || emptyOrMissing(dir) {
			return key, dir, nil
		}
		fmt.Fprintf(out, "  %s is not empty: a mount there would hide its files.\n", dir)
		a, err := p.ask("Keep it in step as a plain folder with escalefs sync instead? (yes/no)", "yes")
		if err != nil {
			return "", "", err
		}
		if a = strings.ToLower(a); a == "yes" || a == "y" {
			return "path", dir, nil
		}
	}
}

// emptyOrMissing reports whether dir holds nothing (or does not exist).
func emptyOrMissing(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer d.Close()
	names, _ := d.Readdirnames(1)
	return len(names) == 0
}
