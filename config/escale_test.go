package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConvertEscale(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "work.credential"), []byte("me:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "work.passphrase"), []byte("k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ini := `# Escale configuration
refresh = 10
lock timeout = 3600

[work repo]
local path = /home/me/Work
host address = ftp.example.org
port = 2121
relay dir = sync
protocol = ftps
user = me
password = work.credential
passphrase = work.passphrase
encryption = on
push only = yes
file extension = txt, odt
exclude directories = .git
disk quota = 2GB
puller count = 2
checksum cache = on
index = 1
verify ssl = no
ssl version = TLSv1.2
maintainer = admin@example.org

[photos]
relay address = /mnt/share/relay
local path: ~/Pictures
refresh = no
mode = protective
quota = 500
checksum = sha512
mystery option = 3
`
	tables, err := ConvertEscale(strings.NewReader(ini), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 {
		t.Fatalf("%d tables, want 2", len(tables))
	}
	w := tables[0]
	if w.Name != "work-repo" {
		t.Errorf("name %q", w.Name)
	}
	want := map[string]any{
		"path":            "/home/me/Work",
		"relay":           "ftps://me@ftp.example.org:2121/sync",
		"username":        "me",
		"password-file":   filepath.Join(dir, "work.credential"),
		"passphrase-file": filepath.Join(dir, "work.passphrase"),
		"mode":            "upload",
		"extension":       []string{"txt", "odt"},
		"exclude-dir":     []string{".git"},
		"disk-quota":      "2GB",
		"pullers":         2,
		"verify-ssl":      false,
		"ssl-version":     "1.2",
		"maintainer":      "admin@example.org",
		"refresh":         "10s",
		"lock-timeout":    "3600s",
	}
	if !reflect.DeepEqual(w.Values, want) {
		t.Errorf("work values:\n got %v\nwant %v", w.Values, want)
	}
	joined := strings.Join(w.Notes, "\n")
	for _, n := range []string{"[work repo] is table [work-repo]", `"checksum cache" dropped`, `"index" dropped`, "encryption = on: escalefs encrypts with its own format"} {
		if !strings.Contains(joined, n) {
			t.Errorf("work notes lack %q:\n%s", n, joined)
		}
	}
	p := tables[1]
	home, _ := os.UserHomeDir()
	if p.Values["relay"] != "file:///mnt/share/relay" || p.Values["path"] != filepath.Join(home, "Pictures") ||
		p.Values["mode"] != "conservative" || p.Values["disk-quota"] != "500MB" {
		t.Errorf("photos values: %v", p.Values)
	}
	if _, ok := p.Values["refresh"]; ok {
		t.Errorf("refresh = no gave %v", p.Values["refresh"])
	}
	joined = strings.Join(p.Notes, "\n")
	for _, n := range []string{`"mystery option" is not an Escale option`, "checksum = sha512", "refresh = no"} {
		if !strings.Contains(joined, n) {
			t.Errorf("photos notes lack %q:\n%s", n, joined)
		}
	}

	for _, bad := range []string{"just text\n[a]\n", "[unclosed\n", "refresh = 1\n"} {
		if _, err := ConvertEscale(strings.NewReader(bad), dir); err == nil {
			t.Errorf("%q converted without error", bad)
		}
	}
}
