package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
)

// The exit codes of escalefs, for scripts (docs/commands.md: "Exit codes"). Each
// kind of failure has its own, whatever the command.
const (
	// exitFailure is any failure that the codes below do not name.
	exitFailure = 1
	// exitUsage: a usage or configuration error (an unknown flag or
	// command, a bad value, a configuration file that does not parse).
	exitUsage = 2
	// exitRelay: the relay is unreachable, or refuses the login or the
	// TLS or SSH handshake.
	exitRelay = 3
	// exitSecret: the passphrase or key does not open the repository.
	exitSecret = 4
	// exitUnsynced: escalefs status found a node that reports an error
	// or a file that can never be pushed; sync --once left something it
	// cannot push.
	exitUnsynced = 5
)

// exitError carries an exit status; its message has already been printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError marks an error of the command line or the configuration.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage marks err, if any, as a usage or configuration error.
func usage(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err}
}

// exitCode is the exit status for err.
func exitCode(err error) int {
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), isCobraUsage(err):
		return exitUsage
	case errors.Is(err, crypto.ErrWrongSecret):
		return exitSecret
	case errors.Is(err, relay.ErrAuth), errors.Is(err, relay.ErrUnreachable), errors.Is(err, relay.ErrTLS):
		return exitRelay
	case errors.Is(err, crypto.ErrInsecureFile), errors.Is(err, relay.ErrBadURL):
		return exitUsage
	}
	return exitFailure
}

// printed is the *exitError for err, whose message was printed already.
func printed(err error) *exitError { return &exitError{code: exitCode(err)} }

// markUsageErrors has cobra's own errors, and those of every command's
// argument check, count as usage errors: flags that do not parse,
// unknown commands, missing or extra arguments.
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error { return usage(args(cmd, a)) }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// isCobraUsage reports whether err is one of the errors that cobra
// returns for a command line it cannot run, which carry no type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "required flag(s) ", "if any flags in the group ", "accepts ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
