package main

import "github.com/spf13/cobra"

func newBackupCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "backup", Short: "Copy a repository's relay objects into a tar archive", Hidden: true}
}

func newRestoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "restore", Short: "Copy a backup archive's objects onto a relay", Hidden: true}
}
