package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/transfer"
)

// The payload of TestSyncKill9: large enough that a push and a pull take a
// while, so that a kill lands in their middle.
const (
	kill9Large        = 40 << 20 // bytes of a large file: 5 parts
	kill9LargeN       = 3        // large files per phase
	kill9Small        = 300      // small files, packed
	kill9MaxRounds    = 10       // --once rounds allowed to converge
	kill9SettleRounds = 4        // rounds of both nodes allowed to empty the relay
	kill9Deadline     = 90 * time.Second
	kill9Poll         = 2 * time.Millisecond
)

// kill -9 of escalefs sync in the middle of a push, then of a pull: the
// restarted nodes converge with every file intact, none lost, none
// duplicated, the killed node's log without gaps, and nothing left behind
// on the relay or in the folder.
func TestSyncKill9(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relayDir := t.TempDir()
	u := "file://" + relayDir
	a, b := newSyncNode(t, "A", bin, u, key), newSyncNode(t, "B", bin, u, key)

	// A creates the repository, B joins it: B is a known puller of A's
	// data before A pushes anything.
	aID := nodeIDOf(t, a.once(t))
	bID := nodeIDOf(t, b.once(t))
	want := make(map[string]string) // path → SHA-256 of the content
	start := time.Now()
	converged := false    // the nodes are in step after the first kill
	var leftover []string // temporary objects the first kill left on the relay

	t.Run("mid-push", func(t *testing.T) {
		for i := range kill9LargeN {
			want[fmt.Sprintf("large/push-%d.bin", i)] = writeRandom(t, a, fmt.Sprintf("large/push-%d.bin", i), kill9Large)
		}
		for i := range kill9Small {
			rel := fmt.Sprintf("small/d%02d/f%03d.txt", i%10, i)
			want[rel] = writeRandom(t, a, rel, 512+int64(i)*7)
		}
		checkTree(t, "A's folder before the push", a.dir, want)

		// Kill A while it stores a blob of a large file in chunks, once
		// the progress of that upload is saved (it says so at debug
		// level): one chunk blob is on the relay already and the next is
		// being written. On a remote relay most of a push is spent there,
		// so that is where a crash most likely lands.
		before := len(scanRelay(t, relayDir, aID).logs)
		p := startKillable(t, a, "--log-level", "debug")
		var at relayState
		p.waitUntil(t, "A to be storing a blob, its upload's progress saved", func() bool {
			at = scanRelay(t, relayDir, aID)
			if len(at.logs) > before {
				t.Fatalf("A published its push (log %q) before a kill could land in it", at.logs)
			}
			return strings.Contains(p.log.String(), "upload progress saved")
		})
		p.kill9(t)
		at = scanRelay(t, relayDir, aID)
		leftover = at.blobTemps
		t.Logf("killed A %s after its start: %d blob(s) and %d temporary object(s) %q under blobs/, %d record(s) in its log",
			time.Since(p.started).Round(time.Millisecond), len(at.blobs), len(at.blobTemps), at.blobTemps, len(at.logs))

		log := a.once(t)
		t.Logf("A restarted: deleted orphan blobs: %t",
			strings.Contains(log, "deleted blobs left on the relay by an interrupted push"))
		if !strings.Contains(log, "resuming an interrupted upload") {
			t.Errorf("A was killed after it saved the progress of an upload, but its restart did not resume it:\n%s", log)
		}
		// B, never killed, pulls every file once: A published each change
		// once, not again after its restart.
		pulled := pulledPaths(converge(t, b, a, want))
		for rel, n := range pulled {
			if _, ok := want[rel]; !ok || n != 1 {
				t.Errorf("B pulled %q %d time(s)", rel, n)
			}
		}
		if len(pulled) != len(want) {
			t.Errorf("B's log names %d files pulled, want %d", len(pulled), len(want))
		}
		checkTree(t, "A's folder after the restart", a.dir, want)
		checkLog(t, relayDir, "A", aID)
		checkLog(t, relayDir, "B", bID)
		converged = true
		settle(t, relayDir, a, b, nil)
		checkLog(t, relayDir, "A", aID)
	})
	if !converged {
		return
	}

	t.Run("mid-pull", func(t *testing.T) {
		var fresh []string
		for i := range kill9LargeN {
			rel := fmt.Sprintf("large/pull-%d.bin", i)
			want[rel] = writeRandom(t, a, rel, kill9Large)
			fresh = append(fresh, rel)
		}
		a.once(t)
		partial := filepath.Join(expectedStateDir(t, b.state, relayDir, b.dir), "partial")

		p := startKillable(t, b)
		var largest int64
		var arrived int
		p.waitUntil(t, "B to be downloading", func() bool {
			largest = largestFile(t, partial)
			arrived = 0
			for _, rel := range fresh {
				if fi, err := os.Stat(b.path(rel)); err == nil && fi.Size() == kill9Large {
					arrived++
				}
			}
			// More than one part in the partial file: the first part's
			// progress is committed (the next part is fetched only after).
			return largest > transfer.DefaultPartSize || (arrived > 0 && arrived < len(fresh))
		})
		p.kill9(t)
		largest = largestFile(t, partial)
		temps := tempFiles(t, b.dir)
		midFile := largest > transfer.DefaultPartSize
		if midFile {
			t.Logf("killed B %s after its start in the middle of a large file: %d of its bytes in partial/, %d of %d new files arrived, %d temporary file(s) in its folder",
				time.Since(p.started).Round(time.Millisecond), largest, arrived, len(fresh), len(temps))
		} else {
			t.Logf("killed B %s after its start between two files: %d of %d new files arrived, %d bytes in partial/, %d temporary file(s) in its folder",
				time.Since(p.started).Round(time.Millisecond), arrived, len(fresh), largest, len(temps))
		}

		logs := converge(t, b, a, want)
		for rel := range pulledPaths(p.log.String() + logs) {
			if !slices.Contains(fresh, rel) {
				t.Errorf("B pulled %q again, a file it had before the kill", rel)
			}
		}
		if midFile && !strings.Contains(logs, "resuming an interrupted download") {
			t.Errorf("B was killed with %d bytes of a download done, but its restart did not resume it:\n%s", largest, logs)
		}
		if temps := tempFiles(t, b.dir); len(temps) > 0 {
			t.Errorf("temporary files left in B's folder: %q", temps)
		}
		if n := largestFile(t, partial); n >= 0 {
			t.Errorf("a partial download of %d bytes is left in %s", n, partial)
		}
		checkTree(t, "A's folder", a.dir, want)
		checkLog(t, relayDir, "A", aID)
		checkLog(t, relayDir, "B", bID)
		settle(t, relayDir, a, b, leftover) // reported already
	})
	t.Logf("both phases took %s", time.Since(start).Round(time.Millisecond))
}

// nodeIDOf finds the node ID in the "syncing" line of an escalefs sync log.
func nodeIDOf(t *testing.T, log string) string {
	t.Helper()
	m := regexp.MustCompile(`msg=syncing .* id=([0-9a-f]+) `).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no node ID in the log:\n%s", log)
	}
	return m[1]
}

var pulledLine = regexp.MustCompile(`(?m)^.* level=INFO msg=pulled path=(\S+)`)

// pulledPaths counts the "pulled" lines of a log by path.
func pulledPaths(log string) map[string]int {
	n := make(map[string]int)
	for _, m := range pulledLine.FindAllStringSubmatch(log, -1) {
		n[m[1]]++
	}
	return n
}

// writeRandom writes size random bytes to rel in n's folder and returns
// their SHA-256 in hex.
func writeRandom(t *testing.T, n *syncNode, rel string, size int64) string {
	t.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashTree returns the SHA-256 of every regular file under dir, by slash
// path; anything else but directories is an error.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			out[filepath.ToSlash(rel)] = "not a regular file: " + d.Type().String()
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// treeDiff describes how got differs from want, at most a few lines of it.
func treeDiff(want, got map[string]string) string {
	var missing, extra, changed []string
	for p, h := range want {
		switch g, ok := got[p]; {
		case !ok:
			missing = append(missing, p)
		case g != h:
			changed = append(changed, p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			extra = append(extra, p)
		}
	}
	if len(missing)+len(extra)+len(changed) == 0 {
		return ""
	}
	show := func(ps []string) string {
		sort.Strings(ps)
		if len(ps) > 5 {
			return fmt.Sprintf("%q and %d more", ps[:5], len(ps)-5)
		}
		return fmt.Sprintf("%q", ps)
	}
	return fmt.Sprintf("%d missing %s, %d extra %s, %d with other content %s",
		len(missing), show(missing), len(extra), show(extra), len(changed), show(changed))
}

func checkTree(t *testing.T, what, dir string, want map[string]string) {
	t.Helper()
	if d := treeDiff(want, hashTree(t, dir)); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// converge runs --once rounds of n, then of other, until n's folder holds
// exactly want, and returns n's logs.
func converge(t *testing.T, n, other *syncNode, want map[string]string) string {
	t.Helper()
	var logs strings.Builder
	for round := 1; ; round++ {
		logs.WriteString(n.once(t))
		d := treeDiff(want, hashTree(t, n.dir))
		if d == "" {
			t.Logf("node %s has every file after %d round(s)", n.name, round)
			return logs.String()
		}
		if round == kill9MaxRounds {
			t.Fatalf("node %s still differs after %d rounds: %s\n%s", n.name, round, d, logs.String())
		}
		other.once(t)
	}
}

// settle runs rounds of both nodes until the relay holds no blob, as it
// should once everything is pulled and acknowledged: no blob of an
// interrupted push may be left behind, nor any temporary object but the
// known ones.
func settle(t *testing.T, relayDir string, a, b *syncNode, known []string) {
	t.Helper()
	var blobs, temps []string
	for round := 1; round <= kill9SettleRounds; round++ {
		a.once(t)
		b.once(t)
		rs := scanRelay(t, relayDir, "")
		blobs = rs.blobs
		temps = slices.DeleteFunc(rs.blobTemps, func(p string) bool { return slices.Contains(known, p) })
		if len(blobs)+len(temps) == 0 {
			t.Logf("the relay holds no blob after %d settling round(s)", round)
			return
		}
	}
	if len(blobs) > 0 {
		t.Errorf("blobs left on the relay after %d settling rounds: %q", kill9SettleRounds, blobs)
	}
	if len(temps) > 0 {
		t.Errorf("temporary objects of a killed upload left on the relay after %d settling rounds: %q", kill9SettleRounds, temps)
	}
}

// relayState is what a file:// relay directory holds: the objects under
// blobs/ (temporary ones apart) and the records of one node's log.
type relayState struct {
	blobs, blobTemps []string
	logs             []string
}

func scanRelay(t *testing.T, relayDir, node string) relayState {
	t.Helper()
	var rs relayState
	err := filepath.WalkDir(filepath.Join(relayDir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // not created yet, or pruned while walking
		case err != nil || d.IsDir():
			return err
		}
		rel, _ := filepath.Rel(relayDir, p)
		if localdir.IsTemp(d.Name()) {
			rs.blobTemps = append(rs.blobTemps, filepath.ToSlash(rel))
		} else {
			rs.blobs = append(rs.blobs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if node != "" {
		ents, err := os.ReadDir(filepath.Join(relayDir, "nodes", node, "log"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range ents {
			rs.logs = append(rs.logs, e.Name())
		}
	}
	return rs
}

var logRecordName = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkLog checks that a node's log on the relay is a run of consecutive
// sequence numbers that starts at 0, or right after one of its snapshots
// (which replace the records they cover), with nothing else in it.
func checkLog(t *testing.T, relayDir, name, node string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(relayDir, "nodes", node, "log"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range ents {
		if !logRecordName.MatchString(e.Name()) {
			t.Errorf("node %s's log holds %q, not a record", name, e.Name())
			continue
		}
		seq, _ := strconv.ParseUint(e.Name(), 16, 64)
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("node %s's log has a gap: record %d follows %d (records %v)", name, seqs[i], seqs[i-1], seqs)
		}
	}
	snaps, err := os.ReadDir(filepath.Join(relayDir, "nodes", node, "snap"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var covered []uint64 // next record each snapshot leaves to the log
	for _, s := range snaps {
		if seq, err := strconv.ParseUint(s.Name(), 16, 64); err == nil && logRecordName.MatchString(s.Name()) {
			covered = append(covered, seq+1)
		}
	}
	switch {
	case len(seqs) == 0 && len(covered) == 0:
		t.Errorf("node %s has neither records nor a snapshot on the relay", name)
	case len(seqs) > 0 && seqs[0] != 0 && (len(covered) == 0 || slices.Max(covered) < seqs[0]):
		t.Errorf("node %s's log starts at record %d, and no snapshot covers the records before (snapshots up to %v)", name, seqs[0], covered)
	}
	t.Logf("node %s's log: records %v, snapshots covering up to %v", name, seqs, covered)
}

// largestFile returns the size of the largest file in dir, or -1 when it
// holds none.
func largestFile(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	largest := int64(-1)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			largest = max(largest, fi.Size())
		}
	}
	return largest
}

// tempFiles lists the temporary files of escalefs under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && localdir.IsTemp(d.Name()) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// killable is a running escalefs sync that the test kills.
type killable struct {
	name    string
	cmd     *exec.Cmd
	log     *testserver.SyncBuffer
	done    chan error
	started time.Time
}

// startKillable runs escalefs sync (not --once) as node n until it is
// killed or the test ends.
func startKillable(t *testing.T, n *syncNode, extra ...string) *killable {
	t.Helper()
	p := &killable{name: n.name, cmd: n.command(context.Background(), extra...), log: &testserver.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.done != nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitUntil polls cond every few milliseconds until it holds, failing if
// the process exits first or the deadline passes.
func (p *killable) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(kill9Deadline)
	for !cond() {
		select {
		case err := <-p.done:
			p.done = nil
			t.Fatalf("node %s exited (%v) before %s\n%s", p.name, err, what, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", kill9Deadline, what, p.log.String())
		}
		time.Sleep(kill9Poll)
	}
}

// kill9 sends SIGKILL and checks that the process died of it.
func (p *killable) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-p.done:
		p.done = nil
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s did not die within 10s of SIGKILL", p.name)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("node %s: %v after SIGKILL, want death by the signal\n%s", p.name, err, p.log.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("node %s exited (%v) before SIGKILL reached it\n%s", p.name, err, p.log.String())
	}
}
