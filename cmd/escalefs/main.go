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
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// exitError carries an exit status; its message has already been printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "escalefs:", err)
		os.Exit(1)
	}
}

// globals are the settings every subcommand shares.
type globals struct {
	stdout, stderr io.Writer
	verbose        bool
	log            logOptions
	config         configSource // configflags.go
}

// logger is the logger of the commands but sync and mount: warnings and
// errors by default (see logging.go).
func (g *globals) logger() *slog.Logger { return g.newLogger(slog.LevelWarn) }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
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
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every relay call (debug level) to stderr")
	g.log.register(root.PersistentFlags())
	g.config.register(root)
	root.AddCommand(newVersionCmd(g), newRelayCmd(g), newKeyCmd(g), newSyncCmd(g), newMountCmd(g), newAccessCmd(g), newStatusCmd(g))
	root.AddCommand(newBackupCmd(g), newRestoreCmd(g))
	root.AddCommand(newInitCmd(g))
	root.AddCommand(newNodesCmd(g))
	root.AddCommand(newAuthCmd(g))
	root.AddCommand(newMigrateCmd(g))
	root.AddCommand(newFixCmd(g))
	addCompletion(root)
	return root
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of escalefs",
		Example: "  escalefs version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, "escalefs", versionString())
			return nil
		},
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}
