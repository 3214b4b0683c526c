package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMigrateCmd(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "migrate --to URL [flags] DIR",
		Short:  "Move a repository to another relay",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("escalefs migrate: not available yet")
		},
	}
}
