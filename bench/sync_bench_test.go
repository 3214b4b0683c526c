package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
)

const (
	syncSmallCount   = 1000
	syncSmallSize    = 4 << 10
	syncBigSize      = 1 << 30
	syncLatencyFiles = 40
	// syncLinkMiBps is the speed of the link the apache-webdav-<n>MiBps
	// target makes of the server: each tool's bandwidth limit, both ways.
	syncLinkMiBps = 50
	// syncRefresh is the --refresh of the long-running nodes of the
	// latency figure.
	syncRefresh = 2 * time.Second
	// syncDeadline bounds every wait: one process run, one file's arrival.
	syncDeadline = 10 * time.Minute
	// syncPoll is how often the latency figure looks for an arrival.
	syncPoll = 5 * time.Millisecond
)

// BenchmarkSync measures `escalefs sync` end to end, with the binary built
// from this tree and run as separate processes, one per node, each with its
// own $XDG_STATE_HOME, sharing a key file, against a directory relay
// (file) and Apache's WebDAV (apache-webdav):
//
//   - <relay>/1000x4KiB and <relay>/1GiB: the time for the files to reach
//     a second node. Node A runs `escalefs sync --once` (push), then node B
//     does (pull); the figure runs from A's start to B's exit. Both nodes
//     ran --once on empty folders before, so the figure is the transfer
//     only, not the repository's creation or the nodes' registration. B's
//     folder is checked byte for byte afterwards. Each iteration also runs
//     the baseline against the same server: `rclone copy` from a folder
//     like A's up to the relay, then down into a fresh folder. The local
//     copies rclone writes are fsynced, file by file, inside its timed
//     part, because escalefs fsyncs what it puts in a directory relay and
//     every file it installs. The benchmark's own timer (ns/op) runs during
//     escalefs only.
//   - <relay>/1GiB-wholefile: the same file as before chunks, whole in
//     parts (--chunks=false).
//   - <relay>/1GiB-edit1MiB and <relay>/1GiB-edit1MiB-wholefile: both
//     nodes hold the 1 GiB file (synced before, untimed); A changes 1 MiB
//     in its middle, and the figure is the time for the change to reach B:
//     as chunks (delta sync), and with --chunks=false (the whole file
//     again). The baseline copies the changed file whole, as rclone does.
//   - apache-webdav-50MiBps: the edits again, with every tool limited to
//     50 MiB/s each way (escalefs --bwlimit, rclone --bwlimit, curl
//     --limit-rate): Apache on 127.0.0.1 as a 400 Mbit/s link, where bytes
//     cost time as they do over a network. The untimed runs that sync the
//     file before the edit are not limited.
//   - On WebDAV, the 1 GiB workloads have a second baseline: plain curl,
//     one PUT of the file as it ends and one GET into a fresh folder
//     (fsynced), the least any tool can do through that server.
//   - apache-webdav/latency-refresh2s: both nodes run `escalefs sync
//     --refresh 2s`; files are written on A one at a time, each once the
//     previous one arrived on B, and the delay from the write's close on A
//     to the file's appearance on B (polled every 5 ms) is recorded.
//
// Before each timed part, sync(2) writes back what earlier steps left in
// the page cache (the generated files, what Apache stored without fsync),
// so that no figure pays for another's writeback.
//
// Metrics: s and MB/s of escalefs (MB = 10^6 bytes of file content),
// s-rclone and MB/s-rclone of the baseline, x-rclone, escalefs's speed as a
// multiple of rclone's (above 1 is faster); s-curl and x-curl likewise; s-push and s-pull, the two
// processes' shares; MiB-rss-push and MiB-rss-pull, each process's peak
// resident set (getrusage's ru_maxrss); ms-p50 and ms-p99 of the
// close→arrival delays. Each iteration runs every tool once first, once
// second and once last (but on the 50 MiB/s link): on a VM, the tool that
// runs first after a pause runs much faster than those that follow it
// (escalefs 3.3 s first, 4.6–5.2 s after curl; curl 2.9 s first, 5.5 s
// after escalefs, on 1 GiB over WebDAV), and the figures are the means
// (ns/op is the sum of escalefs's runs in an iteration).
// A table of all figures is printed at the end. The
// 1 GiB transfers take seconds and the rclone baseline of the small files
// over WebDAV most of a minute, so one iteration is the usual run:
//
//	go test -run '^$' -bench Sync -benchtime 1x ./bench/
func BenchmarkSync(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		testserver.Unavailable(b, "rclone is not installed")
	}
	scratch := b.TempDir()
	s := &syncBench{rclone: rclone, bin: buildEscalefs(b, scratch)}
	s.keyFile = filepath.Join(scratch, "key")
	if err := crypto.WriteKeyFile(s.keyFile, crypto.GenerateKey(), time.Now()); err != nil {
		b.Fatal(err)
	}
	// An empty configuration: rclone reads no user's remotes and says
	// nothing about a missing file.
	s.rcloneConfig = filepath.Join(scratch, "rclone.conf")
	if err := os.WriteFile(s.rcloneConfig, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	s.big = filepath.Join(scratch, "big")
	s.bigSum = writeBigFile(b, s.big)

	s.editedSum = editedSum(b, s.big)
	workloads := []syncWorkload{
		{name: fmt.Sprintf("%dx4KiB", syncSmallCount), bytes: syncSmallCount * syncSmallSize, fill: fillSmall, check: checkSmall},
		{name: "1GiB", bytes: syncBigSize, fill: s.fillBig, check: s.checkBig, single: "big"},
		{name: "1GiB-wholefile", bytes: syncBigSize, fill: s.fillBig, check: s.checkBig, single: "big",
			flags: []string{"--chunks=false"}},
		// 1 MiB changed in the middle of the 1 GiB file the nodes hold:
		// delta sync, and the whole file again as before (--chunks=false).
		{name: "1GiB-edit1MiB", bytes: syncBigSize, prepare: s.copyBig, fill: editBig, check: s.checkEdited,
			rcloneFill: s.fillEdited, single: "big"},
		{name: "1GiB-edit1MiB-wholefile", bytes: syncBigSize, prepare: s.copyBig, fill: editBig, check: s.checkEdited,
			rcloneFill: s.fillEdited, single: "big", flags: []string{"--chunks=false"}},
	}
	dav := testserver.StartApache(b, testserver.DAVOptions{})
	link := davSyncTarget(b, s, dav)
	link.name = fmt.Sprintf("apache-webdav-%dMiBps", syncLinkMiBps)
	link.escalefsFlags = []string{fmt.Sprintf("--bwlimit=%dMiB", syncLinkMiBps)}
	link.rcloneFlags = []string{fmt.Sprintf("--bwlimit=%dM", syncLinkMiBps)}
	link.curlFlags = []string{"--limit-rate", fmt.Sprintf("%dM", syncLinkMiBps)}
	link.workloads = []string{"1GiB-edit1MiB", "1GiB-edit1MiB-wholefile"}
	link.oneTurn = true
	for _, tg := range []syncTarget{fileSyncTarget(), davSyncTarget(b, s, dav), link} {
		for _, wl := range workloads {
			if tg.workloads != nil && !slices.Contains(tg.workloads, wl.name) {
				continue
			}
			row := &syncRow{target: tg.name, workload: wl.name, bytes: wl.bytes}
			b.Run(tg.name+"/"+wl.name, func(b *testing.B) { s.transfer(b, tg, wl, row) })
			if row.escalefs > 0 {
				s.rows = append(s.rows, row)
			}
		}
		if tg.name == "apache-webdav" {
			lat := &syncLatency{target: tg.name}
			b.Run(fmt.Sprintf("%s/latency-refresh%s", tg.name, syncRefresh), func(b *testing.B) { s.latency(b, tg, lat) })
			if lat.files > 0 {
				s.latencies = append(s.latencies, lat)
			}
		}
	}
	s.print(os.Stdout)
}

// syncBench holds what the sub-benchmarks of BenchmarkSync share.
type syncBench struct {
	bin          string // the escalefs binary
	rclone       string
	keyFile      string
	rcloneConfig string
	big          string // the 1 GiB source file
	bigSum       [32]byte
	editedSum    [32]byte // of the big file with editBig's change

	rows      []*syncRow
	latencies []*syncLatency
}

// syncTarget is one relay: fresh places on it for escalefs and for rclone.
type syncTarget struct {
	name string
	// relay returns the URL of a fresh, empty relay for escalefs and the
	// environment its processes need.
	relay func(b *testing.B) (url string, env []string)
	// remote returns a fresh rclone destination, the environment rclone
	// needs, and whether the destination is a local directory (whose files
	// the baseline then fsyncs).
	remote func(b *testing.B) (dst string, env []string, local bool)
	// curl, if set, PUTs the file src to a fresh place on the server and
	// GETs it back into dst, with curlFlags.
	curl func(b *testing.B, src, dst string, flags ...string)
	// Flags of the timed runs of each tool: a bandwidth limit for all
	// three makes the server a link of that speed.
	escalefsFlags, rcloneFlags, curlFlags []string
	// workloads, if set, are the only ones run on the target.
	workloads []string
	// oneTurn runs each tool once per iteration, in a fixed order,
	// instead of once first, once second and once last (see transfer):
	// for a link slow enough that the order does not show.
	oneTurn bool
}

// syncWorkload is a set of files to transfer.
type syncWorkload struct {
	name  string
	bytes int64
	fill  func(b *testing.B, dir string) // puts the files into dir
	check func(b *testing.B, dir string) // fails unless dir holds them intact
	// prepare, if set, puts what the nodes hold before into A's folder,
	// synced to B untimed; fill then changes it. rcloneFill puts the
	// files as they end into a fresh folder, for the baseline (which
	// copies a changed file whole). flags go to both escalefs runs.
	prepare    func(b *testing.B, dir string)
	rcloneFill func(b *testing.B, dir string)
	flags      []string
	// single names the workload's one file, which the curl baseline moves.
	single string
}

// syncRow holds the figures of one target and workload; durations are
// means per iteration.
type syncRow struct {
	target, workload string
	bytes            int64
	rclone           time.Duration
	curl             time.Duration // 0: no curl baseline
	escalefs         time.Duration
	push, pull       time.Duration
	rssPush, rssPull float64 // MiB, the largest of any iteration
	// relayBytes is what the repository took on a file relay after the
	// push (blobs, records, escale.json; padding and encryption
	// included); 0 on other relays.
	relayBytes int64
}

// syncLatency holds the close→arrival figures.
type syncLatency struct {
	target   string
	files    int
	p50, p99 time.Duration
	max      time.Duration
}

func fileSyncTarget() syncTarget {
	fresh := func(b *testing.B, prefix string) string {
		d, err := os.MkdirTemp(b.TempDir(), prefix)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	return syncTarget{
		name: "file",
		relay: func(b *testing.B) (string, []string) {
			return "file://" + fresh(b, "relay-"), nil
		},
		remote: func(b *testing.B) (string, []string, bool) {
			return fresh(b, "remote-"), nil, true
		},
	}
}

// davSyncTarget uses a fresh collection of the Apache server per call;
// rclone reaches the server through an on-the-fly remote set up by its
// environment variables.
func davSyncTarget(b *testing.B, s *syncBench, dav *testserver.DAVServer) syncTarget {
	out, err := exec.Command(s.rclone, "--config", s.rcloneConfig, "obscure", dav.Password).Output()
	if err != nil {
		b.Fatalf("rclone obscure: %v", err)
	}
	rcloneEnv := []string{
		"RCLONE_WEBDAV_URL=" + dav.URL,
		"RCLONE_WEBDAV_VENDOR=other",
		"RCLONE_WEBDAV_USER=" + dav.User,
		"RCLONE_WEBDAV_PASS=" + strings.TrimSpace(string(out)),
	}
	return syncTarget{
		name: "apache-webdav",
		relay: func(b *testing.B) (string, []string) {
			u, _ := dav.Subdir(b)
			return strings.Replace(u, "://", "://"+dav.User+"@", 1), []string{"ESCALEFS_PASSWORD=" + dav.Password}
		},
		remote: func(b *testing.B) (string, []string, bool) {
			u, _ := dav.Subdir(b)
			return ":webdav:" + strings.TrimPrefix(u, dav.URL+"/"), rcloneEnv, false
		},
		curl: func(b *testing.B, src, dst string, flags ...string) {
			u, _ := dav.Subdir(b)
			curl := func(args ...string) {
				ctx, cancel := context.WithTimeout(context.Background(), syncDeadline)
				defer cancel()
				args = append(append([]string{"-sS", "--fail", "-u", dav.User + ":" + dav.Password}, flags...), args...)
				cmd := exec.CommandContext(ctx, "curl", args...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			curl("-X", "MKCOL", u+"/")
			curl("-T", src, u+"/"+filepath.Base(src))
			curl("-o", dst, u+"/"+filepath.Base(src))
		},
	}
}

// buildEscalefs compiles cmd/escalefs into dir.
func buildEscalefs(b *testing.B, dir string) string {
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("building escalefs: %v", err)
	}
	bin := filepath.Join(dir, "escalefs")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/escalefs/escalefs/cmd/escalefs").CombinedOutput()
	if err != nil {
		b.Fatalf("go build ./cmd/escalefs: %v\n%s", err, out)
	}
	return bin
}

// transfer measures one workload on one target. Each iteration runs the
// rclone baseline, then escalefs, back to back, so that both meet the
// machine in the same state; the benchmark's timer (ns/op) runs during
// escalefs only.
func (s *syncBench) transfer(b *testing.B, tg syncTarget, wl syncWorkload, row *syncRow) {
	var rcl, crl, esc, push, pull time.Duration
	var nRcl, nCrl, nEsc int64
	steps := []func(){
		func() { rcl += s.rcloneOnce(b, tg, wl); nRcl++ },
		func() {
			e := s.escalefsOnce(b, tg, wl)
			esc += e.took
			push += e.push.took
			pull += e.pull.took
			row.rssPush = max(row.rssPush, e.push.rssMiB)
			row.rssPull = max(row.rssPull, e.pull.rssMiB)
			row.relayBytes = e.relayBytes
			nEsc++
		},
	}
	if tg.curl != nil && wl.single != "" {
		steps = append(steps, func() { crl += s.curlOnce(b, tg, wl); nCrl++ })
	}
	// Whichever tool runs first after a pause runs fastest (see
	// BenchmarkSync), so each tool runs once in each place of the order.
	turns := len(steps)
	if tg.oneTurn {
		turns = 1
	}
	for b.Loop() {
		b.StopTimer()
		for turn := range turns {
			for k := range steps {
				steps[(k+turn)%len(steps)]()
			}
		}
		b.StartTimer() // b.Loop insists on a running timer
	}
	mean := func(d time.Duration, n int64) time.Duration {
		if n == 0 {
			return 0
		}
		return d / time.Duration(n)
	}
	row.rclone, row.curl, row.escalefs = mean(rcl, nRcl), mean(crl, nCrl), mean(esc, nEsc)
	row.push, row.pull = mean(push, nEsc), mean(pull, nEsc)
	b.ReportMetric(row.escalefs.Seconds(), "s")
	b.ReportMetric(mbps(wl.bytes, row.escalefs), "MB/s")
	b.ReportMetric(row.rclone.Seconds(), "s-rclone")
	b.ReportMetric(mbps(wl.bytes, row.rclone), "MB/s-rclone")
	b.ReportMetric(row.rclone.Seconds()/row.escalefs.Seconds(), "x-rclone")
	if row.curl > 0 {
		b.ReportMetric(row.curl.Seconds(), "s-curl")
		b.ReportMetric(row.curl.Seconds()/row.escalefs.Seconds(), "x-curl")
	}
	b.ReportMetric(row.push.Seconds(), "s-push")
	b.ReportMetric(row.pull.Seconds(), "s-pull")
	b.ReportMetric(row.rssPush, "MiB-rss-push")
	b.ReportMetric(row.rssPull, "MiB-rss-pull")
	if row.relayBytes > 0 {
		b.ReportMetric(float64(row.relayBytes)/float64(wl.bytes), "x-relay-bytes")
	}
}

// escalefsRun is what one escalefs transfer took.
type escalefsRun struct {
	took       time.Duration // from A's start to B's exit
	push, pull runStat
	relayBytes int64 // on a file relay, after the push; else 0
}

// escalefsOnce times A's push and B's pull, a pair of --once runs on a
// fresh relay with fresh nodes, and checks what B installed. It expects
// the timer stopped and leaves it so.
func (s *syncBench) escalefsOnce(b *testing.B, tg syncTarget, wl syncWorkload) escalefsRun {
	url, env := tg.relay(b)
	base := b.TempDir()
	defer os.RemoveAll(base)
	na := newSyncNode(b, base, "a", env)
	nb := newSyncNode(b, base, "b", env)
	s.once(b, na, url, wl.flags...)
	s.once(b, nb, url, wl.flags...)
	if wl.prepare != nil {
		wl.prepare(b, na.dir)
		s.once(b, na, url, wl.flags...)
		s.once(b, nb, url, wl.flags...)
	}
	wl.fill(b, na.dir)
	syscall.Sync()

	b.StartTimer()
	start := time.Now()
	timed := append(slices.Clone(wl.flags), tg.escalefsFlags...)
	ra := s.once(b, na, url, append(timed, profileFlags(b, na.name)...)...)
	b.StopTimer()
	relayBytes := fileRelayBytes(b, url)
	b.StartTimer()
	rb := s.once(b, nb, url, append(timed, profileFlags(b, nb.name)...)...)
	took := time.Since(start)
	b.StopTimer()

	wl.check(b, nb.dir)
	return escalefsRun{took: took, push: ra, pull: rb, relayBytes: relayBytes}
}

// profileFlags, when $ESCALEFS_BENCH_PROFILE names a directory, has a
// timed run write its CPU profile there, as <benchmark>-<node>.prof, for
// go tool pprof, its execution trace (.trace, for go tool trace) and its
// debug log (.log) beside it.
func profileFlags(b *testing.B, node string) []string {
	dir := os.Getenv("ESCALEFS_BENCH_PROFILE")
	if dir == "" {
		return nil
	}
	name := filepath.Join(dir, strings.NewReplacer("/", "-").Replace(b.Name())+"-"+node)
	return []string{"--cpuprofile", name + ".prof", "--trace", name + ".trace", "--log-level", "debug", "--log-file", name + ".log"}
}

// fileRelayBytes sums the sizes of the files of a file:// relay; 0 for
// another relay.
func fileRelayBytes(b *testing.B, url string) int64 {
	dir, ok := strings.CutPrefix(url, "file://")
	if !ok {
		return 0
	}
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// baselineDirs makes, under a fresh base, the folder a baseline copies
// from, holding the workload's files as they end, and an empty one it
// copies into.
func baselineDirs(b *testing.B, wl syncWorkload) (base, src, dst string) {
	base = b.TempDir()
	src, dst = filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if wl.rcloneFill != nil {
		wl.rcloneFill(b, src)
	} else {
		wl.fill(b, src)
	}
	return base, src, dst
}

// rcloneOnce times `rclone copy` up from a folder like A's and down into
// a fresh one, and checks the copy.
func (s *syncBench) rcloneOnce(b *testing.B, tg syncTarget, wl syncWorkload) time.Duration {
	base, src, dst := baselineDirs(b, wl)
	defer os.RemoveAll(base)
	remote, env, local := tg.remote(b)
	if local {
		defer os.RemoveAll(remote)
	}
	syscall.Sync()

	start := time.Now()
	s.rcloneCopy(b, env, src, remote, tg.rcloneFlags...)
	if local {
		fsyncTree(b, remote)
	}
	s.rcloneCopy(b, env, remote, dst, tg.rcloneFlags...)
	fsyncTree(b, dst)
	took := time.Since(start)

	wl.check(b, dst)
	return took
}

// curlOnce times one curl PUT of the workload's file as it ends and one
// GET of it into a fresh folder, fsynced, and checks the copy.
func (s *syncBench) curlOnce(b *testing.B, tg syncTarget, wl syncWorkload) time.Duration {
	base, src, dst := baselineDirs(b, wl)
	defer os.RemoveAll(base)
	syscall.Sync()

	start := time.Now()
	tg.curl(b, filepath.Join(src, wl.single), filepath.Join(dst, wl.single), tg.curlFlags...)
	fsyncTree(b, dst)
	took := time.Since(start)

	wl.check(b, dst)
	return took
}

func (s *syncBench) rcloneCopy(b *testing.B, env []string, src, dst string, flags ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), syncDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.rclone, append([]string{"--config", s.rcloneConfig, "copy", src, dst}, flags...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("rclone copy %s %s: %v\n%s", src, dst, err, out)
	}
}

// fsyncTree fsyncs every file and directory under root.
func fsyncTree(b *testing.B, root string) {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// latency runs two long-lived nodes and records, for files written on A
// one after another, the delay from the write's close to the file's
// appearance on B.
func (s *syncBench) latency(b *testing.B, tg syncTarget, lat *syncLatency) {
	var delays []time.Duration
	for b.Loop() {
		url, env := tg.relay(b)
		base := b.TempDir()
		na := newSyncNode(b, base, "a", env)
		nb := newSyncNode(b, base, "b", env)
		// One node creates the repository, then the other joins, before
		// either runs for good: two nodes that start at once on an empty
		// WebDAV relay can each create a repository of their own.
		s.once(b, na, url)
		s.once(b, nb, url)
		refresh := "--refresh=" + syncRefresh.String()
		pa := s.start(b, na, url, refresh)
		pb := s.start(b, nb, url, refresh)
		procs := []*syncProc{pa, pb}

		// The first file also waits out both processes' start.
		write := func(name string, data []byte) time.Time {
			if err := os.WriteFile(filepath.Join(na.dir, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
			return time.Now()
		}
		warm := smallContent(-1)
		write("warm-up", warm)
		waitArrival(b, filepath.Join(nb.dir, "warm-up"), int64(len(warm)), procs)
		for i := range syncLatencyFiles {
			name := fmt.Sprintf("lat-%03d", i)
			data := smallContent(syncSmallCount + i)
			closed := write(name, data)
			arrived := waitArrival(b, filepath.Join(nb.dir, name), int64(len(data)), procs)
			delays = append(delays, arrived.Sub(closed))
		}
		pa.stop(b)
		pb.stop(b)
		for i := range syncLatencyFiles {
			got, err := os.ReadFile(filepath.Join(nb.dir, fmt.Sprintf("lat-%03d", i)))
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, smallContent(syncSmallCount+i)) {
				b.Fatalf("lat-%03d arrived with other content", i)
			}
		}
	}
	slices.Sort(delays)
	lat.files = len(delays)
	lat.p50, lat.p99, lat.max = percentile(delays, 50), percentile(delays, 99), delays[len(delays)-1]
	b.ReportMetric(ms(lat.p50), "ms-p50")
	b.ReportMetric(ms(lat.p99), "ms-p99")
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// waitArrival polls for path to exist with size bytes (installs are
// atomic renames) and returns when it saw it. It fails when a process
// exits or syncDeadline passes.
func waitArrival(b *testing.B, path string, size int64, procs []*syncProc) time.Time {
	deadline := time.Now().Add(syncDeadline)
	tick := time.NewTicker(syncPoll)
	defer tick.Stop()
	for {
		if st, err := os.Stat(path); err == nil && st.Size() == size {
			return time.Now()
		}
		for _, p := range procs {
			select {
			case <-p.done:
				b.Fatalf("%s exited while waiting for %s: %v\n%s", p.name, filepath.Base(path), p.err, p.out.String())
			default:
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "\n%s:\n%s", p.name, p.out.String())
			}
			b.Fatalf("%s did not arrive within %s%s", filepath.Base(path), syncDeadline, logs.String())
		}
		<-tick.C
	}
}

// syncNode is one node: its folder and the environment that gives it its
// own state, configuration and cache directories.
type syncNode struct {
	name string
	dir  string
	env  []string
}

func newSyncNode(b *testing.B, base, name string, env []string) *syncNode {
	root := filepath.Join(base, name)
	n := &syncNode{name: name, dir: filepath.Join(root, "folder")}
	n.env = append(os.Environ(), env...)
	for _, x := range []string{"STATE", "CONFIG", "CACHE"} {
		d := filepath.Join(root, strings.ToLower(x))
		n.env = append(n.env, "XDG_"+x+"_HOME="+d)
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return n
}

func (s *syncBench) command(ctx context.Context, n *syncNode, url string, flags ...string) *exec.Cmd {
	args := append([]string{"sync", "--relay", url, "--name", n.name, "--key-file", s.keyFile}, flags...)
	cmd := exec.CommandContext(ctx, s.bin, append(args, n.dir)...)
	cmd.Env = n.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runStat is what one --once run took.
type runStat struct {
	took   time.Duration
	rssMiB float64
}

// once runs `escalefs sync --once` for n and fails unless it succeeds.
func (s *syncBench) once(b *testing.B, n *syncNode, url string, flags ...string) runStat {
	ctx, cancel := context.WithTimeout(context.Background(), syncDeadline)
	defer cancel()
	cmd := s.command(ctx, n, url, append([]string{"--once"}, flags...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		b.Fatalf("%s: escalefs sync --once did not finish within %s\n%s", n.name, syncDeadline, out.String())
	}
	if err != nil {
		b.Fatalf("%s: escalefs sync --once: %v\n%s", n.name, err, out.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no rusage for the escalefs process")
	}
	return runStat{took: took, rssMiB: float64(ru.Maxrss) / 1024} // ru_maxrss is in KiB on Linux
}

// syncProc is a long-running `escalefs sync`.
type syncProc struct {
	name string
	cmd  *exec.Cmd
	out  *testserver.SyncBuffer
	done chan struct{}
	err  error // Wait's, once done is closed
}

func (s *syncBench) start(b *testing.B, n *syncNode, url string, flags ...string) *syncProc {
	p := &syncProc{name: n.name, out: &testserver.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = s.command(context.Background(), n, url, flags...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop ends the process with SIGTERM and fails unless it exits cleanly.
func (p *syncProc) stop(b *testing.B) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		b.Fatalf("%s did not exit within a minute of SIGTERM\n%s", p.name, p.out.String())
	}
	if p.err != nil {
		b.Fatalf("%s: escalefs sync: %v\n%s", p.name, p.err, p.out.String())
	}
}

// smallContent returns the content of small file i: 4 KiB from a ChaCha8
// stream seeded with i, so that no two files are alike.
func smallContent(i int) []byte {
	var seed [32]byte
	copy(seed[:], "escalefs small file")
	binary.LittleEndian.PutUint64(seed[24:], uint64(i))
	buf := make([]byte, syncSmallSize)
	rand.NewChaCha8(seed).Read(buf)
	return buf
}

func smallName(i int) string { return fmt.Sprintf("f%04d", i) }

func fillSmall(b *testing.B, dir string) {
	for i := range syncSmallCount {
		if err := os.WriteFile(filepath.Join(dir, smallName(i)), smallContent(i), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func checkSmall(b *testing.B, dir string) {
	for i := range syncSmallCount {
		got, err := os.ReadFile(filepath.Join(dir, smallName(i)))
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, smallContent(i)) {
			b.Fatalf("%s arrived with other content", smallName(i))
		}
	}
}

// writeBigFile writes the 1 GiB source file, a ChaCha8 stream, 1 MiB at
// a time, and returns its SHA-256.
func writeBigFile(b *testing.B, path string) [32]byte {
	var seed [32]byte
	copy(seed[:], "escalefs big file")
	src := rand.NewChaCha8(seed)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for range syncBigSize / len(buf) {
		src.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// fillBig puts the big file into dir: a hard link, so that each iteration
// starts without 1 GiB of dirty pages being written back under the timed
// part; a copy where links fail.
func (s *syncBench) fillBig(b *testing.B, dir string) {
	dst := filepath.Join(dir, "big")
	if err := os.Link(s.big, dst); err != nil {
		s.copyBig(b, dir)
	}
}

// sumFile returns the size and SHA-256 of the file at path, streamed.
func sumFile(b *testing.B, path string) (int64, [32]byte) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		b.Fatal(err)
	}
	return n, [32]byte(h.Sum(nil))
}

func (s *syncBench) checkBig(b *testing.B, dir string) {
	if n, sum := sumFile(b, filepath.Join(dir, "big")); n != syncBigSize || sum != s.bigSum {
		b.Fatalf("big arrived with other content (%d bytes)", n)
	}
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// print writes the figures as two aligned tables.
func (s *syncBench) print(w io.Writer) {
	if len(s.rows) > 0 {
		fmt.Fprintln(w, "\nsync: time to reach a second node (escalefs: A sync --once, then B sync --once; rclone: copy up, then down)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		// Names are padded to one width so that they read left-aligned.
		wt, ww := len("relay"), len("files")
		for _, r := range s.rows {
			wt, ww = max(wt, len(r.target)), max(ww, len(r.workload))
		}
		fmt.Fprintf(tw, "%-*s\t%-*s\trclone s\trclone MB/s\tcurl s\tescalefs s\tescalefs MB/s\tx rclone\tx curl\tpush s\tpull s\tRSS push MiB\tRSS pull MiB\trelay/files\t\n", wt, "relay", ww, "files")
		for _, r := range s.rows {
			ratio := "-"
			if r.relayBytes > 0 {
				ratio = strconv.FormatFloat(float64(r.relayBytes)/float64(r.bytes), 'f', 3, 64)
			}
			curl, xcurl := "-", "-"
			if r.curl > 0 {
				curl, xcurl = secs(r.curl), strconv.FormatFloat(r.curl.Seconds()/r.escalefs.Seconds(), 'f', 2, 64)
			}
			fmt.Fprintf(tw, "%-*s\t%-*s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", wt, r.target, ww, r.workload,
				secs(r.rclone), f1(mbps(r.bytes, r.rclone)), curl, secs(r.escalefs), f1(mbps(r.bytes, r.escalefs)),
				r.rclone.Seconds()/r.escalefs.Seconds(), xcurl, secs(r.push), secs(r.pull), f1(r.rssPush), f1(r.rssPull), ratio)
		}
		tw.Flush()
		fmt.Fprintln(w, "relay/files: bytes the repository takes on the file relay after the push (encryption, padding, records) per byte of the files")
	}
	for _, l := range s.latencies {
		fmt.Fprintf(w, "\nsync: close on A → arrival on B over %s, %d files one after another, --refresh %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
			l.target, l.files, syncRefresh, ms(l.p50), ms(l.p99), ms(l.max))
	}
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// The edit of the delta figures: 1 MiB of other bytes in the middle of
// the big file.
var bigEdit = func() []byte {
	var seed [32]byte
	copy(seed[:], "escalefs big edit")
	b := make([]byte, 1<<20)
	rand.NewChaCha8(seed).Read(b)
	return b
}()

// copyBig copies the big file into dir, as a file of its own: editBig
// changes it in place.
func (s *syncBench) copyBig(b *testing.B, dir string) {
	in, err := os.Open(s.big)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// editBig writes bigEdit into the middle of dir's big file.
func editBig(b *testing.B, dir string) {
	f, err := os.OpenFile(filepath.Join(dir, "big"), os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt(bigEdit, syncBigSize/2); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// fillEdited puts the big file with editBig's change into dir.
func (s *syncBench) fillEdited(b *testing.B, dir string) {
	s.copyBig(b, dir)
	editBig(b, dir)
}

// editedSum is the SHA-256 of the big file at path with editBig's change.
// It streams the file: the benchmark's process stays small, for its peak
// RSS is what the escalefs processes it starts report as theirs at first
// (Linux counts a vfork parent's high-water mark in its child's).
func editedSum(b *testing.B, path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, syncBigSize/2); err != nil {
		b.Fatal(err)
	}
	h.Write(bigEdit)
	if _, err := f.Seek(int64(len(bigEdit)), io.SeekCurrent); err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func (s *syncBench) checkEdited(b *testing.B, dir string) {
	if n, sum := sumFile(b, filepath.Join(dir, "big")); n != syncBigSize || sum != s.editedSum {
		b.Fatalf("the edited big file arrived with other content (%d bytes)", n)
	}
}
