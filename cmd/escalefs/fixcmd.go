package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newFixCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fix --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [--apply] DIR",
		Short: "Rebuild a lost or damaged relay from this node",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("escalefs fix: not available yet")
		},
	}
}
