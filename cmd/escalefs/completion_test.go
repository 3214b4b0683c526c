package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// escalefs completion writes each shell's script; the scripts complete by
// running escalefs __complete, which lists the subcommands.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_escalefs escalefs",
		"zsh":        "#compdef escalefs",
		"fish":       "complete -c escalefs ",
		"powershell": "Register-ArgumentCompleter -CommandName 'escalefs'",
	} {
		out, errOut, code := run(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes lacking %q or __complete\n%s", shell, code, len(out), want, errOut)
		}
	}
	out, errOut, code := run(t, "__complete", "")
	if code != 0 {
		t.Fatalf("__complete: exit %d\n%s", code, errOut)
	}
	for _, sub := range []string{"version", "relay", "key", "sync", "mount", "access", "status", "completion"} {
		if !strings.Contains(out, "\n"+sub+"\t") && !strings.HasPrefix(out, sub+"\t") {
			t.Errorf("completing escalefs does not offer %s:\n%s", sub, out)
		}
	}
	out, _, _ = run(t, "__complete", "mount", "--log-l")
	if !strings.Contains(out, "--log-level") {
		t.Errorf("completing escalefs mount --log-l does not offer --log-level:\n%s", out)
	}
}

// Every command that runs has examples in its --help.
func TestEveryCommandHasExamples(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		switch c.Name() {
		case "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return // cobra's own
		}
		if c.Runnable() && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
	}
	walk(root)
	out, _, _ := run(t, "version", "--help")
	if !strings.Contains(out, "Examples:\n  escalefs version") {
		t.Errorf("version --help lacks its examples:\n%s", out)
	}
}
