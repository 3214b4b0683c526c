package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/config"
)

// Every key of a repository's table sets the flag of the same name of
// sync and mount, or is one that applyRepo handles itself.
func TestConfigKeysAreFlags(t *testing.T) {
	g := &globals{}
	for _, cmd := range []string{"sync", "mount"} {
		var flags map[string]bool
		switch cmd {
		case "sync":
			flags = flagNames(newSyncCmd(g).Flags())
		case "mount":
			flags = flagNames(newMountCmd(g).Flags())
		}
		for _, k := range config.Keys {
			if k.Global || slices.Contains(configKeysWithoutFlag, k.Name) || cmd == "sync" && slices.Contains(mountOnlyKeys, k.Name) {
				continue
			}
			if !flags[k.Name] {
				t.Errorf("key %s has no flag --%s in escalefs %s", k.Name, k.Name, cmd)
			}
		}
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, k := range config.Keys {
		if k.Global && root.PersistentFlags().Lookup(k.Name) == nil {
			t.Errorf("global key %s has no global flag --%s", k.Name, k.Name)
		}
	}
}

// docSection returns the text of the documentation page docs/page under
// heading, up to the next heading.
func docSection(t *testing.T, page, heading string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/%s has no section %s", page, heading)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	return section
}

// The key reference (docs/configuration.md) lists exactly the keys the
// config package knows.
func TestDocumentedConfigKeys(t *testing.T) {
	section := docSection(t, "configuration.md", "## Configuration keys")
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	var known []string
	for _, k := range config.Keys {
		known = append(known, k.Name)
	}
	for _, k := range known {
		if !slices.Contains(documented, k) {
			t.Errorf("the key reference lacks %s", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(known, k) {
			t.Errorf("the key reference lists %s, which the config package does not know", k)
		}
	}
	if len(documented) != len(known) {
		t.Errorf("the key reference lists %d keys, the config package knows %d", len(documented), len(known))
	}
}

// The binary runs from a configuration file: the table's values are the
// defaults of the flags, the command line overrides them, and a bad file
// is refused with its line.
func TestConfigEndToEnd(t *testing.T) {
	bin := buildEscalefs(t)
	kf, _ := keyFile(t)
	state := t.TempDir()
	escalefs := func(t *testing.T, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+state, "XDG_CONFIG_HOME="+t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	writeConfig := func(t *testing.T, content string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("sync from the file alone", func(t *testing.T) {
		relayDir, dir := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := writeConfig(t, "[work]\npath = \""+dir+"\"\nrelay = \"file://"+relayDir+"\"\nkey-file = \""+kf+
			"\"\nexclude = [\"*.log\"]\nrefresh = \"1m\"\n")
		out, code := escalefs(t, "--config", cfg, "sync", "--once")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		for _, want := range []string{"created a new repository at file://" + relayDir, "node=work", "msg=pushed path=hello.txt",
			"filter="} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(relayDir, "escale.json")); err != nil {
			t.Errorf("no repository on the relay: %v", err)
		}
		// A flag overrides the file: the node's name, here.
		out, code = escalefs(t, "--config", cfg, "sync", "--once", "--name", "desk")
		if code != 0 || !strings.Contains(out, "node=desk") || strings.Contains(out, "node=work") {
			t.Errorf("--name over the file: exit %d\n%s", code, out)
		}
		// So does a bad flag value, which is reported as the flag's.
		out, code = escalefs(t, "--config", cfg, "sync", "--once", "--refresh", "0s")
		if code == 0 || !strings.Contains(out, "--refresh 0s") {
			t.Errorf("--refresh 0s over the file: exit %d\n%s", code, out)
		}
	})

	t.Run("repo chosen among several", func(t *testing.T) {
		relayDir, dir := t.TempDir(), t.TempDir()
		cfg := writeConfig(t, "[a]\nrelay = \"/nonexistent\"\n[b]\npath = \""+dir+"\"\nrelay = \"file://"+relayDir+
			"\"\nencryption = false\n")
		out, code := escalefs(t, "--config", cfg, "sync", "--once")
		if code == 0 || !strings.Contains(out, "has 2 repositories (a, b): choose one with --repo NAME") {
			t.Errorf("two tables, no --repo: exit %d\n%s", code, out)
		}
		out, code = escalefs(t, "--config", cfg, "sync", "--once", "--repo", "b")
		if code != 0 || !strings.Contains(out, "node=b") {
			t.Errorf("--repo b: exit %d\n%s", code, out)
		}
		out, code = escalefs(t, "--config", cfg, "sync", "--once", "--repo", "c")
		if code == 0 || !strings.Contains(out, "--repo c: "+cfg+" has no table [c]; its repositories: a, b") {
			t.Errorf("--repo c: exit %d\n%s", code, out)
		}
	})

	for _, tc := range []struct {
		name, content string
		want          string // after the file's name
	}{
		{"unknown key", "[work]\nrelay = \"/r\"\n\nrefresh-rate = \"10s\"\n",
			`:4: [work] refresh-rate = "10s": unknown key "refresh-rate"`},
		{"wrong type", "[work]\nrelay = \"/r\"\npullers = \"two\"\n",
			`:3: [work] pullers = "two": expected an integer`},
		{"bad duration", "[work]\nrelay = \"/r\"\nrefresh = \"fast\"\n",
			`:3: [work] refresh = "fast": expected a duration such as "10s" or "5m"`},
		{"missing relay", "[work]\nencryption = false\n",
			`no relay for the repository [work] of `},
		{"unreadable key file", "[work]\nrelay = \"/r\"\nkey-file = \"/nonexistent/work.key\"\n",
			`:3: [work] key-file = "/nonexistent/work.key": file /nonexistent/work.key cannot be read`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.content)
			out, code := escalefs(t, "--config", cfg, "sync", "--once", t.TempDir())
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output\n%s\nwant it to contain %q", code, out, tc.want)
			}
			if tc.name != "missing relay" && !strings.Contains(out, cfg+tc.want) {
				t.Errorf("the error does not name %s: %s", cfg, out)
			}
		})
	}

	t.Run("missing config file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.toml")
		out, code := escalefs(t, "--config", missing, "sync", "--once", t.TempDir())
		if code == 0 || !strings.Contains(out, "--config "+missing+": the file does not exist") {
			t.Errorf("exit %d\n%s", code, out)
		}
		// The default file is optional: without one, flags alone.
		out, code = escalefs(t, "sync", "--once", "--relay", "file://"+t.TempDir(), "--no-encryption", t.TempDir())
		if code != 0 {
			t.Errorf("no configuration file: exit %d\n%s", code, out)
		}
	})
}

// Every command that talks to a repository takes --repo NAME, or the only
// table, for its relay, secret and options; and a node keeps the name it
// ran under when a later command gives none.
func TestEveryCommandReadsTheTable(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	key, _ := keyFile(t)
	relayDir := t.TempDir()
	dir := t.TempDir()
	cfgPath := writeFile(t, filepath.Join(t.TempDir(), "config.toml"), []byte(
		"[laptop]\nrelay = \"file://"+relayDir+"\"\nkey-file = \""+key+"\"\npath = \""+dir+"\"\nname = \"alice\"\n"+
			"[other]\nrelay = \"file:///nonexistent\"\nencryption = false\n"), 0o600)
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	c := func(args ...string) []string { return append([]string{"--config", cfgPath}, args...) }
	if _, errOut, code := run(t, c("sync", "--once", "--repo", "laptop")...); code != 0 {
		t.Fatalf("sync --once --repo laptop: exit %d\n%s", code, errOut)
	}
	archive := filepath.Join(t.TempDir(), "backup.tar")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nodes", "--repo", "laptop"}, "alice"},
		{[]string{"relay", "check", "--repo", "laptop"}, "relay works"},
		{[]string{"key", "age-identity", "--repo", "laptop", "--recipient"}, "age1"},
		{[]string{"backup", "--repo", "laptop", archive}, ""},
		{[]string{"fix", "--repo", "laptop", dir}, "node:       alice"},
		// The folder picks the table too.
		{[]string{"fix", dir}, "node:       alice"},
	} {
		out, errOut, code := run(t, c(tc.args...)...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("escalefs %s: exit %d, output lacks %q\n%s%s", strings.Join(tc.args, " "), code, tc.want, out, errOut)
		}
	}
	if fi, err := os.Stat(archive); err != nil || fi.Size() == 0 {
		t.Errorf("backup --repo laptop wrote no archive: %v", err)
	}
	_, errOut, code := run(t, c("nodes", "--repo", "nosuch")...)
	if code != exitUsage || !strings.Contains(errOut, "has no table [nosuch]; its repositories: laptop, other") {
		t.Errorf("nodes --repo nosuch: exit %d\n%s", code, errOut)
	}

	// Without a configuration file and without --name, a node keeps
	// the name it last ran under: fix and sync do not rename it after
	// the host.
	flags := []string{"--relay", "file://" + relayDir, "--key-file", key}
	out, errOut, code := run(t, append(append([]string{"fix"}, flags...), dir)...)
	if code != 0 || !strings.Contains(out, "node:       alice") {
		t.Errorf("fix without --name: exit %d\n%s%s", code, out, errOut)
	}
	writeFile(t, filepath.Join(dir, "b.txt"), []byte("b\n"), 0o644)
	if _, errOut, code := run(t, append(append([]string{"sync", "--once"}, flags...), dir)...); code != 0 {
		t.Fatalf("sync --once without --name: exit %d\n%s", code, errOut)
	}
	out, _, _ = run(t, append([]string{"nodes", "--json"}, flags...)...)
	if host, _ := os.Hostname(); strings.Contains(out, `"name": "`+host+`"`) || !strings.Contains(out, `"name": "alice"`) {
		t.Errorf("the node was renamed:\n%s", out)
	}
}
