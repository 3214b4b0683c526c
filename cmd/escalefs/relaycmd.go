package main

import (
	"context"
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
	var rf relayFlags
	cmd := &cobra.Command{
		Use:   "check URL",
		Short: "Check that a relay works: connect, put, list, read, rename, delete",
		Long: `Check connects to the relay at URL and puts, lists, reads back (whole and a
range), renames and deletes a few test objects under a temporary prefix,
printing one line per step with its timing. It exits with status 0 when the
relay works, and otherwise names the failing step and its likely cause.

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
			"  escalefs relay check --s3-endpoint http://127.0.0.1:9000 s3://sync-bucket/escalefs",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRelayCheck(cmd.Context(), g, args[0], rf.options(g))
		},
	}
	rf.register(cmd.Flags())
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
