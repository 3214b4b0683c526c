package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetKeys(t *testing.T) {
	const text = "# my repositories\n[one]\nrelay = \"file:///a\"  # the NAS\npath = \"/x\"\nverify-ssl = true\n" +
		"include = [\n  \"*.txt\",\n]\n\n[two]\nrelay = 'ftp://h/d'\npath = \"/y\"\n"
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	repo := func() *Repo {
		t.Helper()
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := c.Repo("one")
		if !ok {
			t.Fatal("no [one]")
		}
		return r
	}
	unchanged := func(what string) {
		t.Helper()
		if data, _ := os.ReadFile(path); string(data) != text {
			t.Errorf("%s changed the file:\n%s", what, data)
		}
	}

	// Refused edits leave the file as it was.
	if err := repo().SetKeys(map[string]string{"include": `["*.md"]`}, "relay"); err == nil || !strings.Contains(err.Error(), "on one line") {
		t.Errorf("a key spread over lines: %v", err)
	}
	unchanged("a key spread over lines")
	if err := repo().SetKeys(map[string]string{"s3-endpoint": `""`}, "relay"); err == nil || !strings.Contains(err.Error(), "would not load") {
		t.Errorf("an invalid value: %v", err)
	}
	unchanged("an invalid value")
	if err := repo().SetKeys(map[string]string{"s3-region": `"x"`}, "mountpoint"); err == nil {
		t.Error("keys added after a key the table does not set")
	}
	unchanged("a missing anchor")

	err := repo().SetKeys(map[string]string{"relay": `"s3://b/p"`, "s3-endpoint": `"http://127.0.0.1:9000"`, "verify-ssl": "false"}, "relay")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := strings.Replace(text, "relay = \"file:///a\"  # the NAS\n", "relay = \"s3://b/p\"  # the NAS\ns3-endpoint = \"http://127.0.0.1:9000\"\n", 1)
	want = strings.Replace(want, "verify-ssl = true\n", "verify-ssl = false\n", 1)
	if string(data) != want {
		t.Errorf("after SetKeys:\n%s\nwant:\n%s", data, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after SetKeys: %v %v, want 0640", fi, err)
	}
	r := repo()
	if v, _ := r.String("s3-endpoint"); v != "http://127.0.0.1:9000" || r.Values["verify-ssl"] != false {
		t.Errorf("read back: %v", r.Values)
	}
}
