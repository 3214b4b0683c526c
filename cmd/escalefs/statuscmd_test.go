package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// startMountAt starts escalefs mount -f of node name on mnt, with xdg as
// its $XDG_STATE_HOME and more flags, and waits until it is mounted.
func startMountAt(t *testing.T, bin, name, relay, key, mnt, xdg string, extra ...string) *mountNode {
	t.Helper()
	n := &mountNode{name: name, mnt: mnt, state: xdg, log: &testserver.SyncBuffer{}, done: make(chan error, 1)}
	args := append([]string{"mount", "--relay", relay, "--key-file", key, "--name", name, "--refresh", "1s", "-f"}, extra...)
	n.cmd = exec.Command(bin, append(args, mnt)...)
	n.cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+xdg)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		if !n.exited {
			_ = n.cmd.Process.Kill()
			<-n.done
			_ = exec.Command("fusermount", "-u", "-z", n.mnt).Run()
		}
	})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(n.log.String(), "level=INFO msg=mounted") {
		select {
		case err := <-n.done:
			n.exited = true
			t.Fatalf("%s exited before mounting: %v\n%s", name, err, n.log)
		case <-deadline:
			t.Fatalf("%s did not mount within 30s\n%s", name, n.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return n
}

// runStatusBin runs the escalefs binary's status command with xdg as
// $XDG_STATE_HOME and returns its output and exit status.
func runStatusBin(t *testing.T, bin, xdg string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBin(t, bin, xdg, append([]string{"status"}, args...)...)
}

// waitStatus runs escalefs status until its output holds every one of want.
func waitStatus(t *testing.T, bin, xdg, what string, args []string, want ...string) string {
	t.Helper()
	var out string
	waitFor(t, 30*time.Second, what, func() bool {
		var code int
		out, _, code = runStatusBin(t, bin, xdg, args...)
		if code != 0 && code != exitUnsynced {
			return false
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	})
	return out
}

func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// A file closed in a mount whose relay fails stays queued on disk when the
// mount is stopped: fusermount -u stops it cleanly once --stop-grace runs
// out, escalefs status shows the file queued with its size and the node not
// running, and once the relay works again the remounted node delivers the
// file to another node and its queue empties.
func TestMountUnmountPendingThenRemount(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relayDir := filepath.Join(t.TempDir(), "relay")
	if err := os.Mkdir(relayDir, 0o700); err != nil {
		t.Fatal(err)
	}
	relay := "file://" + relayDir
	mnt, xdg := t.TempDir(), t.TempDir()
	a := startMountAt(t, bin, "alice", relay, key, mnt, xdg, "--stop-grace", "1s")
	waitStatus(t, bin, xdg, "alice's first status", []string{mnt}, "running (mount, pid "+fmt.Sprint(a.cmd.Process.Pid)+")")

	// Uploads to the relay fail: its blobs directory is replaced by a
	// file (root ignores permission bits). Its listing still works: a
	// relay that lists without escale.json would be another repository.
	blobs := filepath.Join(relayDir, "blobs")
	away := filepath.Join(t.TempDir(), "blobs")
	if err := os.Rename(blobs, away); errors.Is(err, os.ErrNotExist) {
		away = ""
	} else if err != nil {
		t.Fatal(err)
	}
	writeFile(t, blobs, []byte("not a directory\n"), 0o600)

	const content = "written while the relay was down\n"
	if err := os.WriteFile(filepath.Join(mnt, "pending.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	queued := fmt.Sprintf("1 file, %d bytes to push", len(content))
	waitStatus(t, bin, xdg, "the file to be queued", []string{mnt}, queued, "running (mount")
	// Its rounds fail: status says so, and exits with exitUnsynced.
	waitFor(t, 30*time.Second, "status to report the failing node", func() bool {
		out, _, code := runStatusBin(t, bin, xdg, mnt)
		return code == exitUnsynced && strings.Contains(out, "problem:    failing: ")
	})

	a.unmount(t) // exits with status 0
	wantAll(t, "alice's log", a.log.String(), "stopping: pushing queued changes",
		"stopped with changes still queued; they are pushed at the next start")
	out, errOut, code := runStatusBin(t, bin, xdg, mnt)
	if code != 0 {
		t.Fatalf("status after the unmount: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "status after the unmount", out, mnt+"\n", "not running (last ran as mount, pid "+fmt.Sprint(a.cmd.Process.Pid),
		queued+"; pushed when the node starts again", "node:       alice", "relay:      "+relay, "last error:")
	if strings.Contains(out, "still mounted") {
		t.Errorf("status says the unmounted node is mounted:\n%s", out)
	}

	// The relay works again; the node mounts again and pushes its queue.
	if err := os.Remove(blobs); err != nil {
		t.Fatal(err)
	}
	if away != "" {
		if err := os.Rename(away, blobs); err != nil {
			t.Fatal(err)
		}
	}
	again := startMountAt(t, bin, "alice", relay, key, mnt, xdg, "--stop-grace", "1s")
	waitStatus(t, bin, xdg, "the queue to be pushed after the remount", []string{mnt},
		"running (mount, pid "+fmt.Sprint(again.cmd.Process.Pid)+"), mounted", "queue:      nothing to push")
	wantAll(t, "alice's log after the remount", again.log.String(), "level=INFO msg=pushed path=pending.txt")

	b := newSyncNode(t, "bob", bin, relay, key)
	b.once(t)
	if !b.has("pending.txt", content) {
		data, err := os.ReadFile(b.path("pending.txt"))
		t.Fatalf("bob's pending.txt: %q, %v; want %q", data, err, content)
	}
	out, _, _ = runStatusBin(t, bin, xdg, mnt)
	wantAll(t, "alice's status once bob has the file", out, "queue:      nothing to push")
	again.unmount(t)
}

// escalefs status of a running mount names its process, says it is
// mounted and names the node and its relay, alone or among all nodes.
func TestStatusRunningMount(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	n := startMount(t, bin, "alice", relay, key)
	want := []string{n.mnt + "\n", fmt.Sprintf("running (mount, pid %d), mounted", n.cmd.Process.Pid),
		"node:       alice (id ", "relay:      " + relay, "files:      " + n.state + "/escalefs/",
		"queue:      nothing to push"}
	waitStatus(t, bin, n.state, "the mount's status", []string{n.mnt}, want...)
	out, errOut, code := runStatusBin(t, bin, n.state)
	if code != 0 {
		t.Fatalf("status of every node: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "status of every node", out, want...)
	// A path inside the mount names its node too.
	if err := os.Mkdir(filepath.Join(n.mnt, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runStatusBin(t, bin, n.state, filepath.Join(n.mnt, "sub"))
	if code != 0 {
		t.Fatalf("status of a directory in the mount: exit %d\n%s%s", code, out, errOut)
	}
	wantAll(t, "status of a directory in the mount", out, want[:2]...)
	n.unmount(t)
	out, _, _ = runStatusBin(t, bin, n.state, n.mnt)
	wantAll(t, "status after the unmount", out, "not running (last ran as mount")
}

// escalefs status of a running sync names its process, node and relay;
// once it is interrupted it says it stopped, and after a kill -9 it says
// that its process is gone although its status file says otherwise.
func TestStatusRunningSync(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	n := newSyncNode(t, "alice", bin, "file://"+t.TempDir(), key)
	n.write(t, "a.txt", "a\n")

	start := func() (*exec.Cmd, *testserver.SyncBuffer, chan error) {
		cmd := n.command(context.Background(), "--refresh", "1s")
		log := &testserver.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 2)
		go func() {
			err := cmd.Wait()
			done <- err
			done <- err // for the cleanup
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		return cmd, log, done
	}
	cmd, log, done := start()
	out := waitStatus(t, bin, n.state, "the sync's status", []string{n.dir},
		fmt.Sprintf("running (sync, pid %d)", cmd.Process.Pid), "queue:      nothing to push", "last sync:  20")
	wantAll(t, "status of the running sync", out, n.dir+"\n", "node:       alice (id ", "relay:      "+n.relay)
	if strings.Contains(out, "mounted") {
		t.Errorf("status of a sync mentions a mount:\n%s", out)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("sync exited with %v after SIGINT\n%s", err, log)
	}
	out, _, _ = runStatusBin(t, bin, n.state, n.dir)
	wantAll(t, "status after SIGINT", out, fmt.Sprintf("not running (last ran as sync, pid %d, stopped ", cmd.Process.Pid),
		"queue:      nothing to push")

	cmd, _, done = start()
	waitStatus(t, bin, n.state, "the second sync's status", []string{n.dir}, fmt.Sprintf("running (sync, pid %d)", cmd.Process.Pid))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	out, _, _ = runStatusBin(t, bin, n.state, n.dir)
	wantAll(t, "status after kill -9", out,
		fmt.Sprintf("not running (last ran as sync, pid %d, which ended without stopping cleanly)", cmd.Process.Pid))
}

// escalefs status of a path no node keeps in step says so and how to start
// one; with no node at all, status without a path says so and succeeds.
func TestStatusNoNode(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	out, errOut, code := run(t, "status")
	if code != 0 || !strings.Contains(out, "no escalefs node on this machine") || !strings.Contains(out, "escalefs sync --relay") {
		t.Errorf("status without nodes: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	out, errOut, code = run(t, "status", dir)
	if code == 0 {
		t.Fatalf("status of an unknown folder succeeded:\n%s", out)
	}
	wantAll(t, "the error for an unknown folder", errOut, "no escalefs node keeps "+resolvePath(dir)+" in step",
		"escalefs sync --relay URL --key-file FILE "+resolvePath(dir), "escalefs mount")

	// A node elsewhere does not make the path known.
	key, _ := keyFile(t)
	synced := t.TempDir()
	if _, errOut, code := run(t, "sync", "--once", "--relay", "file://"+t.TempDir(), "--key-file", key, "--name", "n", synced); code != 0 {
		t.Fatalf("sync --once: exit %d\n%s", code, errOut)
	}
	if _, _, code := run(t, "status", dir); code == 0 {
		t.Error("status of an unknown folder succeeded beside a known one")
	}
	out, errOut, code = run(t, "status")
	if code != 0 || !strings.Contains(out, synced+"\n") || !strings.Contains(out, "not running (last ran as sync --once") {
		t.Errorf("status of every node: exit %d\n%s%s", code, out, errOut)
	}
}

// A negative --stop-grace is refused, naming the value, by sync and mount.
func TestStatusStopGraceFlag(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	key, _ := keyFile(t)
	for _, command := range []string{"sync", "mount"} {
		_, errOut, code := run(t, command, "--relay", "file://"+t.TempDir(), "--key-file", key, "--stop-grace", "-2s", t.TempDir())
		if code == 0 || !strings.Contains(errOut, "--stop-grace -2s: expected 0") {
			t.Errorf("%s --stop-grace -2s: exit %d\n%s", command, code, errOut)
		}
	}
	out, _, _ := run(t, "sync", "--help")
	wantAll(t, "sync --help", out, "--stop-grace duration", "(default 5s)")
}
