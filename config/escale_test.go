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
		"passphrase-file": filepath.Join(dir, "work.passphrase"),
		"mode":            "upload",
		"extension":       []string{"txt", "odt"},
		"exclude-dir":     []string{".git"},
		"disk-quota":      "2048MiB", // Escale's GB is 1024 of its MB, which are MiB
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
	// The credential file's line is "me:secret" and the user is me: the
	// password is secret, for the caller to write to a private file.
	if w.Password != "secret" {
		t.Errorf("work password %q, want secret", w.Password)
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
		p.Values["mode"] != "conservative" || p.Values["disk-quota"] != "500MiB" {
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

// Configuration files as Escale's wizard and documentation write them, one
// per protocol Escale documents, convert to what Escale meant.
func TestConvertEscaleProtocols(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "escale"))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		values   map[string]any // keys checked, among others
		password string
		noRelay  bool
		notes    []string
	}
	for _, tc := range []struct {
		file   string
		tables map[string]want
	}{
		{"ftp.conf", map[string]want{"ftp": {
			values: map[string]any{"relay": "ftp://me@ftp.example.org/Escale%20Repository", "username": "me",
				"disk-quota": "2048MiB", "refresh": "10s", "path": "/home/me/Escale/ftp"},
			// The wizard's one-line "user:password" file.
			password: "pa%ss:word",
		}}},
		{"ftps.conf", map[string]want{"work": {
			values: map[string]any{"relay": "ftps://me@ftp.example.org/sync/work", "password": "s3cr%t",
				"disk-quota": "1280MiB", "name": "laptop", "encryption": false, "verify-ssl": true, "ssl-version": "1.2"},
			notes: []string{"the relay password is written in the table"},
		}}},
		{"webdav.conf", map[string]want{
			"my-cloud": {
				values:   map[string]any{"relay": "webdavs://me@cloud.example.com:8080/remote.php/webdav", "refresh": "300s"},
				password: "n3xtcl0ud",
			},
			"dav": {
				values: map[string]any{"relay": "webdavs://me@dav.example.org:8443/dav/escale",
					"password-file": filepath.Join(dir, "dav.credential")},
			},
		}},
		{"file.conf", map[string]want{"photos": {
			values: map[string]any{"relay": "file:///mnt/share/escale", "mode": "download",
				"disk-quota": "1536MiB"}, // 1,5 Go: Escale's Go is its GB, 1024 MiB
		}}},
		{"googledrive.conf", map[string]want{
			"googledrive": {
				values: map[string]any{"relay": "gdrive:///Escale%20Repository", "disk-quota": "2048MiB"},
				notes:  []string{"escalefs auth gdrive", `"drive binary" dropped`, `"index" dropped`},
			},
			"gd-mount": {values: map[string]any{"relay": "gdrive:///Escale%20Repository"}},
		}},
		{"rclone.conf", map[string]want{
			"dropbox": {noRelay: true, notes: []string{"protocol rclone: Escale reached this relay through rclone",
				"the table is not written until it has a relay"}},
			"ftp-too": {values: map[string]any{"relay": "ftp://me@ftp.example.org/"}},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			fh, err := os.Open(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			tables, err := ConvertEscale(fh, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(tables) != len(tc.tables) {
				t.Fatalf("%d tables, want %d", len(tables), len(tc.tables))
			}
			for _, tb := range tables {
				w, ok := tc.tables[tb.Name]
				if !ok {
					t.Errorf("unexpected table [%s]", tb.Name)
					continue
				}
				for k, v := range w.values {
					if !reflect.DeepEqual(tb.Values[k], v) {
						t.Errorf("[%s] %s = %#v, want %#v", tb.Name, k, tb.Values[k], v)
					}
				}
				if _, has := tb.Values["relay"]; has == w.noRelay {
					t.Errorf("[%s] relay %v, want none: %v", tb.Name, tb.Values["relay"], w.noRelay)
				}
				if tb.Password != w.password {
					t.Errorf("[%s] password %q, want %q", tb.Name, tb.Password, w.password)
				}
				joined := strings.Join(tb.Notes, "\n")
				for _, n := range w.notes {
					if !strings.Contains(joined, n) {
						t.Errorf("[%s] notes lack %q:\n%s", tb.Name, n, joined)
					}
				}
			}
		})
	}
}

// Escale's units: bytes upper case, bits lower case, octets in French, MB
// without a unit; its MB are MiB.
func TestEscaleQuota(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2GB", "2048MiB"}, {"10Gb", "1280MiB"}, {"500", "500MiB"}, {"1,5 Go", "1536MiB"}, {"3 T", "3145728MiB"},
		{"10Kb", "1280"}, {"1.5MB", "1572864"}, {"2GiB", "2048MiB"},
	} {
		if got, err := escaleQuota(tc.in); err != nil || got != tc.want {
			t.Errorf("escaleQuota(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"2gb", "lots", "2 XB"} {
		if got, err := escaleQuota(bad); err == nil {
			t.Errorf("escaleQuota(%q) = %q, want an error", bad, got)
		}
	}
}
