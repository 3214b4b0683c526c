package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runIn(t, nil, args...)
}

// escalefs version and --version print the same semantic version, with
// the commit and the Go version.
func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !regexp.MustCompile(`^escalefs \d+\.\d+\.\d+\S* \(commit \S+, go\S+\)\n$`).MatchString(out) {
		t.Errorf("version: %q, exit %d", out, code)
	}
	flag, _, code := run(t, "--version")
	if code != 0 || flag != out {
		t.Errorf("--version: %q, exit %d; want %q", flag, code, out)
	}
	pseudo := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206183000-116dd75cf12a"}}
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		ldVersion, ldCommit string
		info                *debug.BuildInfo
		want                string
	}{
		{"v0.11.0", "116dd756806b", nil, "0.11.0 (commit 116dd756806b)"},
		{"v0.11.0-3-g116dd75", "116dd756806b-dirty", nil, "0.11.0-3-g116dd75 (commit 116dd756806b-dirty)"},
		{"", "", pseudo, release + "-dev (commit 116dd75cf12a, go1.26.8)"},
		{"", "", tagged, "1.2.3 (commit 0123456789ab-dirty, go1.26.8)"},
		{"", "", nil, release + "-dev (commit unknown)"},
	} {
		if got := formatVersion(tc.ldVersion, tc.ldCommit, tc.info); got != tc.want {
			t.Errorf("formatVersion(%q, %q, %v) = %q, want %q", tc.ldVersion, tc.ldCommit, tc.info, got, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	out, _, code := run(t, "--help")
	if code != 0 || !strings.Contains(out, "relay") || !strings.Contains(out, "version") {
		t.Errorf("--help: exit %d, output %q", code, out)
	}
	out, _, code = run(t, "relay", "check", "--help")
	if code != 0 || !strings.Contains(out, "ftps://user@host") {
		t.Errorf("relay check --help: exit %d, output %q", code, out)
	}
}

func TestRelayCheckFile(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, "relay", "check", "file://"+dir)
	if code != 0 {
		t.Fatalf("relay check of a directory: exit %d\n%s%s", code, out, errOut)
	}
	for _, step := range []string{"connect", "put", "list", "get", "get range", "rename", "delete"} {
		if !strings.Contains(out, "ok   "+step) {
			t.Errorf("output lacks a line for step %q:\n%s", step, out)
		}
	}
	if !strings.Contains(out, "relay works") {
		t.Errorf("output lacks the verdict:\n%s", out)
	}
}

func TestRelayCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "check", "nosuch://host/x"}, `unknown scheme "nosuch"`},
		{[]string{"relay", "check", "file://host/x"}, "has no host"},
		{[]string{"relay", "check"}, "missing URL: give the relay's URL, or --repo NAME"},
		{[]string{"relay", "check", "--timeout", "soon", "file:///x"}, `invalid argument "soon"`},
	} {
		out, errOut, code := run(t, tc.args...)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%q: exit %d, output %q, want a failure mentioning %q", tc.args, code, out+errOut, tc.want)
		}
	}
}

// relay check against a real FTP server: it works with the right password,
// and with a wrong one it names the step and the likely cause without
// showing the password.
func TestRelayCheckFTP(t *testing.T) {
	s := testserver.StartPureFTPd(t)
	u, _ := s.NewRelayDir(t, "ftp")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "relay", "check", "--password-file", pw, u.String())
	if code != 0 || !strings.Contains(out, "relay works") {
		t.Fatalf("relay check with the right password: exit %d\n%s%s", code, out, errOut)
	}
	wrong := "wrong-Secret-42"
	bad := *u
	bad.User = url.UserPassword(s.User, wrong)
	out, errOut, code = run(t, "relay", "check", bad.String())
	if code != exitRelay {
		t.Fatalf("relay check with a wrong password: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "FAIL connect") || !strings.Contains(errOut, "likely cause: the login was refused") {
		t.Errorf("wrong password: output does not name the step and cause:\n%s%s", out, errOut)
	}
	if strings.Contains(out+errOut, wrong) {
		t.Errorf("the output shows the password:\n%s%s", out, errOut)
	}
	// A port where nothing listens.
	dead := *u
	dead.Host = fmt.Sprintf("127.0.0.1:%d", testserver.FreePort(t))
	out, errOut, code = run(t, "relay", "check", "--timeout", "5s", "--password-file", pw, dead.String())
	if code != exitRelay || !strings.Contains(errOut, "likely cause: host unreachable") {
		t.Errorf("closed port: exit %d\n%s%s", code, out, errOut)
	}
}
