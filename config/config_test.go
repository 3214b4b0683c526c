package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// write writes content to config.toml in a new directory, with mode perm.
func write(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

var full = `# every key
[global]
log-file = "escalefs.log"
log-max-size = "10MiB"
log-max-backups = 3
log-level = "info"

[work]
path = "~/Work"
mountpoint = "/mnt/work"
relay = "ftps://me@ftp.example.org/work"
name = "laptop"
username = "me"
password = "s3cret"
netrc = "netrc"
credentials = "/etc/drive.json"
encryption = true
key-file = "work.key"
certificate = "client.pem"
certificate-key = "client.key"
ca-file = "ca.pem"
verify-ssl = false
ssl-version = "1.2"
pin-sha256 = "3F:9A` + strings.Repeat("00", 30) + `"
ssh-key = "id_ed25519"
known-hosts = "known_hosts"
host-key-sha256 = "SHA256:n4EzUQk"
mode = "push-only"
refresh = "1m"
pullers = 2
lock-timeout = "-1h"
stop-grace = "0s"
disk-quota = "2GB"
min-free = "5%"
versions = "simple"
versions-keep = 5
versions-max-age = "2160h"
versions-max-size = "5GiB"
versions-local = true
chunks = false
include = ["*.txt", "/IMG_/"]
exclude = ["*.log"]
extension = ["jpg", ".png"]
include-dir = ["docs"]
exclude-dir = [
  "node_modules",
  "build",
]
no-default-ignores = true
checksum = "sha256"
maintainer = "me@example.org"
max-connections = 8
bwlimit = "5MB:20MB"
timeout = "45s"
s3-endpoint = "http://127.0.0.1:9000"
s3-region = "eu-west-1"

[photos]
path = "/srv/photos"
relay = "/mnt/share/relay"
password-file = "pw"
passphrase-file = "/etc/pass"
disk-quota = 500000
`

func TestLoadEveryKey(t *testing.T) {
	p := write(t, full, 0o600)
	dir := filepath.Dir(p)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Global.LogFile != filepath.Join(dir, "escalefs.log") || c.Global.LogMaxSize != 10<<20 ||
		c.Global.LogMaxBackups != 3 || c.Global.LogLevel != "info" {
		t.Errorf("global: %+v", c.Global)
	}
	if got := c.Names(); !slices.Equal(got, []string{"work", "photos"}) {
		t.Fatalf("repositories %q", got)
	}
	w, _ := c.Repo("work")
	want := map[string]any{
		"path":               filepath.Join(home, "Work"),
		"mountpoint":         "/mnt/work",
		"relay":              "ftps://me@ftp.example.org/work",
		"name":               "laptop",
		"username":           "me",
		"password":           "s3cret",
		"netrc":              filepath.Join(dir, "netrc"),
		"credentials":        "/etc/drive.json",
		"encryption":         true,
		"key-file":           filepath.Join(dir, "work.key"),
		"certificate":        filepath.Join(dir, "client.pem"),
		"certificate-key":    filepath.Join(dir, "client.key"),
		"ca-file":            filepath.Join(dir, "ca.pem"),
		"verify-ssl":         false,
		"ssl-version":        "1.2",
		"pin-sha256":         "3F:9A" + strings.Repeat("00", 30),
		"ssh-key":            filepath.Join(dir, "id_ed25519"),
		"known-hosts":        filepath.Join(dir, "known_hosts"),
		"host-key-sha256":    "SHA256:n4EzUQk",
		"s3-endpoint":        "http://127.0.0.1:9000",
		"s3-region":          "eu-west-1",
		"mode":               "push-only",
		"refresh":            time.Minute,
		"pullers":            2,
		"lock-timeout":       -time.Hour,
		"stop-grace":         time.Duration(0),
		"disk-quota":         int64(2_000_000_000),
		"min-free":           "5%",
		"versions":           "simple",
		"versions-keep":      5,
		"versions-max-age":   2160 * time.Hour,
		"versions-max-size":  "5GiB",
		"versions-local":     true,
		"chunks":             false,
		"include":            []string{"*.txt", "/IMG_/"},
		"exclude":            []string{"*.log"},
		"extension":          []string{"jpg", ".png"},
		"include-dir":        []string{"docs"},
		"exclude-dir":        []string{"node_modules", "build"},
		"no-default-ignores": true,
		"checksum":           "sha256",
		"maintainer":         "me@example.org",
		"max-connections":    8,
		"bwlimit":            "5MB:20MB",
		"timeout":            45 * time.Second,
	}
	for k, v := range want {
		if got := w.Values[k]; !reflect.DeepEqual(got, v) {
			t.Errorf("[work] %s = %#v, want %#v", k, got, v)
		}
	}
	for _, k := range Keys {
		if _, ok := want[k.Name]; !ok && !k.Global && k.Name != "passphrase-file" && k.Name != "password-file" {
			t.Errorf("key %s is not covered by this test", k.Name)
		}
	}
	if len(w.Values) != len(want) {
		t.Errorf("[work] has %d values, want %d", len(w.Values), len(want))
	}
	if w.Lines["refresh"] != 29 || w.Line != 8 {
		t.Errorf("[work] at line %d, refresh at line %d; want 8, 29", w.Line, w.Lines["refresh"])
	}
	if w.Raw["refresh"] != `"1m"` || w.Raw["password"] != "(hidden)" {
		t.Errorf("raw refresh %q, password %q", w.Raw["refresh"], w.Raw["password"])
	}
	ph, _ := c.Repo("photos")
	if ph.Values["disk-quota"] != int64(500000) || ph.Values["relay"] != "/mnt/share/relay" ||
		ph.Values["password-file"] != filepath.Join(dir, "pw") || ph.Values["passphrase-file"] != "/etc/pass" {
		t.Errorf("[photos]: %v", ph.Values)
	}
}

func TestSizesAndDurations(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want int64
	}{
		{`"2GB"`, 2e9}, {`"500MiB"`, 500 << 20}, {`"1.5 KB"`, 1500}, {`0`, 0}, {`1000`, 1000}, {`"0"`, 0},
	} {
		c, err := Parse("c.toml", []byte("[r]\ndisk-quota = "+tc.val+"\n"))
		if err != nil {
			t.Errorf("disk-quota = %s: %v", tc.val, err)
			continue
		}
		if got := c.Repos[0].Values["disk-quota"]; got != tc.want {
			t.Errorf("disk-quota = %s: %v, want %d", tc.val, got, tc.want)
		}
	}
	for _, tc := range []struct {
		val  string
		want time.Duration
	}{
		{`"10s"`, 10 * time.Second}, {`"10m"`, 10 * time.Minute}, {`"72h"`, 72 * time.Hour}, {`"1h30m"`, 90 * time.Minute},
	} {
		c, err := Parse("c.toml", []byte("[r]\nrefresh = "+tc.val+"\n"))
		if err != nil {
			t.Errorf("refresh = %s: %v", tc.val, err)
			continue
		}
		if d, _ := c.Repos[0].DurationOf("refresh"); d != tc.want {
			t.Errorf("refresh = %s: %v, want %v", tc.val, d, tc.want)
		}
	}
}

func TestEmptyAndGlobalOnly(t *testing.T) {
	c, err := Parse("c.toml", []byte("# nothing yet\n"))
	if err != nil || len(c.Repos) != 0 {
		t.Errorf("empty file: %v, %v", c, err)
	}
	c, err = Parse("c.toml", []byte("[global]\nlog-level = \"debug\"\n"))
	if err != nil || len(c.Repos) != 0 || c.Global.LogLevel != "debug" || c.Global.Set["log-level"] != 2 {
		t.Errorf("[global] only: %+v, %v", c, err)
	}
}

// Every bad file gets an error naming the file, the line, the key and the
// form expected.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      string // the whole message, after "c.toml:"
	}{
		{"unknown key", "[work]\nrelay = \"/r\"\nrefresh-rate = \"10s\"\n",
			`3: [work] refresh-rate = "10s": unknown key "refresh-rate"; see the key reference in docs/configuration.md`},
		{"global key in a repository", "[work]\nlog-file = \"x\"\n",
			`2: [work] log-file = "x": unknown key "log-file"; it belongs in [global]`},
		{"repository key in global", "[global]\nrelay = \"/r\"\n",
			`2: [global] relay = "/r": unknown key "relay" in [global]; it belongs in a repository's table`},
		{"wrong type", "[work]\npullers = \"two\"\n",
			`2: [work] pullers = "two": expected an integer`},
		{"wrong type list", "[work]\nexclude = \"*.log\"\n",
			`2: [work] exclude = "*.log": expected a list of strings such as ["*.tmp", "*.log"]`},
		{"wrong type bool", "[work]\nverify-ssl = \"no\"\n",
			`2: [work] verify-ssl = "no": expected true or false`},
		{"duration without quotes", "[work]\nrefresh = 10\n",
			`2: [work] refresh = 10: expected a duration such as "10s" or "5m" (in quotes)`},
		{"bad duration", "\n\n[work]\nrefresh = \"fast\"\n",
			`4: [work] refresh = "fast": expected a duration such as "10s" or "5m"`},
		{"zero refresh", "[work]\nrefresh = \"0s\"\n",
			`2: [work] refresh = "0s": expected a positive duration such as "10s" or "5m"`},
		{"bad versions", "[work]\nversions = \"weekly\"\n",
			`2: [work] versions = "weekly": expected staggered, simple or off`},
		{"bad room", "[work]\nmin-free = \"lots\"\n",
			`2: [work] min-free = "lots": expected a size such as "1GiB" or "500MB", a percentage of the disk such as "5%"`},
		{"bad size", "[work]\ndisk-quota = \"2XB\"\n",
			`2: [work] disk-quota = "2XB": expected a size such as "500MB" or "2GiB"`},
		{"negative size", "[work]\ndisk-quota = -5\n",
			`2: [work] disk-quota = -5: expected a size`},
		{"bad bandwidth limit", "[work]\nbwlimit = \"fast\"\n",
			`2: [work] bwlimit = "fast": expected bytes per second as a size, such as 10MB`},
		{"unknown mode", "[work]\nmode = \"sideways\"\n",
			`2: [work] mode = "sideways": expected shared, upload (or push-only), download (or pull-only) or conservative`},
		{"bad URL scheme", "[work]\nrelay = \"nosuch://host/x\"\n",
			`2: [work] relay = "nosuch://host/x": unknown scheme "nosuch": expected a relay URL such as ftps://user@host/dir`},
		{"URL without scheme", "[work]\nrelay = \"host/x\"\n",
			`2: [work] relay = "host/x": expected a relay URL`},
		{"checksum", "[work]\nchecksum = \"sha512\"\n",
			`2: [work] checksum = "sha512": expected "sha256", the only checksum algorithm escalefs uses`},
		{"maintainer", "[work]\nmaintainer = \"nobody\"\n",
			`2: [work] maintainer = "nobody": expected an email address`},
		{"ssl version", "[work]\nssl-version = \"TLSv1.2\"\n",
			`2: [work] ssl-version = "TLSv1.2": expected one of 1.0, 1.1, 1.2, 1.3`},
		{"pin", "[work]\npin-sha256 = \"abc\"\n",
			`2: [work] pin-sha256 = "abc": expected a SHA-256 fingerprint`},
		{"log level", "[global]\nlog-level = \"loud\"\n",
			`2: [global] log-level = "loud": expected one of debug, info, warn, error`},
		{"negative backups", "[global]\nlog-max-backups = -1\n",
			`2: [global] log-max-backups = -1: expected 0 or a positive integer`},
		{"key outside a table", "relay = \"/r\"\n",
			`1: relay = "/r": key outside a table`},
		{"nested table", "[work]\n[work.sub]\n",
			`2: [work.sub]: expected a table [NAME], one per repository, or [global]: tables do not nest`},
		{"array of tables", "[[work]]\n",
			`1: [[work]]: expected a table [NAME]`},
		{"bad table name", "[\"my repo\"]\n",
			`1: [my repo]: expected a repository name`},
		{"syntax", "[work]\nrelay = \"/r\n",
			`2: not valid TOML`},
		{"two secrets", "[work]\nkey-file = \"/k\"\npassphrase-file = \"/p\"\n",
			`2: [work] key-file = "/k": passphrase-file and key-file both given`},
		{"secret without encryption", "[work]\nencryption = false\nkey-file = \"/k\"\n",
			`2: [work] encryption = false: encryption = false with a passphrase-file or key-file`},
		{"password hidden", "[work]\npassword = 5\n",
			`2: [work] password: expected a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), "c.toml:"+tc.want) {
				t.Errorf("error\n%s\nwant it to start with\nc.toml:%s", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is no *Error", err)
			}
		})
	}
}

func TestPasswordNeedsPrivateFile(t *testing.T) {
	doc := "[work]\nrelay = \"ftp://me@host/x\"\npassword = \"s3cret\"\n"
	p := write(t, doc, 0o644)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p+":3: [work] password: the file holds a password but has mode 0644") ||
		!strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("password in a 0644 file: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	p = write(t, doc, 0o600)
	if _, err := Load(p); err != nil {
		t.Errorf("password in a 0600 file: %v", err)
	}
	// Without a password any mode will do.
	p = write(t, "[work]\nrelay = \"/r\"\n", 0o644)
	if _, err := Load(p); err != nil {
		t.Errorf("0644 file without a password: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "work.key")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := write(t, "[work]\nkey-file = \""+key+"\"\n[other]\nkey-file = \"missing.key\"\n", 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := c.Repo("work")
	if err := w.CheckFiles(); err != nil {
		t.Errorf("readable key file: %v", err)
	}
	o, _ := c.Repo("other")
	missing := filepath.Join(filepath.Dir(p), "missing.key")
	err = o.CheckFiles()
	if err == nil || !strings.HasPrefix(err.Error(), p+`:4: [other] key-file = "missing.key": file `+missing+" cannot be read") {
		t.Errorf("missing key file: %v", err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(key, 0); err != nil {
			t.Fatal(err)
		}
		if err := w.CheckFiles(); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable key file: %v", err)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if p, _ := DefaultPath(); p != "/xdg/escalefs/config.toml" {
		t.Errorf("with $XDG_CONFIG_HOME: %s", p)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/me")
	if p, _ := DefaultPath(); p != "/home/me/.config/escalefs/config.toml" {
		t.Errorf("without $XDG_CONFIG_HOME: %s", p)
	}
}
