package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// Every kind of failure exits with its own status (docs/commands.md: "Exit codes").
func TestExitCodes(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	key, _ := keyFile(t)
	other, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", key, "--name", "alice", dir); code != 0 {
		t.Fatalf("the first sync: exit %d\n%s", code, errOut)
	}
	badCfg := writeFile(t, filepath.Join(t.TempDir(), "config.toml"), []byte("[x]\nrefresh = \"soon\"\n"), 0o600)
	dead := fmt.Sprintf("ftp://me@127.0.0.1:%d/relay", testserver.FreePort(t))
	ftpd := testserver.StartPureFTPd(t)
	ftpURL, _ := ftpd.NewRelayDir(t, "ftp")
	wrongPW := *ftpURL
	wrongPW.User = url.UserPassword(ftpd.User, "not-the-password")

	// A file larger than the disk quota can never be pushed.
	big := t.TempDir()
	writeFile(t, filepath.Join(big, "big.bin"), make([]byte, 64<<10), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"success", []string{"sync", "--once", "--relay", relay, "--key-file", key, dir}, 0, ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", []string{"sync", "--frobnicate"}, exitUsage, "unknown flag: --frobnicate"},
		{"bad flag value", []string{"sync", "--relay", relay, "--key-file", key, "--refresh", "0s", dir}, exitUsage, "--refresh 0s"},
		{"missing argument", []string{"backup", "--relay", relay}, exitUsage, "accepts 1 arg"},
		{"bad configuration", []string{"--config", badCfg, "status"}, exitUsage, "refresh"},
		{"unknown relay scheme", []string{"relay", "check", "nosuch://x/y"}, exitUsage, "unknown scheme"},
		{"missing folder", []string{"sync", "--relay", relay, "--key-file", key, filepath.Join(dir, "nosuch")}, exitUsage, "does not exist"},
		{"relay unreachable", []string{"sync", "--once", "--timeout", "5s", "--relay", dead, "--key-file", key, t.TempDir()},
			exitRelay, "likely cause: host unreachable"},
		{"login refused", []string{"nodes", "--relay", wrongPW.String(), "--key-file", key}, exitRelay, "authentication failed"},
		{"wrong secret", []string{"sync", "--once", "--relay", relay, "--key-file", other, t.TempDir()}, exitSecret, "wrong passphrase or key"},
		{"never pushed", []string{"sync", "--once", "--relay", relay, "--key-file", key, "--name", "bob", "--disk-quota", "16KiB", big},
			exitUnsynced, "big.bin (64.0 KiB) is not pushed: larger than the disk quota"},
		{"status of a node with a file never pushed", []string{"status", big}, exitUnsynced, "never pushed: big.bin"},
		{"status of a node that is well", []string{"status", dir}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("escalefs %s: exit %d, want %d with %q\n%s%s", strings.Join(tc.args, " "), code, tc.code, tc.want, out, errOut)
			}
		})
	}

}

// escalefs status --json holds what the text shows, field for field, and
// every field it has is documented in docs/commands.md.
func TestStatusJSONMatchesText(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.bin"), make([]byte, 64<<10), 0o644)
	writeFile(t, filepath.Join(dir, "small.txt"), []byte("small\n"), 0o644)
	writeFile(t, filepath.Join(dir, "notes.sync-conflict-20261206-101010-bob.txt"), []byte("theirs\n"), 0o644)
	args := []string{"sync", "--once", "--relay", relay, "--key-file", key, "--name", "alice", "--disk-quota", "48KiB"}
	if _, errOut, code := run(t, append(args, dir)...); code != exitUnsynced {
		t.Fatalf("sync --once: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", key, "--name", "bob", t.TempDir()); code != 0 {
		t.Fatalf("bob: exit %d\n%s", code, errOut)
	}
	writeFile(t, filepath.Join(dir, "later.txt"), []byte("later\n"), 0o644)
	run(t, append(args, dir)...)
	text, _, code := run(t, "status", dir)
	if code != exitUnsynced {
		t.Fatalf("status: exit %d\n%s", code, text)
	}
	out, _, code := run(t, "status", "--json", dir)
	if code != exitUnsynced {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	var nodes []nodeJSON
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	n := nodes[0]
	// Each line of the text, and the JSON field that holds it.
	for label, v := range map[string]string{
		"node:":         n.Node,
		"relay:":        n.Relay,
		"state:":        n.State,
		"never pushed:": n.Unpushable[0].Path,
		"problem:":      n.Problem,
		"peers:":        n.Peers[0].Name,
		"conflicts:":    n.Conflicts[0],
		"this run:":     fmt.Sprintf("pushed %d file", n.Session.FilesPushed),
		"relay use:":    fmt.Sprint(*n.RelayUsage),
		"queue:":        fmt.Sprintf("%d file", n.Queue.Files),
	} {
		line := ""
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), label) {
				line = l
			}
		}
		if line == "" || v == "" || !strings.Contains(line, v) {
			t.Errorf("the text's %q line %q does not show the JSON's %q", label, line, v)
		}
	}

	section := docSection(t, "commands.md", "## status --json")
	for _, f := range jsonFields(nodeJSON{}) {
		if !strings.Contains(section, "`"+f+"`") {
			t.Errorf("the status --json section of docs/commands.md does not document %s", f)
		}
	}
}

// jsonFields lists the JSON names of v's fields, those of nested objects
// as parent.child ("queue.files", "peers.name").
func jsonFields(v any) []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
			return
		}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			out = append(out, prefix+name)
			walk(t.Field(i).Type, prefix+name+".")
		}
	}
	walk(reflect.TypeOf(v), "")
	return out
}
