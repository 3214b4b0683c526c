// Command escalefs keeps one folder in step across machines that share
// nothing but a relay: an FTP, WebDAV, Google Drive or plain directory
// storage account that it treats as untrusted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root, g := newRoot(os.Stdout, os.Stderr)
	code := 0
	if args, fake, ok := helperArgs(os.Args[0], os.Args[1:], isCommand(root), isDir); !ok {
		code = execute(ctx, root, os.Stderr)
	} else if !fake {
		root.SetArgs(args)
		code = execute(ctx, root, os.Stderr)
	}
	g.profiles.stop(os.Stderr)
	stop()
	os.Exit(code)
}

// isCommand reports whether name is a command of root (or "help").
func isCommand(root *cobra.Command) func(string) bool {
	return func(name string) bool {
		if name == "help" {
			return true
		}
		for _, c := range root.Commands() {
			if c.Name() == name || slices.Contains(c.Aliases, name) {
				return true
			}
		}
		return false
	}
}

// execute runs root, prints its error if it did not, and returns the exit
// status (exitcode.go).
func execute(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	err := root.ExecuteContext(ctx)
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(stderr, "escalefs:", err)
	}
	return exitCode(err)
}

// globals are the settings every subcommand shares.
type globals struct {
	stdout, stderr io.Writer
	verbose        bool
	log            logOptions
	config         configSource // configflags.go
	profiles       profiles     // profile.go
}

// logger is the logger of the commands but sync and mount: warnings and
// errors by default (see logging.go).
func (g *globals) logger() *slog.Logger { return g.newLogger(slog.LevelWarn) }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root, _ := newRoot(stdout, stderr)
	return root
}

// newRoot returns the root command and the settings its subcommands share.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, *globals) {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "escalefs",
		Short: "Keep a folder in step across machines through an untrusted relay",
		Long: `escalefs keeps one folder in step across machines that cannot reach each
other. All they share is a relay: an FTP(S), WebDAV(S) or Google Drive
account, or a plain directory. Every node is a client; the relay only ever
stores opaque, encrypted objects.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = versionString()
	root.SetVersionTemplate("escalefs {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every relay call (debug level) to stderr")
	g.log.register(root.PersistentFlags())
	g.config.register(root)
	g.profiles.register(root)
	root.AddCommand(newVersionCmd(g), newRelayCmd(g), newKeyCmd(g), newSyncCmd(g), newMountCmd(g), newAccessCmd(g), newStatusCmd(g), newVersionsCmd(g))
	root.AddCommand(newBackupCmd(g), newRestoreCmd(g))
	root.AddCommand(newInitCmd(g))
	root.AddCommand(newNodesCmd(g))
	root.AddCommand(newAuthCmd(g))
	root.AddCommand(newMigrateCmd(g))
	root.AddCommand(newFixCmd(g))
	addCompletion(root)
	markUsageErrors(root)
	return root, g
}
