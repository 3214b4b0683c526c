package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/check"
)

func newRelayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Work with relays directly",
	}
	cmd.AddCommand(newRelayCheckCmd(g))
	return cmd
}

func newRelayCheckCmd(g *globals) *cobra.Command {
	var (
		rf       relayFlags
		repo     repoFlag
		relayURL string // from --repo's table
	)
	cmd := &cobra.Command{
		Use:   "check [URL | --repo NAME]",
		Short: "Check that a relay works: connect, put, list, read, rename, delete",
		Long: `Check connects to the relay at URL and puts, lists, reads back (whole and a
range), renames and deletes a few test objects under a temporary prefix,
printing one line per step with its timing. It exits with status 0 when the
relay works, and otherwise names the failing step and its likely cause.
Without URL, it checks the relay of the configuration's table --repo NAME
(or of its only table), with that table's options.

URL forms:
  file:///path                      a local directory or mounted share
  ftp://user@host[:port]/dir        FTP
  ftps://user@host[:port]/dir       FTP with explicit TLS
  webdav[s]://user@host[:port]/path WebDAV over HTTP(S); http(s):// too
  gdrive://…                        Google Drive (see --credentials)
  sftp://user@host[:port]/dir       SFTP over SSH (ssh-agent, --ssh-key or password)
  s3://bucket/prefix                Amazon S3, or another S3 store with --s3-endpoint`,
		Example: "  escalefs relay check file:///tmp/relay\n" +
			"  escalefs relay check --password-file ~/.relaypw ftps://me@ftp.example.org/sync\n" +
			"  escalefs relay check sftp://me@nas.example.org/srv/sync\n" +
			"  escalefs relay check --s3-endpoint http://127.0.0.1:9000 s3://sync-bucket/escalefs\n" +
			"  escalefs relay check --repo laptop",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MaximumNArgs(1)(cmd, args); err != nil || len(args) == 0 {
				return err
			}
			// A URL given is the relay: no table applies unless
			// --repo names one.
			return cmd.Flags().Set("relay", args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if relayURL == "" {
				return usage(errors.New("missing URL: give the relay's URL, or --repo NAME for the relay of a table of the configuration file"))
			}
			return runRelayCheck(cmd.Context(), g, relayURL, rf.options(g))
		},
	}
	rf.register(cmd.Flags())
	// The table's relay key fills this hidden flag.
	cmd.Flags().StringVar(&relayURL, "relay", "", "the relay's URL (the argument)")
	if err := cmd.Flags().MarkHidden("relay"); err != nil {
		panic(err)
	}
	repo.register(cmd, g, &rf, -1)
	return cmd
}

func runRelayCheck(ctx context.Context, g *globals, rawURL string, opts relay.Options) error {
	open := func(ctx context.Context) (relay.Relay, error) { return all.Open(ctx, rawURL, opts) }
	err := check.Run(ctx, open, func(s check.Step) {
		status := "ok  "
		if s.Err != nil {
			status = "FAIL"
		}
		fmt.Fprintf(g.stdout, "%s %-9s %8s  %s\n", status, s.Name, s.Took.Round(100_000), s.Detail)
	})
	if err == nil {
		fmt.Fprintln(g.stdout, "relay works")
		return nil
	}
	fmt.Fprintf(g.stderr, "escalefs: relay check: %v\n", err)
	if cause := check.Diagnose(err); cause != "" {
		fmt.Fprintf(g.stderr, "likely cause: %s\n", cause)
	}
	return printed(err)
}
