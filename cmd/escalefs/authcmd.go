package main

import "github.com/spf13/cobra"

// newAuthCmd is "escalefs auth": obtaining credentials for a relay.
func newAuthCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "auth",
		Short: "Obtain credentials for a relay",
		Args:  cobra.NoArgs,
	}
}
