package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// A node that synced before starts while its FTP relay is down, from its
// cache: it runs throughout the outage, status shows the relay
// unreachable with the file queued, and once the server is back the file
// reaches another node. A first start with --once fails at once with the
// "relay unreachable" status.
func TestOfflineStart(t *testing.T) {
	srv := testserver.StartPureFTPd(t)
	u, _ := srv.NewRelayDir(t, "ftp")
	pw := writeFile(t, filepath.Join(t.TempDir(), "pw"), []byte(srv.Password+"\n"), 0o600)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	alice := newSyncNode(t, "alice", bin, u.String(), key)
	bob := newSyncNode(t, "bob", bin, u.String(), key)
	for _, n := range []*syncNode{alice, bob} {
		n.flags = []string{"--password-file", pw, "--refresh", "1s", "--timeout", "5s"}
	}
	alice.write(t, "before.txt", "synced before the outage\n")
	alice.once(t)
	// carol mounts the folder, and has it.
	mountable := os.Geteuid() == 0 || testserver.InCI()
	var carolMnt, carolState string
	carolFlags := []string{"--password-file", pw, "--timeout", "5s"}
	if mountable {
		mountUsable(t)
		carolMnt, carolState = t.TempDir(), t.TempDir()
		carol := startMountAt(t, bin, "carol", u.String(), key, carolMnt, carolState, carolFlags...)
		waitFor(t, 30*time.Second, "before.txt in carol's mount", func() bool { return carol.has("before.txt", "synced before the outage\n") })
		carol.unmount(t)
	}

	srv.Process.Stop()
	if mountable {
		// On the train: carol mounts her folder without the relay, and
		// works in it.
		carol := startMountAt(t, bin, "carol", u.String(), key, carolMnt, carolState, carolFlags...)
		if !carol.has("before.txt", "synced before the outage\n") {
			t.Errorf("carol's mount, started offline, lacks before.txt")
		}
		writeFile(t, filepath.Join(carolMnt, "train.txt"), []byte("written on the train\n"), 0o644)
		defer func() {
			waitFor(t, 60*time.Second, "train.txt to reach bob", func() bool {
				bob.once(t)
				return bob.has("train.txt", "written on the train\n")
			})
			carol.unmount(t)
		}()
	}
	// A node that never synced cannot start without the relay.
	_, errOut, code := runBin(t, bin, t.TempDir(), "sync", "--once", "--relay", u.String(), "--password-file", pw,
		"--key-file", key, "--timeout", "5s", t.TempDir())
	if code != exitRelay || !strings.Contains(errOut, "unreachable") {
		t.Errorf("a first sync --once while the relay is down: exit %d, want %d\n%s", code, exitRelay, errOut)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := alice.command(ctx)
	log := &testserver.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 30*time.Second, "alice to start offline", func() bool {
		select {
		case err := <-done:
			t.Fatalf("alice's sync exited while the relay was down: %v\n%s", err, log)
		default:
		}
		return strings.Contains(log.String(), "starting from this node's cache")
	})
	alice.write(t, "during.txt", "written during the outage\n")
	waitStatus(t, bin, alice.state, "status to show the outage", []string{alice.dir},
		"relay unreachable since ", "(retrying; 1 file queued)")

	srv.Restart(t)
	waitFor(t, 60*time.Second, "during.txt to reach bob", func() bool {
		bob.once(t)
		return bob.has("during.txt", "written during the outage\n") && bob.has("before.txt", "synced before the outage\n")
	})
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, code = runStatusBin(t, bin, alice.state, alice.dir)
		if code == 0 && !strings.Contains(out, "relay unreachable since") && strings.Contains(out, "running (sync") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show the relay working again: exit %d\n%s\n%s", code, out, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("alice's sync exited: %v\n%s", err, log)
	default:
	}

}
