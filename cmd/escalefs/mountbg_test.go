package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountBG runs escalefs mount without -f and returns its standard output,
// standard error and exit status.
func mountBG(t *testing.T, bin, stateHome string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBin(t, bin, stateHome, append([]string{"mount"}, args...)...)
}

// runBin runs the escalefs binary with xdg as $XDG_STATE_HOME, within two
// minutes, and returns its output and exit status.
func runBin(t *testing.T, bin, xdg string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+xdg)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("escalefs %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

func isMounted(t *testing.T, mnt string) bool {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, " "+mnt+" ") && strings.Contains(line, " - fuse") {
			return true
		}
	}
	return false
}

// processesWith lists the IDs of the processes whose command line holds
// arg.
func processesWith(t *testing.T, arg string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	// A zombie has exited.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// escalefs mount without -f returns 0 once the mountpoint is a FUSE mount,
// says where it logs, and keeps serving in the background: a file written
// in the mount reaches another node; fusermount -u stops the background
// process, which removes mount.pid.
func TestMountBackground(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	mnt, stateHome := t.TempDir(), t.TempDir()
	t.Cleanup(func() {
		for _, pid := range processesWith(t, mnt) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = exec.Command("fusermount", "-u", "-z", mnt).Run()
	})

	out, errOut, code := mountBG(t, bin, stateHome, "--relay", relay, "--key-file", key, "--name", "alice", "--refresh", "1s", mnt)
	if code != 0 {
		t.Fatalf("escalefs mount: exit %d\n%s%s", code, out, errOut)
	}
	if !isMounted(t, mnt) {
		t.Fatalf("%s is not a FUSE mount once escalefs mount returned\n%s%s", mnt, out, errOut)
	}
	prefix := "mounted " + mnt + " (log: "
	if !strings.HasPrefix(out, prefix) || !strings.HasSuffix(out, ")\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("output %q, want one line %q…)", out, prefix)
	}
	logPath := strings.TrimSuffix(strings.TrimPrefix(out, prefix), ")\n")
	state := filepath.Dir(logPath)
	if filepath.Base(logPath) != "mount.log" || !strings.HasPrefix(state, filepath.Join(stateHome, "escalefs")+"/") {
		t.Errorf("log %s, want mount.log in the node's state directory under %s", logPath, stateHome)
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log %s: %v, mode %v, want 0600", logPath, err, fi)
	}
	readLog := func() string {
		data, _ := os.ReadFile(logPath)
		return string(data)
	}
	pidData, err := os.ReadFile(filepath.Join(state, "mount.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidData)))
	if err != nil || !alive(pid) {
		t.Fatalf("mount.pid holds %q, not a live process: %v", pidData, err)
	}
	if got := processesWith(t, mnt); len(got) != 1 || got[0] != pid {
		t.Errorf("processes serving %s: %v, want only %d", mnt, got, pid)
	}
	if sid, err := syscall.Getpgid(pid); err != nil || sid != pid {
		t.Errorf("the background process %d leads process group %d (%v), want its own session", pid, sid, err)
	}
	if !strings.Contains(readLog(), "level=INFO msg=mounted") {
		t.Errorf("the log lacks the mounted line:\n%s", readLog())
	}

	if err := os.WriteFile(filepath.Join(mnt, "hello.txt"), []byte("hello from the background\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "hello.txt to be pushed", func() bool {
		return strings.Contains(readLog(), "level=INFO msg=pushed path=hello.txt")
	})
	bob := newSyncNode(t, "bob", bin, relay, key)
	bob.once(t)
	if !bob.has("hello.txt", "hello from the background\n") {
		t.Error("bob's sync --once did not get hello.txt")
	}

	if out, err := exec.Command("fusermount", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u %s: %v\n%s", mnt, err, out)
	}
	waitFor(t, 20*time.Second, "the background process to exit after fusermount -u", func() bool {
		return !alive(pid)
	})
	if !strings.Contains(readLog(), "level=INFO msg=stopped") {
		t.Errorf("the log lacks the final line:\n%s", readLog())
	}
	if _, err := os.Stat(filepath.Join(state, "mount.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount.pid is still there after the process stopped: %v", err)
	}
}

// When escalefs mount without -f fails, before or in the background
// process, the error reaches its standard error with a non-zero status and
// no process or mount stays behind.
func TestMountBackgroundErrors(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	otherKey, _ := keyFile(t)
	relayDir := t.TempDir()
	relay := "file://" + relayDir
	// A repository with key, which otherKey cannot unlock.
	alice := newSyncNode(t, "alice", bin, relay, key)
	alice.once(t)

	full := t.TempDir()
	writeFile(t, filepath.Join(full, "x"), []byte("x"), 0o600)
	for _, tc := range []struct {
		name string
		mnt  string
		key  string
		want []string
	}{
		{"not empty", full, key, []string{"mountpoint " + resolvePath(full) + " is not empty", "--nonempty"}},
		{"wrong key", t.TempDir(), otherKey, []string{"escalefs: unlocking the repository at"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				for _, pid := range processesWith(t, tc.mnt) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				_ = exec.Command("fusermount", "-u", "-z", tc.mnt).Run()
			})
			stateHome := t.TempDir()
			out, errOut, code := mountBG(t, bin, stateHome, "--relay", relay, "--key-file", tc.key, "--name", "bob", tc.mnt)
			if code == 0 {
				t.Fatalf("mount succeeded:\n%s%s", out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if pids := processesWith(t, tc.mnt); len(pids) != 0 {
				t.Errorf("processes left behind: %v", pids)
			}
			if isMounted(t, tc.mnt) {
				t.Errorf("%s is mounted", tc.mnt)
			}
		})
	}
}
