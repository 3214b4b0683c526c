package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
)

// The flags and DIR are checked before anything is opened or written, and
// every message names the bad value.
func TestSyncFlagErrors(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	kf, ks := keyFile(t)
	keyURL, _ := newTestRepo(t, ks, crypto.EncryptionAge)
	otherKey, _ := keyFile(t)
	pass := passphraseFile(t, testPassphrase)
	dir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	file := writeFile(t, filepath.Join(t.TempDir(), "a-file"), []byte("x"), 0o600)
	emptyRelay := t.TempDir()
	relay := "file://" + emptyRelay
	inside := filepath.Join(dir, "relay")

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no relay", []string{"--key-file", kf, dir},
			[]string{`required flag(s) "relay" not set`}},
		{"no DIR", []string{"--relay", relay, "--key-file", kf},
			[]string{"missing DIR"}},
		{"two DIRs", []string{"--relay", relay, "--key-file", kf, dir, missing},
			[]string{"2 folders given", missing, "exactly one DIR"}},
		{"DIR missing", []string{"--relay", relay, "--key-file", kf, missing},
			[]string{"folder " + missing + " does not exist", "create it first", "mkdir -p " + missing}},
		{"DIR is a file", []string{"--relay", relay, "--key-file", kf, file},
			[]string{file + " is not a directory", "create one"}},
		{"both secrets", []string{"--relay", relay, "--key-file", kf, "--passphrase-file", pass, dir},
			[]string{"both --passphrase-file and --key-file given", "exactly one of"}},
		{"no secret", []string{"--relay", relay, dir},
			[]string{"no secret given", "--key-file FILE", "--no-encryption"}},
		{"secret and no encryption", []string{"--relay", relay, "--key-file", kf, "--no-encryption", dir},
			[]string{"--no-encryption and a secret"}},
		{"negative pullers", []string{"--relay", relay, "--key-file", kf, "--pullers", "-1", dir},
			[]string{"--pullers -1", "expected 0 (every node) or a positive number"}},
		{"zero refresh", []string{"--relay", relay, "--key-file", kf, "--refresh", "0s", dir},
			[]string{"--refresh 0s", "expected a positive duration"}},
		{"negative refresh", []string{"--relay", relay, "--key-file", kf, "--refresh=-5s", dir},
			[]string{"--refresh -5s", "expected a positive duration"}},
		{"refresh not a duration", []string{"--relay", relay, "--key-file", kf, "--refresh", "soon", dir},
			[]string{`invalid argument "soon" for "--refresh" flag`}},
		{"zero lock timeout", []string{"--relay", relay, "--key-file", kf, "--lock-timeout", "0s", dir},
			[]string{"--lock-timeout 0s", "expected a positive duration"}},
		{"unknown mode", []string{"--relay", relay, "--key-file", kf, "--mode", "sideways", dir},
			[]string{`--mode "sideways"`, "expected shared, upload (or push-only), download (or pull-only) or conservative"}},
		{"bad bandwidth limit", []string{"--relay", relay, "--key-file", kf, "--bwlimit", "5MB:fast", dir},
			[]string{`invalid argument "5MB:fast" for "--bwlimit" flag`, "not a number", "UP:DOWN"}},
		{"malformed disk quota", []string{"--relay", relay, "--key-file", kf, "--disk-quota", "2XB", dir},
			[]string{`--disk-quota "2XB"`, `unknown unit "XB"`, "500KB", "2GiB", "0 for none"}},
		{"disk quota not a number", []string{"--relay", relay, "--key-file", kf, "--disk-quota", "lots", dir},
			[]string{`--disk-quota "lots"`, "not a number", "expected a size"}},
		{"negative disk quota", []string{"--relay", relay, "--key-file", kf, "--disk-quota=-1GB", dir},
			[]string{`--disk-quota "-1GB"`, "negative", "expected a size"}},
		{"include with a bad regex", []string{"--relay", relay, "--key-file", kf, "--include", "/[a-/", dir},
			[]string{`--include "/[a-/"`, "invalid regular expression"}},
		{"exclude with an unclosed regex", []string{"--relay", relay, "--key-file", kf, "--exclude", "*.log", "--exclude", "/tmp", dir},
			[]string{`--exclude "/tmp"`, "must end with a slash"}},
		{"extension with a glob", []string{"--relay", relay, "--key-file", kf, "--extension", "*.txt", dir},
			[]string{`--extension "*.txt"`, "extensions are literal"}},
		{"include-dir with dot-dot", []string{"--relay", relay, "--key-file", kf, "--include-dir", "../up", dir},
			[]string{`--include-dir "../up"`, `path component ".."`}},
		{"exclude-dir with **", []string{"--relay", relay, "--key-file", kf, "--exclude-dir", "a/**/b", dir},
			[]string{`--exclude-dir "a/**/b"`, "** is not supported"}},
		{"name with a control character", []string{"--relay", relay, "--key-file", kf, "--name", "a\tb", dir},
			[]string{`--name "a\tb"`, "control character"}},
		{"relay inside DIR", []string{"--relay", "file://" + inside, "--key-file", kf, dir},
			[]string{"relay directory " + inside, "folder " + dir, "overlap"}},
		{"state inside DIR", []string{"--relay", relay, "--key-file", kf, state},
			[]string{"state directory " + filepath.Join(state, "escalefs") + " is inside the folder " + state, "XDG_STATE_HOME"}},
		{"unknown scheme", []string{"--relay", "nosuch://host/x", "--key-file", kf, dir},
			[]string{`unknown scheme "nosuch"`}},
		{"wrong key file", []string{"--relay", keyURL, "--key-file", otherKey, dir},
			[]string{"unlocking the repository at " + keyURL, "wrong passphrase or key", "is not the key of repository"}},
		{"passphrase for a key repository", []string{"--relay", keyURL, "--passphrase-file", pass, dir},
			[]string{"wrong passphrase or key", "protected by a key file, but a passphrase was given"}},
		{"no encryption for a key repository", []string{"--relay", keyURL, "--no-encryption", dir},
			[]string{"wrong passphrase or key", "protected by a key file, but nothing (no secret) was given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, append([]string{"sync", "--once"}, tc.args...)...)
			if code == 0 {
				t.Errorf("exit 0, want a failure\n%s%s", out, errOut)
			}
			for _, want := range tc.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q does not contain %q", errOut, want)
				}
			}
		})
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("a failed sync left %d entries in the state directory %s", len(ents), state)
	}
	if ents, _ := os.ReadDir(emptyRelay); len(ents) != 0 {
		t.Errorf("a failed sync wrote %d objects to the relay", len(ents))
	}
	if _, err := os.Stat(inside); err == nil {
		t.Errorf("the relay inside DIR was created: %s", inside)
	}
}

// A repository without a secret is made only with --no-encryption, and
// a later run without it (or with a secret) is refused.
func TestSyncNoEncryption(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	relayDir, dir := t.TempDir(), t.TempDir()
	u := "file://" + relayDir
	out, errOut, code := run(t, "sync", "--once", "--relay", u, "--no-encryption", dir)
	if code != 0 {
		t.Fatalf("sync --no-encryption: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"created a new repository at " + u, "has no secret"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, errOut)
		}
	}
	cfg := relayConfig(t, relayDir)
	if cfg.Secret != crypto.SecretNone || cfg.Encryption != crypto.EncryptionOff {
		t.Errorf("repository secret %q, encryption %q; want none, off", cfg.Secret, cfg.Encryption)
	}
	if _, errOut, code := run(t, "sync", "--once", "--relay", u, dir); code == 0 || !strings.Contains(errOut, "--no-encryption") {
		t.Errorf("sync without --no-encryption of a repository without a secret: exit %d, %s", code, errOut)
	}
	kf, _ := keyFile(t)
	if _, errOut, code := run(t, "sync", "--once", "--relay", u, "--key-file", kf, dir); code == 0 ||
		!strings.Contains(errOut, "protected by nothing (no secret), but a key file was given") {
		t.Errorf("sync with a key file of a repository without a secret: exit %d, %s", code, errOut)
	}
}

// A second escalefs for the same folder and repository is refused, naming
// the process that holds it.
func TestSyncInUse(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	kf, _ := keyFile(t)
	relayDir, dir := t.TempDir(), t.TempDir()
	args := []string{"sync", "--once", "--relay", "file://" + relayDir, "--key-file", kf, dir}
	if out, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errOut)
	}
	st := expectedStateDir(t, state, relayDir, dir)
	store, err := cache.Open(filepath.Join(st, "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, errOut, code := run(t, args...)
	if code == 0 || !strings.Contains(errOut, "another escalefs process is syncing "+resolvePath(dir)) {
		t.Fatalf("sync of a folder in use: exit %d, %s", code, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("(pid %d)", os.Getpid())) && !strings.Contains(errOut, "(pid unknown)") {
		t.Errorf("the message does not name this process (pid %d): %s", os.Getpid(), errOut)
	}
}

// relayConfig parses the escale.json of a file:// relay.
func relayConfig(t *testing.T, relayDir string) *crypto.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(relayDir, crypto.ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := crypto.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// expectedStateDir computes the node's state directory independently of
// the command: $XDG_STATE_HOME/escalefs/<repository>-<sha256(DIR)[:4]>.
func expectedStateDir(t *testing.T, stateHome, relayDir, dir string) string {
	t.Helper()
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(resolved))
	return filepath.Join(stateHome, "escalefs", relayConfig(t, relayDir).Repository.String()+"-"+hex.EncodeToString(h[:])[:8])
}

// buildEscalefs builds the escalefs binary (with -race when the tests run
// with it) into a temporary directory.
func buildEscalefs(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "escalefs")
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// syncNode is one node of the end-to-end tests: its folder and its own
// $XDG_STATE_HOME.
type syncNode struct {
	name, dir, state string
	bin, relay, key  string
	flags            []string // more flags of every escalefs sync
}

func newSyncNode(t *testing.T, name, bin, relay, key string) *syncNode {
	return &syncNode{name: name, dir: t.TempDir(), state: t.TempDir(), bin: bin, relay: relay, key: key}
}

func (n *syncNode) command(ctx context.Context, extra ...string) *exec.Cmd {
	args := append([]string{"sync", "--relay", n.relay, "--key-file", n.key, "--name", n.name}, n.flags...)
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, n.bin, append(args, n.dir)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+n.state)
	return cmd
}

// once runs escalefs sync --once and returns its standard error.
func (n *syncNode) once(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := n.command(ctx, "--once")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: escalefs sync --once: %v\n%s%s", n.name, err, stdout.Bytes(), stderr.Bytes())
	}
	return stderr.String()
}

func (n *syncNode) path(rel string) string { return filepath.Join(n.dir, filepath.FromSlash(rel)) }

func (n *syncNode) write(t *testing.T, rel, content string) {
	t.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *syncNode) has(rel, content string) bool {
	data, err := os.ReadFile(n.path(rel))
	return err == nil && string(data) == content
}

// waitFor polls cond every 50ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two nodes, each an escalefs process with its own folder and state, keep
// their folders in step through one file:// relay.
func TestSyncEndToEnd(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)

	t.Run("once", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)
		a.write(t, "hello.txt", "hello from A\n")
		a.write(t, "docs/notes.txt", "notes\n")

		log := a.once(t)
		for _, want := range []string{"level=INFO msg=\"created a new repository at " + u + "\"",
			"level=INFO msg=pushed path=hello.txt", "level=INFO msg=pushed path=docs/notes.txt"} {
			if !strings.Contains(log, want) {
				t.Errorf("A's log lacks %q:\n%s", want, log)
			}
		}
		st := expectedStateDir(t, a.state, relayDir, a.dir)
		for _, p := range []string{st, filepath.Join(st, "scratch")} {
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Errorf("state directory %s: %v; want a directory of mode 0700", p, err)
			}
		}
		if _, err := os.Stat(filepath.Join(st, "cache.db")); err != nil {
			t.Errorf("A's cache: %v", err)
		}

		log = b.once(t)
		if strings.Contains(log, "created a new repository") {
			t.Errorf("B created a repository instead of joining A's:\n%s", log)
		}
		if !strings.Contains(log, "level=INFO msg=pulled path=hello.txt") {
			t.Errorf("B's log lacks the pulled file:\n%s", log)
		}
		if !b.has("hello.txt", "hello from A\n") || !b.has("docs/notes.txt", "notes\n") {
			t.Fatal("A's files did not reach B")
		}
		a.once(t) // A reads B's acknowledgements

		if err := os.Remove(b.path("hello.txt")); err != nil {
			t.Fatal(err)
		}
		b.once(t)
		a.once(t)
		if _, err := os.Lstat(a.path("hello.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the deletion in B did not reach A: %v", err)
		}
		if !a.has("docs/notes.txt", "notes\n") {
			t.Error("A lost docs/notes.txt")
		}
	})

	t.Run("run", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)
		a.once(t) // creates the repository

		cmd := b.command(context.Background(), "--refresh", "1s")
		var stderr testserver.SyncBuffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		exited := false
		t.Cleanup(func() {
			if !exited {
				_ = cmd.Process.Kill()
				<-done
			}
		})
		waitFor(t, 30*time.Second, "B to start syncing", func() bool {
			return strings.Contains(stderr.String(), "level=INFO msg=syncing")
		})

		// A second process for B's folder is refused while B runs.
		second := b.command(t.Context(), "--once")
		out, err := second.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(string(out), "another escalefs process is syncing "+resolvePath(b.dir)) {
			t.Errorf("a second sync of B's folder: %v\n%s", err, out)
		} else if !strings.Contains(string(out), fmt.Sprintf("(pid %d)", cmd.Process.Pid)) && !strings.Contains(string(out), "(pid unknown)") {
			t.Errorf("the refusal does not name B's process %d:\n%s", cmd.Process.Pid, out)
		}

		a.write(t, "later.txt", "written while B runs\n")
		a.once(t)
		waitFor(t, 30*time.Second, "later.txt to reach B", func() bool {
			return b.has("later.txt", "written while B runs\n") &&
				strings.Contains(stderr.String(), "level=INFO msg=pulled path=later.txt")
		})

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			exited = true
			if err != nil {
				t.Errorf("B exited with %v after SIGTERM, want status 0\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("B did not exit within 10s of SIGTERM\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "level=INFO msg=stopped") {
			t.Errorf("B's log lacks the final line:\n%s", stderr.String())
		}
	})
}
