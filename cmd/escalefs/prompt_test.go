package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A passphrase that neither the flags nor the configuration give is asked
// for on the terminal, without echo; without a terminal the error names
// the options to set instead.
func TestPassphraseAsked(t *testing.T) {
	bin := buildEscalefs(t)
	relay := "file://" + t.TempDir()
	state := t.TempDir()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("asked\n"), 0o644)
	const secret = "a passphrase typed at the prompt"

	cmd := exec.Command(bin, "sync", "--once", "--relay", relay, "--name", "n1", dir)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+state)
	c := newConsole(t, cmd)
	c.expect("Passphrase of the repository at "+relay+": ", secret)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sync --once with an asked passphrase: %v\n%s", err, c.output())
	}
	c.finished()
	if strings.Contains(c.output(), secret) {
		t.Fatalf("the passphrase was echoed:\n%s", c.output())
	}
	// The repository is protected by that passphrase: a passphrase file
	// holding it opens it, another does not.
	pf := filepath.Join(t.TempDir(), "pass")
	writeFile(t, pf, []byte(secret+"\n"), 0o600)
	other := t.TempDir()
	out, err := exec.Command(bin, "sync", "--once", "--relay", relay, "--name", "n2", "--passphrase-file", pf, other).CombinedOutput()
	if err != nil {
		t.Fatalf("sync with the passphrase in a file: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(other, "a.txt")); err != nil || string(got) != "asked\n" {
		t.Errorf("second node has a.txt = %q, %v", got, err)
	}

	// No terminal: the error says what to set.
	noTTY := exec.Command(bin, "sync", "--once", "--relay", relay, "--name", "n3", t.TempDir())
	noTTY.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	out, err = noTTY.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--passphrase-file FILE") || !strings.Contains(string(out), "run on a terminal to be asked") {
		t.Errorf("without a terminal: %v\n%s", err, out)
	}
}

// escalefs mount asks in the foreground and hands the passphrase to the
// process it leaves serving in the background.
func TestMountPassphraseHandedOver(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	relay := "file://" + t.TempDir()
	mnt := t.TempDir()
	xdg := t.TempDir()
	cmd := exec.Command(bin, "mount", "--relay", relay, "--name", "bg", mnt)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+xdg)
	c := newConsole(t, cmd)
	c.expect("Passphrase of the repository at "+relay+": ", "handed over through a pipe")
	err := cmd.Wait()
	t.Cleanup(func() { _ = exec.Command("fusermount", "-u", "-z", mnt).Run() })
	c.finished()
	if err != nil {
		t.Fatalf("mount with an asked passphrase: %v\n%s", err, c.output())
	}
	if !strings.Contains(c.output(), "mounted "+mnt) {
		t.Fatalf("mount says:\n%s", c.output())
	}
	if err := os.WriteFile(filepath.Join(mnt, "x.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pids, err := filepath.Glob(filepath.Join(xdg, "escalefs", "*", "mount.pid"))
	if err != nil || len(pids) != 1 {
		t.Fatalf("the background process's mount.pid: %v %v", pids, err)
	}
	pidText, err := os.ReadFile(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(pidText))
	if out, err := exec.Command("fusermount", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u: %v\n%s", err, out)
	}
	// Wait for the background process to exit (gone, or a zombie nobody
	// reaped) before the test's directories go.
	waitFor(t, 60*time.Second, "the background mount to exit", func() bool {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		_, rest, _ := strings.Cut(string(stat), ") ")
		return strings.HasPrefix(rest, "Z")
	})
}
