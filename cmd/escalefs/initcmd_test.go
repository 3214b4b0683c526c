package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/escalefs/escalefs/internal/testserver"
)

// escalefs init from flags alone: without the license accepted it refuses;
// with it, it makes the repository, writes a 0600 table that escalefs sync
// then runs from, and a second node joins with --join.
func TestInitFlags(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "escalefs", "config.toml")
	relay := "file://" + t.TempDir()
	dir := t.TempDir()

	_, errOut, code := run(t, "init", "--relay", relay, "--name", "laptop", "--path", dir)
	if code == 0 || !strings.Contains(errOut, "--accept-license") {
		t.Fatalf("init without the license accepted: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(cfg); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused init wrote the configuration: %v", err)
	}

	_, errOut, code = run(t, "init", "--join", "--accept-license", "--relay", relay, "--name", "laptop", "--path", dir)
	if code == 0 || !strings.Contains(errOut, "holds no repository to join") {
		t.Fatalf("init --join of an empty relay: exit %d\n%s", code, errOut)
	}

	out, errOut, code := run(t, "init", "--accept-license", "--relay", relay, "--name", "laptop", "--path", dir)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "init", out, "relay works", "Generated the repository key", "Created a new repository",
		"Wrote [laptop] to "+cfg, "escalefs sync --repo laptop")
	fi, err := os.Stat(cfg)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("configuration file: %v %v, want mode 0600", fi, err)
	}
	text, _ := os.ReadFile(cfg)
	wantAll(t, "the configuration", string(text), "[laptop]", "relay = '"+relay+"'", "key-file = ", "path = '"+resolvePath(dir)+"'")

	_, errOut, code = run(t, "init", "--relay", relay, "--name", "laptop", "--path", dir)
	if code == 0 || !strings.Contains(errOut, "already has a table [laptop]") {
		t.Fatalf("a second init of the same table: exit %d\n%s", code, errOut)
	}

	// The node runs from its table.
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("from the laptop\n"), 0o644)
	if _, errOut, code := run(t, "sync", "--once", "--repo", "laptop"); code != 0 {
		t.Fatalf("sync --once --repo laptop: exit %d\n%s", code, errOut)
	}

	// A second node joins with the key, into its own configuration.
	key := filepath.Join(filepath.Dir(cfg), "laptop.key")
	other := filepath.Join(t.TempDir(), "office.toml")
	officeDir := t.TempDir()
	out, errOut, code = run(t, "--config", other, "init", "--join", "--relay", relay, "--name", "office",
		"--key-file", key, "--path", officeDir)
	if code != 0 {
		t.Fatalf("init --join: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Joined the repository") {
		t.Errorf("init --join says:\n%s", out)
	}
	if _, errOut, code := run(t, "--config", other, "sync", "--once"); code != 0 {
		t.Fatalf("the joined node's sync --once: exit %d\n%s", code, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(officeDir, "a.txt")); err != nil || string(got) != "from the laptop\n" {
		t.Errorf("the joined node has a.txt = %q, %v", got, err)
	}

	// A wrong key does not join.
	wrong, _ := keyFile(t)
	_, errOut, code = run(t, "--config", filepath.Join(t.TempDir(), "x.toml"), "init", "--join", "--relay", relay,
		"--name", "intruder", "--key-file", wrong, "--path", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "opening the repository") {
		t.Errorf("init --join with a wrong key: exit %d\n%s", code, errOut)
	}
}

// console drives a program on a pseudo-terminal: it waits for prompts and
// answers them.
type console struct {
	t   *testing.T
	pty *os.File
	mu  sync.Mutex
	buf bytes.Buffer
	eof chan struct{}
	pos int // how much of buf expect has matched
}

func newConsole(t *testing.T, cmd *exec.Cmd) *console {
	t.Helper()
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	c := &console{t: t, pty: f, eof: make(chan struct{})}
	go func() {
		r := bufio.NewReader(f)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				close(c.eof)
				return
			}
		}
	}()
	t.Cleanup(func() { f.Close() })
	return c
}

// finished waits until everything the program printed has been read:
// after it exits, its last output may still be in the terminal.
func (c *console) finished() {
	c.t.Helper()
	select {
	case <-c.eof:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("the terminal did not close within 10s of the program's exit:\n%s", c.output())
	}
}

func (c *console) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// expect waits until the output holds s after what it matched before, then
// answers with answer (a line).
func (c *console) expect(s, answer string) {
	c.t.Helper()
	c.wait(s)
	if _, err := io.WriteString(c.pty, answer+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits until the output holds s after what it matched before.
func (c *console) wait(s string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := c.output()
		if i := strings.Index(out[c.pos:], s); i >= 0 {
			c.pos += i + len(s)
			break
		}
		select {
		case <-c.eof:
			if !strings.Contains(c.output()[c.pos:], s) {
				c.t.Fatalf("the program ended before printing %q:\n%s", s, c.output())
			}
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q within 60s:\n%s", s, c.output())
		}
	}
}

// The wizard, driven through a pseudo-terminal: it shows the license and
// needs a yes, asks for the relay, the node, a passphrase twice (hidden:
// never echoed), the mode and a mountpoint, and writes a table the mount
// command can use.
func TestInitWizard(t *testing.T) {
	bin := buildEscalefs(t)
	cfgHome := t.TempDir()
	relay := "file://" + t.TempDir()
	mnt := filepath.Join(t.TempDir(), "Sync")
	cmd := exec.Command(bin, "init")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome, "XDG_STATE_HOME="+t.TempDir())
	c := newConsole(t, cmd)
	const secret = "correct horse battery staple"
	c.expect("Do you accept these terms? (yes/no) [no]: ", "yes")
	c.expect("Relay URL", relay)
	c.expect("This node's name [", "desk")
	c.expect("a generated key file (k) or a passphrase (p)? [k]: ", "p")
	c.expect("Passphrase: ", secret)
	c.expect("The same passphrase again: ", "not the same one")
	c.wait("The two passphrases differ; again.")
	c.expect("Passphrase: ", secret)
	c.expect("The same passphrase again: ", secret)
	c.expect("Mode: shared, upload, download or conservative [shared]: ", "conservative")
	c.expect("Mount the folder with FUSE (m) or keep a plain folder in step (s)? [m]: ", "m")
	c.expect("Directory [", mnt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("escalefs init: %v\n%s", err, c.output())
	}
	c.finished()
	out := c.output()
	if strings.Contains(out, secret) {
		t.Fatalf("the passphrase was echoed:\n%s", out)
	}
	wantAll(t, "the wizard", out, "CeCILL-C", "relay works", "Created a new repository", "escalefs mount --repo desk")
	cfg := filepath.Join(cfgHome, "escalefs", "config.toml")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "the configuration", string(text), "[desk]", "mode = 'conservative'", "mountpoint = '"+mnt+"'",
		"passphrase-file = '"+filepath.Join(cfgHome, "escalefs", "desk.passphrase")+"'")
	pass, err := os.ReadFile(filepath.Join(cfgHome, "escalefs", "desk.passphrase"))
	if err != nil || strings.TrimSpace(string(pass)) != secret {
		t.Errorf("passphrase file: %q %v", pass, err)
	}

	// Answering no to the license sets nothing up.
	cmd = exec.Command(bin, "init")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	c = newConsole(t, cmd)
	c.expect("Do you accept these terms? (yes/no) [no]: ", "no")
	if err := cmd.Wait(); err == nil {
		t.Fatalf("init went on without the license accepted:\n%s", c.output())
	}
	c.finished()
	if !strings.Contains(c.output(), "not accepted: nothing was set up") {
		t.Errorf("refusal says:\n%s", c.output())
	}
}

// escalefs init --from-escale converts an Escale configuration into
// tables, saying what did not carry over; a sync then runs from one.
func TestInitFromEscale(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "escalefs", "config.toml")
	relayDir, dir := t.TempDir(), t.TempDir()
	escaleDir := t.TempDir()
	writeFile(t, filepath.Join(escaleDir, "docs.passphrase"), []byte("an escale passphrase\n"), 0o600)
	conf := filepath.Join(escaleDir, "escale.conf")
	writeFile(t, conf, []byte("[docs]\nlocal path = "+dir+"\nrelay address = "+relayDir+
		"\npassphrase = docs.passphrase\nencryption = on\nindex = 1\nclient = laptop\n"), 0o600)
	out, errOut, code := run(t, "init", "--accept-license", "--from-escale", conf)
	if code != 0 {
		t.Fatalf("init --from-escale: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "init --from-escale", out, "[docs]: converted", `not carried over: "index" dropped`,
		"not carried over: encryption = on", "Wrote 1 tables to "+cfg)
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	if _, errOut, code := run(t, "sync", "--once", "--repo", "docs"); code != 0 {
		t.Fatalf("sync --once --repo docs: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(relayDir, "escale.json")); err != nil {
		t.Errorf("the converted relay was not used: %v", err)
	}
	before, _ := os.ReadFile(cfg)
	// A second import of the same section is refused, and a file that
	// is not Escale's changes nothing.
	if _, errOut, code := run(t, "init", "--from-escale", conf); code == 0 || !strings.Contains(errOut, "already has a table [docs]") {
		t.Errorf("importing [docs] twice: exit %d\n%s", code, errOut)
	}
	bad := filepath.Join(escaleDir, "bad.conf")
	writeFile(t, bad, []byte("no sections here\n"), 0o600)
	if _, errOut, code := run(t, "init", "--from-escale", bad); code == 0 || !strings.Contains(errOut, "expected") {
		t.Errorf("importing a file without sections: exit %d\n%s", code, errOut)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Error("a refused import changed the configuration")
	}
}

// The wizard asks again rather than failing: a malformed URL at once, a
// password the FTP server refuses right after it is given (the wrong one
// is not kept on disk), and a mountpoint that is not empty, for which it
// offers escalefs sync instead.
func TestInitWizardAsksAgain(t *testing.T) {
	s := testserver.StartPureFTPd(t)
	u, _ := s.NewRelayDir(t, "ftp")
	bin := buildEscalefs(t)
	env, cfgHome := relayTestEnv(t)
	full := t.TempDir()
	writeFile(t, filepath.Join(full, "notes.txt"), []byte("already here\n"), 0o644)
	pwFile := filepath.Join(cfgHome, "escalefs", "desk.relay-password")

	cmd := exec.Command(bin, "init", "--accept-license")
	cmd.Env = env
	c := newConsole(t, cmd)
	c.expect("Relay URL", "ftp:/"+u.Host+u.Path)
	c.wait("names no host; expected e.g. ftp://user@host/dir")
	c.expect("Relay URL", "nosuch://host/x")
	c.wait(`unknown scheme "nosuch"`)
	c.expect("Relay URL", u.String())
	c.expect("This node's name [", "desk")
	c.expect("Relay password", "wrong password")
	c.wait("The relay refused the login")
	if _, err := os.Stat(pwFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused password is kept in %s: %v", pwFile, err)
	}
	c.expect("Relay password", s.Password)
	c.wait("relay works")
	c.expect("a generated key file (k) or a passphrase (p)? [k]: ", "k")
	c.expect("Mode: shared, upload, download or conservative [shared]: ", "sharing")
	c.wait(`"sharing" is not a mode; again.`)
	c.expect("Mode: shared, upload, download or conservative [shared]: ", "")
	c.expect("Mount the folder with FUSE (m) or keep a plain folder in step (s)? [m]: ", "m")
	c.expect("Directory [", full)
	c.wait("is not empty: a mount there would hide its files")
	c.expect("Keep it in step as a plain folder with escalefs sync instead? (yes/no) [yes]: ", "yes")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("escalefs init: %v\n%s", err, c.output())
	}
	c.finished()
	wantAll(t, "the wizard", c.output(), "escalefs sync --repo desk")
	text, err := os.ReadFile(filepath.Join(cfgHome, "escalefs", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "the configuration", string(text), "path = '"+full+"'", "password-file = '"+pwFile+"'")
	if pw, err := os.ReadFile(pwFile); err != nil || strings.TrimSpace(string(pw)) != s.Password {
		t.Errorf("the relay password file holds %q, %v", pw, err)
	}
	sync := exec.Command(bin, "sync", "--once", "--repo", "desk")
	sync.Env = env
	if out, err := sync.CombinedOutput(); err != nil {
		t.Fatalf("sync --once from the table: %v\n%s", err, out)
	}

	// Without a terminal, a non-empty mountpoint is a usage error.
	_, errOut, code := run(t, "--config", filepath.Join(t.TempDir(), "c.toml"), "init", "--accept-license",
		"--relay", "file://"+t.TempDir(), "--name", "x", "--mountpoint", full)
	if code != exitUsage || !strings.Contains(errOut, "is not empty") || !strings.Contains(errOut, "--path "+full) {
		t.Errorf("init --mountpoint over a folder with files: exit %d\n%s", code, errOut)
	}
}

// escalefs init --from-escale on Escale's own kind of files: the password
// of a "user:password" credential file goes to a 0600 file of its own, and
// a section escalefs cannot reach (rclone) is reported, not written.
func TestInitFromEscaleFiles(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfgDir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "escalefs")
	testdata, err := filepath.Abs(filepath.Join("..", "..", "config", "testdata", "escale"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "init", "--accept-license", "--from-escale", filepath.Join(testdata, "webdav.conf"))
	if code != 0 {
		t.Fatalf("init --from-escale webdav.conf: exit %d\n%s%s", code, out, errOut)
	}
	pw := filepath.Join(cfgDir, "my-cloud.relay-password")
	wantAll(t, "the import", out, "[my-cloud]: converted", "the relay password from Escale's credential file is in "+pw)
	if b, err := os.ReadFile(pw); err != nil || string(b) != "n3xtcl0ud\n" {
		t.Errorf("%s: %q, %v", pw, b, err)
	}
	if fi, err := os.Stat(pw); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, want mode 0600", pw, err)
	}
	text, _ := os.ReadFile(filepath.Join(cfgDir, "config.toml"))
	wantAll(t, "the configuration", string(text), "relay = 'webdavs://me@cloud.example.com:8080/remote.php/webdav'",
		"password-file = '"+pw+"'", "[dav]")

	out, errOut, code = run(t, "init", "--from-escale", filepath.Join(testdata, "rclone.conf"))
	if code != 0 {
		t.Fatalf("init --from-escale rclone.conf: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "the import", out, "[dropbox]: not written, it has no relay escalefs can reach", "rclone serve webdav",
		"[ftp-too]: converted")
	text, _ = os.ReadFile(filepath.Join(cfgDir, "config.toml"))
	if strings.Contains(string(text), "[dropbox]") {
		t.Errorf("the rclone section was written:\n%s", text)
	}
}
