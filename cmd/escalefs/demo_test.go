package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// runDemo runs scripts/demo.sh with bin in dir, as make demo does from the
// repository's root, and returns its output and error. Past the deadline
// the script gets SIGINT, which its trap answers by unmounting.
func runDemo(t *testing.T, script, bin, dir string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, bin)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("the demo did not end within 3 minutes")
	}
	return out.String(), err
}

// make demo works end to end: the script mounts alice and bob under ./demo,
// a file written in alice's mount arrives in bob's, bob's deletion reaches
// alice, and it unmounts both and waits for their processes to exit. Run
// again over the ./demo of a run that left a mount behind, it unmounts it
// and starts afresh.
func TestDemo(t *testing.T) {
	mountUsable(t)
	if _, err := exec.LookPath("bash"); err != nil {
		testserver.Unavailable(t, "no bash in $PATH")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildEscalefs(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(dir, "demo")
	mnts := []string{filepath.Join(demo, "alice"), filepath.Join(demo, "bob")}
	// Whatever happens, no mount and no mount process stays behind.
	t.Cleanup(func() {
		for _, pid := range processesWith(t, bin) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, mnt := range mnts {
			_ = exec.Command("fusermount", "-u", "-z", mnt).Run()
		}
	})
	// checkStopped checks that the demo left nothing mounted or running.
	checkStopped := func() {
		t.Helper()
		for _, mnt := range mnts {
			if isMounted(t, mnt) {
				t.Errorf("%s is still mounted after the demo", mnt)
			}
		}
		waitFor(t, 10*time.Second, "no escalefs mount process to be left", func() bool {
			for _, pid := range processesWith(t, bin) {
				if alive(pid) {
					return false
				}
			}
			return true
		})
	}

	out, err := runDemo(t, script, bin, dir)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"mounted " + mnts[0] + " (log: ",
		"mounted " + mnts[1] + " (log: ",
		"hello.txt and photos/big.jpg arrived in bob's mount after ",
		"the deletion of hello.txt reached alice's mount after ",
		"photos/big.jpg: w-",
		"alice's escalefs mount (pid ",
		"bob's escalefs mount (pid ",
		"The demo is done.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"key", "relay/escale.json"} {
		if _, err := os.Stat(filepath.Join(demo, f)); err != nil {
			t.Errorf("the demo left no %s: %v", f, err)
		}
	}
	checkStopped()
	if t.Failed() {
		t.FailNow()
	}

	// A mount left behind by an earlier run.
	mout, merr, code := mountBG(t, bin, filepath.Join(demo, "state-alice"),
		"--relay", "file://"+filepath.Join(demo, "relay"), "--key-file", filepath.Join(demo, "key"),
		"--name", "alice", mnts[0])
	if code != 0 {
		t.Fatalf("escalefs mount over the demo's alice: exit %d\n%s%s", code, mout, merr)
	}
	out, err = runDemo(t, script, bin, dir)
	if err != nil {
		t.Fatalf("demo.sh over a mounted ./demo/alice: %v\n%s", err, out)
	}
	for _, want := range []string{
		"unmounting ./demo/alice, left mounted by an earlier run",
		"arrived in bob's mount after ",
		"The demo is done.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the second run's output lacks %q:\n%s", want, out)
		}
	}
	checkStopped()
}
