package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serviceUnits are the systemd units in contrib/, with the command each
// runs.
var serviceUnits = map[string]string{
	"escalefs@.service":      "mount",
	"escalefs-sync@.service": "sync",
}

// unitFile is a parsed systemd unit: section, then key, then values (a key
// may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is neither a section nor key=value in one", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %q, want one value", section, key, v)
	}
	return v[0]
}

// The units run an escalefs command that exists, with flags it takes, and
// restart it on failure.
func TestServiceUnits(t *testing.T) {
	for name, command := range serviceUnits {
		t.Run(name, func(t *testing.T) {
			u := parseUnit(t, filepath.Join("..", "..", "contrib", name))
			line := strings.Fields(u.one(t, "Service", "ExecStart"))
			if len(line) < 2 || line[0] != "/usr/bin/env" || line[1] != "escalefs" {
				t.Fatalf("ExecStart runs %q, want escalefs found through /usr/bin/env, wherever it is installed", line)
			}
			// The places the install instructions put escalefs are searched.
			path := u.one(t, "Service", "Environment")
			for _, dir := range []string{"%h/.local/bin", "%h/go/bin", "/usr/local/bin"} {
				if !strings.Contains(path, dir) {
					t.Errorf("Environment=%s does not search %s", path, dir)
				}
			}
			args := make([]string, 0, len(line)-2)
			for _, a := range line[2:] {
				args = append(args, strings.ReplaceAll(a, "%i", "work"))
			}
			root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == root || !cmd.Runnable() {
				t.Fatalf("ExecStart %q names no escalefs command: %v", args, err)
			}
			if cmd.Name() != command {
				t.Errorf("ExecStart runs escalefs %s, want escalefs %s", cmd.Name(), command)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("ExecStart %q: escalefs %s rejects its flags: %v", args, cmd.Name(), err)
			}
			if cmd.Flags().Lookup("repo") == nil || cmd.Flags().Lookup("repo").Value.String() != "work" {
				t.Errorf("ExecStart %q does not name the repository with --repo %%i", args)
			}
			if command == "mount" {
				if fg := cmd.Flags().Lookup("foreground"); fg == nil || fg.Value.String() != "true" {
					t.Errorf("ExecStart %q does not keep the mount in the foreground (-f), as Type=simple needs", args)
				}
			}
			for _, kv := range [][3]string{
				{"Service", "Type", "simple"},
				{"Service", "Restart", "on-failure"},
				{"Service", "RestartSec", "30"},
				{"Install", "WantedBy", "default.target"},
			} {
				if got := u.one(t, kv[0], kv[1]); got != kv[2] {
					t.Errorf("[%s] %s=%s, want %s", kv[0], kv[1], got, kv[2])
				}
			}
		})
	}
}

// systemd-analyze verify finds nothing wrong with the units (run with a
// program that exists in place of escalefs).
func TestServiceUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name := range serviceUnits {
		data, err := os.ReadFile(filepath.Join("..", "..", "contrib", name))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/usr/bin/env escalefs"), []byte(self))
		instance := filepath.Join(dir, strings.Replace(name, "@.", "@work.", 1))
		if err := os.WriteFile(instance, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", instance).CombinedOutput()
		// Other units of the host may draw warnings too: only this one's count.
		if err != nil || bytes.Contains(out, []byte(filepath.Base(instance))) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}
