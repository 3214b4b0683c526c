package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
)

// relayTestEnv is the environment of an escalefs process that must find
// nothing of the user's: no ssh-agent, no known_hosts, no AWS credentials,
// and its own configuration and state.
func relayTestEnv(t *testing.T) (env []string, cfgHome string) {
	t.Helper()
	cfgHome = t.TempDir()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SSH_AUTH_SOCK" || k == "HOME" || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+cfgHome, "XDG_STATE_HOME="+t.TempDir())
	return env, cfgHome
}

// The wizard against an SSH server that known_hosts does not know: it
// shows the host key's fingerprint and asks; a no sets nothing up, a yes
// pins the key in the table, which then holds all a node needs (the pin
// and the SSH key) to sync from it.
func TestInitWizardSFTP(t *testing.T) {
	srv := testserver.StartSSHD(t)
	u, _ := srv.NewRelayDir(t)
	bin := buildEscalefs(t)
	env, cfgHome := relayTestEnv(t)
	cfg := filepath.Join(cfgHome, "escalefs", "config.toml")
	fp := ssh.FingerprintSHA256(srv.HostKey)

	cmd := exec.Command(bin, "init", "--ssh-key", srv.KeyFile)
	cmd.Env = env
	c := newConsole(t, cmd)
	c.expect("Do you accept these terms? (yes/no) [no]: ", "yes")
	c.expect("Relay URL", u.String())
	c.expect("This node's name [", "desk")
	c.expect("SSH password (empty to log in with ssh-agent or an SSH key): ", "")
	c.wait(fp)
	c.expect("Trust this key?", "no")
	if err := cmd.Wait(); err == nil {
		t.Fatalf("init went on with the host key refused:\n%s", c.output())
	}
	c.finished()
	wantAll(t, "the refusal", c.output(), "not in known_hosts", "was not trusted: nothing was set up")
	if _, err := os.Stat(cfg); err == nil {
		t.Fatalf("a refused host key left a configuration")
	}

	dir := filepath.Join(t.TempDir(), "Sync")
	cmd = exec.Command(bin, "init", "--ssh-key", srv.KeyFile)
	cmd.Env = env
	c = newConsole(t, cmd)
	c.expect("Relay URL", u.String())
	c.expect("This node's name [", "desk")
	c.expect("SSH password (empty to log in with ssh-agent or an SSH key): ", "")
	c.wait(fp)
	c.expect("Trust this key?", "yes")
	c.expect("a generated key file (k) or a passphrase (p)? [k]: ", "k")
	c.expect("Mode: shared, upload, download or conservative [shared]: ", "")
	c.expect("Mount the folder with FUSE (m) or keep a plain folder in step (s)? [m]: ", "s")
	c.expect("Directory [", dir)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("escalefs init: %v\n%s", err, c.output())
	}
	c.finished()
	wantAll(t, "the wizard", c.output(), "relay works", "Created a new repository", "escalefs sync --repo desk")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "the configuration", string(text), "host-key-sha256 = '"+fp+"'", "ssh-key = '"+resolvePath(srv.KeyFile)+"'")

	writeFile(t, filepath.Join(dir, "a.txt"), []byte("over ssh\n"), 0o644)
	sync := exec.Command(bin, "sync", "--once", "--repo", "desk")
	sync.Env = env
	if out, err := sync.CombinedOutput(); err != nil {
		t.Fatalf("sync --once from the table init wrote: %v\n%s", err, out)
	}
}

// The wizard for an S3 relay asks for the endpoint and the access key,
// keeps the secret key in a 0600 file, and writes a table a node syncs
// from with no AWS variables set.
func TestInitWizardS3(t *testing.T) {
	srv := testserver.StartSeaweedFS(t)
	bin := buildEscalefs(t)
	env, cfgHome := relayTestEnv(t)
	env = append(env, "AWS_REGION="+srv.Region)
	cfg := filepath.Join(cfgHome, "escalefs", "config.toml")
	relayURL := srv.URL(srv.NewPrefix(t))
	dir := filepath.Join(t.TempDir(), "Sync")

	cmd := exec.Command(bin, "init", "--accept-license", "--name", "desk", "--path", dir, "--mode", "shared")
	cmd.Env = env
	c := newConsole(t, cmd)
	c.expect("Relay URL", relayURL)
	c.expect("S3 endpoint URL", srv.Endpoint)
	c.expect("S3 access key ID", srv.AccessKey)
	c.expect("S3 secret access key: ", srv.SecretKey)
	c.expect("a generated key file (k) or a passphrase (p)? [k]: ", "k")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("escalefs init: %v\n%s", err, c.output())
	}
	c.finished()
	out := c.output()
	if strings.Contains(out, srv.SecretKey) {
		t.Fatalf("the secret key was echoed:\n%s", out)
	}
	wantAll(t, "the wizard", out, "relay works", "Created a new repository")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(cfgHome, "escalefs", "desk.relay-password")
	wantAll(t, "the configuration", string(text),
		"relay = 's3://"+srv.AccessKey+"@"+strings.TrimPrefix(relayURL, "s3://")+"'",
		"s3-endpoint = '"+srv.Endpoint+"'", "password-file = '"+pwFile+"'")
	if fi, err := os.Stat(pwFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the secret key's file: %v %v, want mode 0600", fi, err)
	}

	writeFile(t, filepath.Join(dir, "a.txt"), []byte("into the bucket\n"), 0o644)
	sync := exec.Command(bin, "sync", "--once", "--repo", "desk")
	sync.Env = env
	if out, err := sync.CombinedOutput(); err != nil {
		t.Fatalf("sync --once from the table init wrote: %v\n%s", err, out)
	}
	if keys := srv.RawKeys(t, strings.TrimPrefix(relayURL, "s3://"+srv.Bucket+"/")); len(keys) < 2 {
		t.Errorf("after the sync the prefix holds %v, want escale.json and the pushed file's objects", keys)
	}
}

// escalefs relay check over sftp and s3: a working relay passes; an
// unknown host key, a missing bucket and a wrong secret key each fail with
// an error that says so.
func TestRelayCheckSFTPAndS3(t *testing.T) {
	ssh1 := testserver.StartSSHD(t)
	s3 := testserver.StartSeaweedFS(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	u, _ := ssh1.NewRelayDir(t)
	fp := ssh.FingerprintSHA256(ssh1.HostKey)
	s3URL := s3.URL(s3.NewPrefix(t))
	s3Flags := []string{"--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region}

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // in the output, and for a failure its standard error
		ok   bool
	}{
		{name: "sftp", args: []string{"--ssh-key", ssh1.KeyFile, "--known-hosts", ssh1.KnownHosts, u.String()},
			ok: true, want: []string{"relay works"}},
		{name: "sftp unknown host key", args: []string{"--ssh-key", ssh1.KeyFile, u.String()},
			want: []string{"host key verification failed", "is unknown", fp, "--host-key-sha256"}},
		{name: "s3", args: append(s3Flags, s3URL), ok: true, want: []string{"relay works"}},
		{name: "s3 missing bucket", args: append(s3Flags, "s3://no-such-bucket-here/x"),
			want: []string{`bucket "no-such-bucket-here" does not exist at ` + s3.Endpoint}},
		{name: "s3 wrong secret key", args: append(s3Flags, s3URL), env: map[string]string{"AWS_SECRET_ACCESS_KEY": "not-the-key"},
			want: []string{"refused", "AWS_ACCESS_KEY_ID", "likely cause: the login was refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, errOut, code := run(t, append([]string{"relay", "check"}, tc.args...)...)
			if (code == 0) != tc.ok {
				t.Fatalf("exit %d, want success %v\n%s%s", code, tc.ok, out, errOut)
			}
			wantAll(t, "relay check", out+errOut, tc.want...)
		})
	}
}

// For a Google Drive relay the wizard asks for the credentials file,
// offering the token escalefs auth gdrive wrote, and the table names it.
func TestInitAsksGdriveCredentials(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	u, err := relay.ParseURL("gdrive:///escalefs/relay")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(answer string, rf *relayFlags) string {
		t.Helper()
		var out strings.Builder
		p := &prompter{in: bufio.NewReader(strings.NewReader(answer + "\n")), fd: -1, out: &out}
		if err := askRelayLogin(p, &out, u, rf, filepath.Join(t.TempDir(), "pw")); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}

	var rf relayFlags
	if q := ask("", &rf); !strings.Contains(q, "run escalefs auth gdrive first") || rf.credentialsFile != "" {
		t.Errorf("without a token: asked %q, credentials %q", q, rf.credentialsFile)
	}
	tok, err := defaultGdriveTokenPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(tok), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tok, []byte("{}"), 0o600)
	rf = relayFlags{}
	if q := ask("", &rf); !strings.Contains(q, "["+tok+"]") || rf.credentialsFile != tok {
		t.Errorf("with a token: asked %q, credentials %q, want the token offered and taken", q, rf.credentialsFile)
	}
	if got := rf.configValues()["credentials"]; got != resolvePath(tok) {
		t.Errorf("the table's credentials = %v, want %s", got, tok)
	}
	sa := writeFile(t, filepath.Join(t.TempDir(), "service-account.json"), []byte("{}"), 0o600)
	rf = relayFlags{}
	ask(sa, &rf)
	if rf.credentialsFile != sa {
		t.Errorf("credentials %q, want the file answered, %s", rf.credentialsFile, sa)
	}
	rf = relayFlags{credentialsFile: sa}
	if q := ask("", &rf); q != "" {
		t.Errorf("--credentials given, yet the wizard asked %q", q)
	}
}
