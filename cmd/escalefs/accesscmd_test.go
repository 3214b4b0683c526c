package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/internal/testserver"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/filter"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
)

// The mode, quota and filter flags are parsed as a user writes them.
func TestSyncFlagsParsed(t *testing.T) {
	for _, tc := range []struct {
		mode, quota string
		wantMode    proto.Mode
		wantQuota   int64
	}{
		{"shared", "0", proto.ModeShared, 0},
		{"upload", "2GiB", proto.ModeUpload, 2 << 30},
		{"push-only", "500KB", proto.ModeUpload, 500_000},
		{"download", "1 gb", proto.ModeDownload, 1_000_000_000},
		{"pull-only", "1000", proto.ModeDownload, 1000},
		{"Conservative", "500MiB", proto.ModeConservative, 500 << 20},
	} {
		f := &syncFlags{refresh: time.Second, lockTimeout: time.Hour, mode: tc.mode, diskQuota: tc.quota,
			filter: filterOpts([]string{"*.log"}, []string{"*.txt", "/IMG_/"})}
		if err := f.check(); err != nil {
			t.Errorf("--mode %q --disk-quota %q: %v", tc.mode, tc.quota, err)
			continue
		}
		if f.parsedMode != tc.wantMode || f.parsedQuota != tc.wantQuota {
			t.Errorf("--mode %q --disk-quota %q: mode %q, quota %d; want %q, %d",
				tc.mode, tc.quota, f.parsedMode, f.parsedQuota, tc.wantMode, tc.wantQuota)
		}
		if f.compiled == nil || !f.compiled.Skip("app.log", false) || f.compiled.Skip("a.txt", false) {
			t.Errorf("filter %v does not skip app.log and keep a.txt", f.compiled)
		}
	}
}

// The errors of escalefs access that need no relay: bad MODS, a file in no
// synced folder, a file the cache does not know, the synced folder itself,
// and a folder synced with two repositories.
func TestAccessErrors(t *testing.T) {
	home := filepath.Join(t.TempDir(), "state [*]") // glob characters are literal
	t.Setenv("XDG_STATE_HOME", home)
	kf, _ := keyFile(t)
	relayDir, dir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "known.txt"), []byte("known"), 0o644)
	if out, errOut, code := run(t, "sync", "--once", "--relay", "file://"+relayDir, "--key-file", kf, dir); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	known := filepath.Join(dir, "known.txt")
	outside := writeFile(t, filepath.Join(t.TempDir(), "elsewhere.txt"), []byte("x"), 0o644)
	fresh := writeFile(t, filepath.Join(dir, "fresh.txt"), []byte("new"), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no FILE", []string{"access"}, []string{"missing FILE"}},
		{"three arguments", []string{"access", known, "r-", "w-"}, []string{"3 arguments given", "FILE and optionally MODS"}},
		{"bad MODS", []string{"access", known, "rx"}, []string{`access modifiers "rx"`, `unexpected "x"`, "e.g. r-, w+"}},
		{"contradictory MODS", []string{"access", known, "r-r+"}, []string{`access modifiers "r-r+"`, "r given twice"}},
		{"not synced", []string{"access", outside},
			[]string{outside + " is not in a folder synced by escalefs sync (no state under " + filepath.Join(home, "escalefs")}},
		{"not known yet", []string{"access", fresh, "r-"},
			[]string{fresh + " is not known to the sync of " + resolvePath(dir), "after the next sync round"}},
		{"not known yet, read", []string{"access", fresh},
			[]string{fresh + " is not known to the sync of " + resolvePath(dir), "after the next sync round"}},
		{"the folder itself", []string{"access", dir, "r-"}, []string{dir + " is the synced folder itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
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

	// Without a running sync, escalefs access works on the cache directly
	// and keeps access.json up to date.
	out, errOut, code := run(t, "access", known)
	if code != 0 || out != "known.txt: no modifiers set (the mode's defaults apply)\n" {
		t.Errorf("access known.txt: exit %d, %q%s", code, out, errOut)
	}
	out, errOut, code = run(t, "access", known, "r-w+")
	if code != 0 || !strings.HasPrefix(out, "known.txt: r-w+ (never pushed") {
		t.Errorf("access known.txt r-w+: exit %d, %q%s", code, out, errOut)
	}
	out, errOut, code = run(t, "access", known, "w?")
	if code != 0 || !strings.HasPrefix(out, "known.txt: r- (") {
		t.Errorf("access known.txt w?: exit %d, %q%s", code, out, errOut)
	}
	st := expectedStateDir(t, home, relayDir, dir)
	if m, err := escsync.ReadAccessFile(st); err != nil || len(m) != 1 || m["known.txt"] != "r-" {
		t.Errorf("access.json: %v, %v; want known.txt: r-", m, err)
	}

	// A folder synced with two repositories: escalefs access cannot tell
	// which one is meant.
	twin := filepath.Join(filepath.Dir(st), "0123456789abcdef-"+folderKey(resolvePath(dir)))
	if err := os.Mkdir(twin, 0o700); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "access", known)
	if code == 0 || !strings.Contains(errOut, "2 repositories") || !strings.Contains(errOut, st) || !strings.Contains(errOut, twin) {
		t.Errorf("access in a folder with two states: exit %d, %s", code, errOut)
	}
}

// A change asked of a sync that does not answer within --wait stays queued,
// and the next escalefs sync applies it.
func TestAccessQueued(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_STATE_HOME", home)
	kf, _ := keyFile(t)
	relayDir, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	args := []string{"sync", "--once", "--relay", "file://" + relayDir, "--key-file", kf, dir}
	if out, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	st := expectedStateDir(t, home, relayDir, dir)

	// This process holds the cache, as a running escalefs sync would.
	store, err := cache.Open(filepath.Join(st, "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, code := run(t, "access", "--wait", "300ms", file, "r-")
	if code != 0 || !strings.HasPrefix(out, "notes.txt: r- queued: the running escalefs sync (pid ") ||
		!strings.Contains(out, "applies it at its next round") {
		t.Errorf("access while the cache is held: exit %d, %q%s", code, out, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("access waited %s with --wait 300ms", d)
	}
	reqs, err := os.ReadDir(filepath.Join(st, escsync.AccessRequestsDir))
	if err != nil || len(reqs) != 1 || !strings.HasSuffix(reqs[0].Name(), ".json") {
		t.Fatalf("queued requests: %v, %v; want one .json file", reqs, err)
	}
	if fi, err := reqs[0].Info(); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("request file: %v, %v; want mode 0600", fi, err)
	}
	data, err := os.ReadFile(filepath.Join(st, escsync.AccessRequestsDir, reqs[0].Name()))
	var req escsync.AccessRequest
	if err != nil || json.Unmarshal(data, &req) != nil || req != (escsync.AccessRequest{Path: "notes.txt", Mods: "r-"}) {
		t.Errorf("request %s: %v; want path notes.txt, mods r-", data, err)
	}
	// Reading goes through access.json meanwhile: nothing set yet.
	if out, errOut, code := run(t, "access", file); code != 0 || !strings.HasPrefix(out, "notes.txt: no modifiers set") {
		t.Errorf("access while the cache is held: exit %d, %q%s", code, out, errOut)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	if out, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	if reqs, _ := os.ReadDir(filepath.Join(st, escsync.AccessRequestsDir)); len(reqs) != 0 {
		t.Errorf("the next sync left the request: %v", reqs)
	}
	if out, errOut, code := run(t, "access", file); code != 0 || !strings.HasPrefix(out, "notes.txt: r- (") {
		t.Errorf("access after the next sync: exit %d, %q%s", code, out, errOut)
	}
}

// access runs escalefs access as node n and returns its output.
func (n *syncNode) access(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"access"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+n.state)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustAccess runs escalefs access and checks that it succeeds with output
// starting with want.
func (n *syncNode) mustAccess(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, err := n.access(t, args...)
	if err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("node %s: escalefs access %s: %v, output %q, want %q\n%s", n.name, strings.Join(args, " "), err, out, want, errOut)
	}
}

// start runs escalefs sync as a subprocess until the test ends and returns
// its log.
func (n *syncNode) start(t *testing.T, extra ...string) *testserver.SyncBuffer {
	t.Helper()
	cmd := n.command(context.Background(), extra...)
	stderr := &testserver.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, 30*time.Second, "node "+n.name+" to start syncing", func() bool {
		return strings.Contains(stderr.String(), "level=INFO msg=syncing")
	})
	return stderr
}

// conflictCopies returns the conflict copies in n's folder, by relative
// path, with their content.
func (n *syncNode) conflictCopies(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(n.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !localdir.IsConflictName(p) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(n.dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// escalefs access end to end: on a node at rest (through its cache) and on
// a running node (through a request file that escalefs sync applies).
func TestAccessEndToEnd(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)

	t.Run("at rest", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)
		a.write(t, "notes.txt", "v1\n")
		a.write(t, "docs/plan.txt", "plan v1\n")
		a.once(t)
		b.once(t)
		if !b.has("notes.txt", "v1\n") || !b.has("docs/plan.txt", "plan v1\n") {
			t.Fatal("A's files did not reach B")
		}

		a.mustAccess(t, "notes.txt: no modifiers set", a.path("notes.txt"))
		a.mustAccess(t, "notes.txt: r- (never pushed: private to this node)", a.path("notes.txt"), "r-")
		a.mustAccess(t, "notes.txt: r- (", a.path("notes.txt"))
		// A relative FILE, from a subdirectory of the folder.
		cmd := exec.Command(bin, "access", "plan.txt", "w-")
		cmd.Dir = a.path("docs")
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+a.state)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "docs/plan.txt: w- (protected") {
			t.Fatalf("escalefs access plan.txt w- in docs: %v\n%s", err, out)
		}

		// The private file's change stays on A; the other one goes out.
		a.write(t, "notes.txt", "v2, private\n")
		a.write(t, "docs/plan.txt", "plan v2\n")
		log := a.once(t)
		if strings.Contains(log, "msg=pushed path=notes.txt") {
			t.Errorf("A pushed its r- file:\n%s", log)
		}
		b.once(t)
		if !b.has("notes.txt", "v1\n") {
			data, _ := os.ReadFile(b.path("notes.txt"))
			t.Errorf("B got A's change of an r- file: %q", data)
		}
		if !b.has("docs/plan.txt", "plan v2\n") {
			t.Error("the change of a w- file (that may be read) did not reach B")
		}
		a.mustAccess(t, "notes.txt: r- (", a.path("notes.txt"))

		// Unset again, the change kept back goes out.
		a.mustAccess(t, "notes.txt: no modifiers set", a.path("notes.txt"), "r?")
		a.once(t)
		b.once(t)
		if !b.has("notes.txt", "v2, private\n") {
			data, _ := os.ReadFile(b.path("notes.txt"))
			t.Errorf("the change kept back while notes.txt was r- did not reach B after r?: B has %q", data)
		}
	})

	t.Run("running", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)
		a.write(t, "shared.txt", "from A\n")
		a.once(t)
		bLog := b.start(t, "--refresh", "1s")
		waitFor(t, 30*time.Second, "shared.txt to reach B", func() bool { return b.has("shared.txt", "from A\n") })

		b.mustAccess(t, "shared.txt: no modifiers set", b.path("shared.txt"))
		b.mustAccess(t, "shared.txt: w- (protected: pulled versions are kept beside it as conflict copies)",
			b.path("shared.txt"), "w-")
		if !strings.Contains(bLog.String(), `msg="access modifiers set" path=shared.txt access=w-`) {
			t.Errorf("B's log does not show the change:\n%s", bLog.String())
		}
		b.mustAccess(t, "shared.txt: w- (", b.path("shared.txt"))
		reqDir := filepath.Join(expectedStateDir(t, b.state, relayDir, b.dir), escsync.AccessRequestsDir)
		reqs, err := os.ReadDir(reqDir)
		if err != nil || len(reqs) != 0 {
			t.Errorf("access requests left behind: %v, %v", reqs, err)
		}
		if fi, err := os.Stat(reqDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v; want a directory of mode 0700", reqDir, err)
		}

		// A's edit reaches B as a conflict copy; B's file stays.
		a.write(t, "shared.txt", "edited by A\n")
		a.once(t)
		waitFor(t, 30*time.Second, "A's edit to reach B as a conflict copy", func() bool {
			for p, data := range b.conflictCopies(t) {
				if strings.HasPrefix(p, "shared.sync-conflict-") && data == "edited by A\n" {
					return true
				}
			}
			return false
		})
		if !b.has("shared.txt", "from A\n") {
			data, _ := os.ReadFile(b.path("shared.txt"))
			t.Errorf("B's w- file was overwritten: %q", data)
		}

		// A file B does not know: the running sync refuses the request.
		out, errOut, err := b.access(t, b.path("no/such/file.txt"), "r-")
		if err == nil || !strings.Contains(errOut, "did not set r- on no/such/file.txt") ||
			!strings.Contains(errOut, "after the next sync round") {
			t.Errorf("access of a file B does not know: %v\n%s%s", err, out, errOut)
		}
		st := expectedStateDir(t, b.state, relayDir, b.dir)
		data, err := os.ReadFile(filepath.Join(st, escsync.AccessFile))
		var m map[string]string
		if err != nil || json.Unmarshal(data, &m) != nil || len(m) != 1 || m["shared.txt"] != "w-" {
			t.Errorf("access.json: %s, %v; want only shared.txt: w-", data, err)
		}
	})
}

// Filters and modes end to end: an excluded file and a download node's own
// file are not pushed, a download node still pulls.
func TestSyncFilterAndModeEndToEnd(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)

	t.Run("exclude", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)
		a.flags = []string{"--exclude", "*.log", "--exclude-dir", "build"}
		a.write(t, "app.log", "log line\n")
		a.write(t, "sub/debug.log", "more log\n")
		a.write(t, "build/out.txt", "built\n")
		a.write(t, "keep.txt", "keep\n")
		a.write(t, ".notes.txt.swp", "vim swap\n")
		log := a.once(t)
		for _, p := range []string{"app.log", "sub/debug.log", "build/out.txt", ".notes.txt.swp"} {
			if strings.Contains(log, "msg=pushed path="+p) {
				t.Errorf("A pushed %s:\n%s", p, log)
			}
		}
		if !strings.Contains(log, `filter="exclude [\"*.log\"] exclude-dirs [\"build\"], default ignores"`) {
			t.Errorf("A's syncing line does not show the filter:\n%s", log)
		}
		b.once(t)
		if !b.has("keep.txt", "keep\n") {
			t.Fatal("keep.txt did not reach B")
		}
		for _, p := range []string{"app.log", "sub/debug.log", "build/out.txt", ".notes.txt.swp"} {
			if _, err := os.Lstat(b.path(p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s reached B: %v", p, err)
			}
		}
		// The default ignores can be turned off; filters apply to pulls
		// too, so on both nodes.
		a.flags = append(a.flags, "--no-default-ignores")
		b.flags = []string{"--no-default-ignores"}
		alog := a.once(t)
		blog := b.once(t)
		if !b.has(".notes.txt.swp", "vim swap\n") {
			t.Errorf("with --no-default-ignores, .notes.txt.swp did not reach B\nA:\n%s\nB:\n%s", alog, blog)
		}
		if _, err := os.Lstat(b.path("app.log")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("app.log reached B: %v", err)
		}
	})

	t.Run("download", func(t *testing.T) {
		relayDir := t.TempDir()
		u := "file://" + relayDir
		a, down := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "D", bin, u, key)
		down.flags = []string{"--mode", "download"}
		a.write(t, "from-a.txt", "A's\n")
		a.once(t)
		down.write(t, "mine.txt", "stays on D\n")
		log := down.once(t)
		if !strings.Contains(log, "mode=download") {
			t.Errorf("D's syncing line does not show the mode:\n%s", log)
		}
		if strings.Contains(log, "msg=pushed") {
			t.Errorf("the download node pushed:\n%s", log)
		}
		if !down.has("from-a.txt", "A's\n") {
			t.Error("the download node did not pull A's file")
		}
		a.once(t)
		if _, err := os.Lstat(a.path("mine.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the download node's file reached A: %v", err)
		}
		a.write(t, "from-a.txt", "A's v2\n")
		a.once(t)
		down.once(t)
		if !down.has("from-a.txt", "A's v2\n") {
			t.Error("the download node did not pull A's update")
		}
	})
}

// filterOpts is a filter with Exclude and Include set.
func filterOpts(exclude, include []string) (o filter.Options) {
	o.Exclude, o.Include = exclude, include
	return o
}
