package main

import "github.com/spf13/cobra"

// completionExamples are the examples of cobra's completion command and of
// its subcommand for each shell: how to load or install the script.
var completionExamples = map[string]string{
	"completion": "  escalefs completion bash > ~/.local/share/bash-completion/completions/escalefs\n" +
		"  escalefs completion zsh > \"${fpath[1]}/_escalefs\"\n" +
		"  escalefs completion fish > ~/.config/fish/completions/escalefs.fish",
	"bash": "  source <(escalefs completion bash)\n" +
		"  escalefs completion bash > ~/.local/share/bash-completion/completions/escalefs",
	"zsh": "  autoload -U compinit && compinit\n" +
		"  escalefs completion zsh > \"${fpath[1]}/_escalefs\"",
	"fish":       "  escalefs completion fish > ~/.config/fish/completions/escalefs.fish",
	"powershell": "  escalefs completion powershell | Out-String | Invoke-Expression",
}

// addCompletion adds cobra's completion command (bash, zsh, fish and
// powershell scripts, which complete commands and flags by asking escalefs
// itself) to root now rather than when it runs, with examples.
func addCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = completionExamples["completion"]
		for _, sh := range c.Commands() {
			sh.Example = completionExamples[sh.Name()]
		}
	}
}
