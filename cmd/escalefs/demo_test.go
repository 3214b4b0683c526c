package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// pathWithout makes a directory of links to every program of $PATH but
// those named in skip, for a $PATH on which they are missing.
func pathWithout(t *testing.T, skip ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if slices.Contains(skip, name) {
				continue
			}
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err == nil {
				continue // the first on $PATH wins
			}
			if err := os.Symlink(filepath.Join(d, name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// make demo from a clean clone, as root on a machine without fusermount:
// it mounts with mount(2) and unmounts with umount.
func TestDemoCleanCloneWithoutFusermount(t *testing.T) {
	rootUsable(t)
	for _, p := range []string{"git", "make", "bash"} {
		if _, err := exec.LookPath(p); err != nil {
			testserver.Unavailable(t, "no %s in $PATH", p)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "escalefs")
	if out, err := exec.Command("git", "clone", "-q", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	path := pathWithout(t, "fusermount", "fusermount3")
	t.Cleanup(func() {
		for _, n := range []string{"alice", "bob"} {
			_ = syscall.Unmount(filepath.Join(clone, "demo", n), syscall.MNT_DETACH)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "demo")
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "PATH="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo in a clean clone without fusermount: %v\n%s", err, out)
	}
	for _, want := range []string{"hello.txt and photos/big.jpg arrived in bob's mount", "umount ", "The demo is done."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
