package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	escfs "github.com/escalefs/escalefs/fs"
	"github.com/escalefs/escalefs/internal/testserver"
)

// Sizes of BenchmarkMount's workloads, each overridable by an environment
// variable for quick runs.
const (
	mountDDMBEnv       = "ESCALEFS_BENCH_DD_MB"     // MiB written and read by dd
	mountSmallEnv      = "ESCALEFS_BENCH_SMALL"     // small files created, stat'ed, removed
	mountTarFilesEnv   = "ESCALEFS_BENCH_TAR_FILES" // files in the extracted tree
	mountDDMBDefault   = 1024
	mountSmallDefault  = 10000
	mountTarDefault    = 4000
	mountSmallFileSize = 1 << 10
)

const (
	// mountReadyDeadline bounds the wait for a mount to come up.
	mountReadyDeadline = time.Minute
	// mountStepDeadline bounds every command of a workload and the wait
	// for the dd file to reach the relay.
	mountStepDeadline = 10 * time.Minute
	// mountPoll is how often a wait looks again.
	mountPoll = 20 * time.Millisecond
	// A fresh mount's process has settled once it used no CPU for
	// mountSettleQuiet; the benchmark goes on after mountSettleDeadline
	// anyway.
	mountSettleQuiet    = 500 * time.Millisecond
	mountSettleDeadline = 30 * time.Second
	// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat.
	clockTicks = 100
)

// Goals shown beside the figures: the time of a step in the escalefs mount
// at most mountGoalSeq (sequential I/O: ≥ 90% of native throughput) or
// mountGoalSmall (small files) times native, and rclone's time at least
// mountGoalRclone times escalefs's.
const (
	mountGoalSeq    = 1 / 0.9
	mountGoalSmall  = 3
	mountGoalRclone = 3
)

// BenchmarkMount measures the local performance of a folder mounted by
// `escalefs mount`, beside the same work in a plain directory and in an
// rclone mount, in one run:
//
//   - native: a directory on the filesystem that holds escalefs's state
//     directory, where the mount keeps its files: the ceiling.
//   - escalefs: `escalefs mount -f` of a node, built from this tree, over a
//     fresh collection of an Apache WebDAV server, with $XDG_STATE_HOME in
//     the benchmark's temporary directory.
//   - rclone: `rclone mount --vfs-cache-mode full` of a fresh collection of
//     the same server, with its --cache-dir in the temporary directory.
//
// Workloads, each on a fresh mount (fresh node, fresh collection) so that
// the uploads one leaves behind do not weigh on the next:
//
//   - dd: `dd bs=1M conv=fsync` writes $ESCALEFS_BENCH_DD_MB MiB (default
//     1024) from /dev/zero, then, once the file reached the relay (so that
//     no upload reads it during the figure) and the page cache was dropped
//     (as root: sync; echo 3 > /proc/sys/vm/drop_caches), reads it back to
//     /dev/null. dd must report every byte both ways.
//   - small: $ESCALEFS_BENCH_SMALL files (default 10000) of 1 KiB in one
//     directory, written by os.WriteFile, then os.Stat'ed, then removed,
//     one phase after another. Each stat must show 1 KiB, a sample must
//     read back intact and the directory must be empty at the end.
//   - tar: `tar x` of a tarball, made once per run, of a generated source
//     tree ($ESCALEFS_BENCH_TAR_FILES files, default 4000, of 200 B to 64
//     KiB, in 50 directories: about 45 MB). Every file must be there with
//     its size.
//
// A fresh mount's first step starts once its process used no CPU for half
// a second (its first look at the relay done). Within a workload nothing
// waits for the relay, but the dd read: the mounts sync in the background
// as they would for a user. sync(2) runs
// before each timed step so that none pays for another's writeback. The
// mounts are unmounted (fusermount3 -u, then -u -z) and their processes
// killed after each workload, also when a step fails; what they still had
// to upload is dropped.
//
// Metrics, per step: the throughput (MB/s, MB = 10^6 bytes; ops/s;
// files/s) of escalefs and, suffixed -native and -rclone, of the others;
// x-native-STEP, escalefs's time over native's (1 is as fast as native);
// x-rclone-STEP, rclone's time over escalefs's (how many times faster
// escalefs is). The benchmark's timer (ns/op) runs during escalefs's steps
// only. A markdown table of all figures, with the goals and the CPU time
// the escalefs and rclone processes used per step, is printed at the end:
//
//	go test -run '^$' -bench '^BenchmarkMount$' -benchtime 1x -timeout 30m ./bench/
func BenchmarkMount(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		testserver.Unavailable(b, "rclone is not installed")
	}
	fusermount, err := exec.LookPath("fusermount3")
	if err != nil {
		testserver.Unavailable(b, "no fusermount3 in $PATH (install fuse3)")
	}
	if err := escfs.Check(b.TempDir(), false); errors.Is(err, escfs.ErrFUSEUnavailable) {
		testserver.Unavailable(b, "cannot mount FUSE filesystems: %v", err)
	} else if err != nil {
		b.Fatal(err)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		b.Fatal("no tar in $PATH")
	}
	if _, err := exec.LookPath("dd"); err != nil {
		b.Fatal("no dd in $PATH")
	}
	scratch := b.TempDir()
	s := &mountBench{
		rclone:     rclone,
		fusermount: fusermount,
		bin:        buildEscalefs(b, scratch),
		ddMiB:      envInt(b, mountDDMBEnv, mountDDMBDefault),
		small:      envInt(b, mountSmallEnv, mountSmallDefault),
		tarFiles:   envInt(b, mountTarFilesEnv, mountTarDefault),
	}
	s.keyFile = filepath.Join(scratch, "key")
	if out, err := exec.Command(s.bin, "key", "generate", "-o", s.keyFile).CombinedOutput(); err != nil {
		b.Fatalf("escalefs key generate: %v\n%s", err, out)
	}
	s.rcloneConfig = filepath.Join(scratch, "rclone.conf")
	if err := os.WriteFile(s.rcloneConfig, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	s.tarball = filepath.Join(scratch, "tree.tar")
	s.tarBytes = makeTarball(b, scratch, s.tarball, s.tarFiles)
	if os.Geteuid() != 0 {
		s.notes = append(s.notes, "not root: the page cache was not dropped before the dd read, which may have come from memory")
	}

	s.setup = describeSetup(s.rclone)

	s.dav = testserver.StartApache(b, testserver.DAVOptions{})
	out, err := exec.Command(s.rclone, "--config", s.rcloneConfig, "obscure", s.dav.Password).Output()
	if err != nil {
		b.Fatalf("rclone obscure: %v", err)
	}
	s.rcloneEnv = []string{
		"RCLONE_CONFIG_BENCH_TYPE=webdav",
		"RCLONE_CONFIG_BENCH_URL=" + s.dav.URL,
		"RCLONE_CONFIG_BENCH_VENDOR=other",
		"RCLONE_CONFIG_BENCH_USER=" + s.dav.User,
		"RCLONE_CONFIG_BENCH_PASS=" + strings.TrimSpace(string(out)),
	}

	for _, wl := range s.workloads() {
		res := &mountResult{wl: wl}
		b.Run(wl.name, func(b *testing.B) { s.measure(b, wl, res) })
		if res.n > 0 {
			s.results = append(s.results, res)
		}
	}
	s.print(os.Stdout)
}

// mountBench holds what the sub-benchmarks of BenchmarkMount share.
type mountBench struct {
	bin, rclone, fusermount string
	keyFile, rcloneConfig   string
	rcloneEnv               []string
	dav                     *testserver.DAVServer

	ddMiB, small, tarFiles int
	tarball                string
	tarBytes               int64

	results []*mountResult
	// passthrough is what escalefs mount logged about FUSE passthrough
	// (true: the kernel reads and writes the backing files itself).
	passthrough string
	setup       string                  // the machine and the versions, for the table's title
	uploads     [numKinds]time.Duration // dd file's close → on the relay
	notes       []string
}

// kind is one of the three places a workload runs in.
type kind int

const (
	native kind = iota
	escalefsMount
	rcloneMount
	numKinds
)

var kindNames = [numKinds]string{"native", "escalefs", "rclone"}

// mountWorkload is a set of timed steps run in one place.
type mountWorkload struct {
	name  string // sub-benchmark name
	steps []mountStep
	// run does the work in p and returns the steps' figures, in the order
	// of steps. It fails unless the work left what it should.
	run func(s *mountBench, b *testing.B, p *place) []stepTime
}

// mountStep is one timed step of a workload.
type mountStep struct {
	name   string  // for metrics
	label  string  // for the table
	unit   string  // of the throughput: MB/s, ops/s, files/s
	amount float64 // MB, operations or files per run
	goal   float64 // escalefs's time over native's, at most
}

type stepTime struct {
	took time.Duration
	cpu  time.Duration // of the place's process, during the step
}

// mountResult holds the figures of one workload, summed over iterations.
type mountResult struct {
	wl   mountWorkload
	n    int
	took [][numKinds]time.Duration // per step
	cpu  [][numKinds]time.Duration
}

func (r *mountResult) mean(step int, k kind) time.Duration {
	return r.took[step][k] / time.Duration(r.n)
}

func (s *mountBench) workloads() []mountWorkload {
	ddMB := float64(s.ddMiB) * (1 << 20) / 1e6
	n := float64(s.small)
	return []mountWorkload{
		{
			name: fmt.Sprintf("dd-%dMiB", s.ddMiB),
			steps: []mountStep{
				{name: "write", label: fmt.Sprintf("dd write %d MiB", s.ddMiB), unit: "MB/s", amount: ddMB, goal: mountGoalSeq},
				{name: "read", label: fmt.Sprintf("dd read %d MiB", s.ddMiB), unit: "MB/s", amount: ddMB, goal: mountGoalSeq},
			},
			run: (*mountBench).dd,
		},
		{
			name: fmt.Sprintf("small-%dx1KiB", s.small),
			steps: []mountStep{
				{name: "create", label: fmt.Sprintf("create %d x 1 KiB", s.small), unit: "ops/s", amount: n, goal: mountGoalSmall},
				{name: "stat", label: fmt.Sprintf("stat %d", s.small), unit: "ops/s", amount: n, goal: mountGoalSmall},
				{name: "remove", label: fmt.Sprintf("remove %d", s.small), unit: "ops/s", amount: n, goal: mountGoalSmall},
			},
			run: (*mountBench).smallFiles,
		},
		{
			name: fmt.Sprintf("tar-x-%dfiles", s.tarFiles),
			steps: []mountStep{
				{name: "extract", label: fmt.Sprintf("tar x %d files, %.0f MB", s.tarFiles, float64(s.tarBytes)/1e6), unit: "files/s", amount: float64(s.tarFiles), goal: mountGoalSmall},
			},
			run: (*mountBench).tarExtract,
		},
	}
}

// measure runs wl in each place, one after the other, each time on a
// fresh mount, and reports the figures.
func (s *mountBench) measure(b *testing.B, wl mountWorkload, res *mountResult) {
	res.took = make([][numKinds]time.Duration, len(wl.steps))
	res.cpu = make([][numKinds]time.Duration, len(wl.steps))
	for b.Loop() {
		b.StopTimer()
		for k := range numKinds {
			p := s.open(b, k)
			times := wl.run(s, b, p)
			p.close(b)
			for i, t := range times {
				res.took[i][k] += t.took
				res.cpu[i][k] += t.cpu
			}
		}
		res.n++
		b.StartTimer() // b.Loop insists on a running timer
	}
	for i, st := range wl.steps {
		suffix := "-" + st.name
		if len(wl.steps) == 1 {
			suffix = ""
		}
		for k := range numKinds {
			unit := st.unit + suffix
			if k != escalefsMount {
				unit += "-" + kindNames[k]
			}
			b.ReportMetric(st.amount/res.mean(i, k).Seconds(), unit)
		}
		e := res.mean(i, escalefsMount).Seconds()
		b.ReportMetric(e/res.mean(i, native).Seconds(), "x-native"+suffix)
		b.ReportMetric(res.mean(i, rcloneMount).Seconds()/e, "x-rclone"+suffix)
	}
}

// place is where a workload runs: a directory, with the process serving
// it if it is a mount.
type place struct {
	kind kind
	dir  string
	// onRelay waits until the file rel, of size bytes, is on the relay;
	// nil for the native directory.
	onRelay func(b *testing.B, rel string, size int64)
	proc    *mountProc
	// cleanup unmounts, stops the process and removes what the place
	// stored; it runs once, from close or from b's cleanup.
	cleanup func() error
	closed  bool
}

// mountProc is a process serving a mount.
type mountProc struct {
	name string
	cmd  *exec.Cmd
	out  *testserver.SyncBuffer
	done chan struct{}
	err  error // Wait's, once done is closed
}

func (s *mountBench) open(b *testing.B, k kind) *place {
	base := b.TempDir()
	var p *place
	switch k {
	case native:
		p = &place{kind: k, dir: filepath.Join(base, "native")}
		if err := os.Mkdir(p.dir, 0o755); err != nil {
			b.Fatal(err)
		}
		p.cleanup = func() error { return os.RemoveAll(p.dir) }
		guard(b, p)
	case escalefsMount:
		p = s.openEscalefs(b, base)
	case rcloneMount:
		p = s.openRclone(b, base)
	}
	if p.proc != nil {
		settle(p.proc)
	}
	return p
}

// guard has p stopped when b ends, whether or not its steps succeeded.
func guard(b *testing.B, p *place) {
	b.Cleanup(func() {
		if err := p.stop(); err != nil {
			b.Error(err)
		}
	})
}

func (p *place) stop() error {
	if p.closed {
		return nil
	}
	p.closed = true
	return p.cleanup()
}

func (p *place) close(b *testing.B) {
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
}

// start starts a mount process in the background; it dies with the
// benchmark.
func startMountProc(b *testing.B, name string, cmd *exec.Cmd) *mountProc {
	p := &mountProc{name: name, cmd: cmd, out: &testserver.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

// kill ends the process at once: what it still had to upload is of no
// use to the benchmark.
func (p *mountProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited fails b if the process ended.
func (p *mountProc) exited(b *testing.B, while string) {
	select {
	case <-p.done:
		b.Fatalf("%s exited while %s: %v\n%s", p.name, while, p.err, p.out.String())
	default:
	}
}

// cpu returns the CPU time the process used so far.
func (p *mountProc) cpu() time.Duration {
	if p == nil {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses: state
	// (field 3) first, utime and stime (fields 14 and 15).
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// until polls cond until it holds; it fails b when proc exits or the
// deadline passes.
func until(b *testing.B, deadline time.Duration, what string, proc *mountProc, cond func() bool) {
	end := time.Now().Add(deadline)
	tick := time.NewTicker(mountPoll)
	defer tick.Stop()
	for !cond() {
		proc.exited(b, "waiting for "+what)
		if time.Now().After(end) {
			b.Fatalf("%s: no %s within %s\n%s", proc.name, what, deadline, proc.out.String())
		}
		<-tick.C
	}
}

// settle waits, up to mountSettleDeadline, until proc has used no CPU
// for mountSettleQuiet: the work a process does once mounted (a first
// look at the relay) is then done before the first step.
func settle(proc *mountProc) {
	end := time.Now().Add(mountSettleDeadline)
	tick := time.NewTicker(mountPoll)
	defer tick.Stop()
	last, since := proc.cpu(), time.Now()
	for time.Since(since) < mountSettleQuiet && time.Now().Before(end) {
		<-tick.C
		if c := proc.cpu(); c != last {
			last, since = c, time.Now()
		}
	}
}

// openEscalefs mounts a fresh node over a fresh collection of the WebDAV
// server with `escalefs mount -f`.
func (s *mountBench) openEscalefs(b *testing.B, base string) *place {
	mnt := filepath.Join(base, "mnt")
	env := append(os.Environ(), "ESCALEFS_PASSWORD="+s.dav.Password)
	for _, x := range []string{"STATE", "CONFIG", "CACHE"} {
		d := filepath.Join(base, strings.ToLower(x))
		env = append(env, "XDG_"+x+"_HOME="+d)
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	u, davDir := s.dav.Subdir(b)
	relayURL := strings.Replace(u, "://", "://"+s.dav.User+"@", 1)
	cmd := exec.Command(s.bin, "mount", "--relay", relayURL, "--key-file", s.keyFile, "--name", "bench", "-f", mnt)
	cmd.Env = env
	proc := startMountProc(b, "escalefs mount", cmd)
	p := &place{kind: escalefsMount, dir: mnt, proc: proc}
	p.cleanup = func() error {
		err := s.unmount(mnt)
		proc.kill()
		os.RemoveAll(davDir)
		return errors.Join(err, os.RemoveAll(base))
	}
	guard(b, p)
	until(b, mountReadyDeadline, "mount", proc, func() bool {
		return strings.Contains(proc.out.String(), "level=INFO msg=mounted") && isMounted(mnt)
	})
	if m := regexp.MustCompile(`msg=mounted .*passthrough=(\w+)`).FindStringSubmatch(proc.out.String()); m != nil {
		s.passthrough = m[1]
	}
	p.onRelay = func(b *testing.B, rel string, size int64) {
		want := fmt.Sprintf("level=INFO msg=pushed path=%s size=%d", rel, size)
		until(b, mountStepDeadline, rel+" pushed", proc, func() bool {
			return strings.Contains(proc.out.String(), want)
		})
	}
	// The backing directory must be on the native directory's filesystem.
	backing, err := filepath.Glob(filepath.Join(base, "state", "escalefs", "*", "files"))
	if err != nil || len(backing) != 1 {
		b.Fatalf("looking for the node's files directory: %v %q", err, backing)
	}
	if dev(b, backing[0]) != dev(b, base) {
		b.Fatalf("%s is not on the filesystem of %s", backing[0], base)
	}
	return p
}

// openRclone mounts a fresh collection of the WebDAV server with `rclone
// mount --vfs-cache-mode full`.
func (s *mountBench) openRclone(b *testing.B, base string) *place {
	mnt, cache := filepath.Join(base, "mnt"), filepath.Join(base, "cache")
	for _, d := range []string{mnt, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	_, davDir := s.dav.Subdir(b)
	remote := "bench:" + filepath.Base(davDir)
	env := append(os.Environ(), s.rcloneEnv...)
	mkdir := exec.Command(s.rclone, "--config", s.rcloneConfig, "mkdir", remote)
	mkdir.Env = env
	if out, err := mkdir.CombinedOutput(); err != nil {
		b.Fatalf("rclone mkdir %s: %v\n%s", remote, err, out)
	}
	cmd := exec.Command(s.rclone, "--config", s.rcloneConfig, "mount", remote, mnt,
		"--vfs-cache-mode", "full", "--cache-dir", cache, "--log-level", "INFO")
	cmd.Env = env
	proc := startMountProc(b, "rclone mount", cmd)
	p := &place{kind: rcloneMount, dir: mnt, proc: proc}
	p.cleanup = func() error {
		err := s.unmount(mnt)
		proc.kill()
		os.RemoveAll(davDir)
		return errors.Join(err, os.RemoveAll(base))
	}
	guard(b, p)
	until(b, mountReadyDeadline, "mount", proc, func() bool {
		if !isMounted(mnt) {
			return false
		}
		_, err := os.ReadDir(mnt)
		return err == nil
	})
	// Apache stores a PUT under a temporary name and renames it once
	// complete; rclone logs the copy after the server answered.
	p.onRelay = func(b *testing.B, rel string, size int64) {
		until(b, mountStepDeadline, rel+" uploaded", proc, func() bool {
			st, err := os.Stat(filepath.Join(davDir, rel))
			return err == nil && st.Size() == size && strings.Contains(proc.out.String(), rel+": Copied (new)")
		})
	}
	if dev(b, cache) != dev(b, base) {
		b.Fatalf("%s is not on the filesystem of %s", cache, base)
	}
	return p
}

func dev(b *testing.B, path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		b.Fatal(err)
	}
	return st.Dev
}

// isMounted reports whether something is mounted on mnt, an absolute
// path without symbolic links.
func isMounted(mnt string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	esc := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`).Replace(mnt)
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == esc {
			return true
		}
	}
	return false
}

// unmount unmounts mnt if it is mounted, lazily if it is busy.
func (s *mountBench) unmount(mnt string) error {
	if !isMounted(mnt) {
		return nil
	}
	out, err := exec.Command(s.fusermount, "-u", mnt).CombinedOutput()
	if err == nil {
		return nil
	}
	if lout, lerr := exec.Command(s.fusermount, "-u", "-z", mnt).CombinedOutput(); lerr != nil {
		return fmt.Errorf("fusermount3 -u %s: %v: %s; with -z: %v: %s", mnt, err, out, lerr, lout)
	}
	return nil
}

// timed runs f as one step in p: after sync(2) and, for reads, after
// dropping the page cache; the benchmark's timer runs during escalefs's
// steps.
func (s *mountBench) timed(b *testing.B, p *place, dropCache bool, f func()) stepTime {
	syscall.Sync()
	if dropCache && os.Geteuid() == 0 {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			note := fmt.Sprintf("dropping the page cache failed (%v): reads may have come from memory", err)
			if !strings.Contains(strings.Join(s.notes, "\n"), note) {
				s.notes = append(s.notes, note)
			}
		}
	}
	cpu := p.proc.cpu()
	if p.kind == escalefsMount {
		b.StartTimer()
	}
	start := time.Now()
	f()
	took := time.Since(start)
	if p.kind == escalefsMount {
		b.StopTimer()
	}
	return stepTime{took: took, cpu: p.proc.cpu() - cpu}
}

// command runs a workload's command, failing b unless it succeeds, and
// returns its standard error.
func command(b *testing.B, p *place, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), mountStepDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		extra := ""
		if p.proc != nil {
			extra = "\n" + p.proc.name + ":\n" + p.proc.out.String()
		}
		b.Fatalf("%s: %s %s: %v\n%s%s", kindNames[p.kind], name, strings.Join(args, " "), err, stderr.String(), extra)
	}
	return stderr.String()
}

// ddBytes returns the byte count of dd's final report.
func ddBytes(b *testing.B, stderr string) int64 {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	n, err := strconv.ParseInt(strings.Fields(lines[len(lines)-1] + " x")[0], 10, 64)
	if err != nil {
		b.Fatalf("no byte count in dd's output:\n%s", stderr)
	}
	return n
}

func (s *mountBench) dd(b *testing.B, p *place) []stepTime {
	file := filepath.Join(p.dir, "dd.bin")
	size := int64(s.ddMiB) << 20
	count := "count=" + strconv.Itoa(s.ddMiB)
	var wrote, read int64
	w := s.timed(b, p, false, func() {
		wrote = ddBytes(b, command(b, p, "dd", "if=/dev/zero", "of="+file, "bs=1M", count, "conv=fsync"))
	})
	st, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	if wrote != size || st.Size() != size {
		b.Fatalf("%s: dd wrote %d bytes, the file has %d, want %d", kindNames[p.kind], wrote, st.Size(), size)
	}
	if p.onRelay != nil {
		start := time.Now()
		p.onRelay(b, "dd.bin", size)
		s.uploads[p.kind] = time.Since(start)
	}
	r := s.timed(b, p, true, func() {
		read = ddBytes(b, command(b, p, "dd", "if="+file, "of=/dev/null", "bs=1M"))
	})
	if read != size {
		b.Fatalf("%s: dd read %d bytes, want %d", kindNames[p.kind], read, size)
	}
	return []stepTime{w, r}
}

// smallContent1K returns the content of small file i: 1 KiB from a
// ChaCha8 stream seeded with i.
func smallContent1K(i int) []byte {
	var seed [32]byte
	copy(seed[:], "escalefs mount small file")
	binary.LittleEndian.PutUint64(seed[24:], uint64(i))
	buf := make([]byte, mountSmallFileSize)
	rand.NewChaCha8(seed).Read(buf)
	return buf
}

func (s *mountBench) smallFiles(b *testing.B, p *place) []stepTime {
	dir := filepath.Join(p.dir, "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	names := make([]string, s.small)
	data := make([][]byte, s.small)
	for i := range s.small {
		names[i] = filepath.Join(dir, fmt.Sprintf("f%05d", i))
		data[i] = smallContent1K(i)
	}
	create := s.timed(b, p, false, func() {
		for i, name := range names {
			if err := os.WriteFile(name, data[i], 0o644); err != nil {
				b.Fatalf("%s: %v", kindNames[p.kind], err)
			}
		}
	})
	var bad string
	stat := s.timed(b, p, false, func() {
		for _, name := range names {
			st, err := os.Stat(name)
			if err != nil {
				b.Fatalf("%s: %v", kindNames[p.kind], err)
			}
			if bad == "" && (!st.Mode().IsRegular() || st.Size() != mountSmallFileSize) {
				bad = fmt.Sprintf("%s: %s is %v with %d bytes", kindNames[p.kind], name, st.Mode(), st.Size())
			}
		}
	})
	if bad != "" {
		b.Fatal(bad)
	}
	for i := 0; i < s.small; i += max(1, s.small/10) {
		got, err := os.ReadFile(names[i])
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, data[i]) {
			b.Fatalf("%s: %s reads back with other content", kindNames[p.kind], names[i])
		}
	}
	remove := s.timed(b, p, false, func() {
		for _, name := range names {
			if err := os.Remove(name); err != nil {
				b.Fatalf("%s: %v", kindNames[p.kind], err)
			}
		}
	})
	left, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	if len(left) != 0 {
		b.Fatalf("%s: %d entries left after removing every file, e.g. %s", kindNames[p.kind], len(left), left[0].Name())
	}
	return []stepTime{create, stat, remove}
}

func (s *mountBench) tarExtract(b *testing.B, p *place) []stepTime {
	dst := filepath.Join(p.dir, "tree")
	if err := os.Mkdir(dst, 0o755); err != nil {
		b.Fatal(err)
	}
	x := s.timed(b, p, false, func() {
		command(b, p, "tar", "-C", dst, "--no-same-owner", "-xf", s.tarball)
	})
	files, size := countTree(b, dst)
	if files != s.tarFiles || size != s.tarBytes {
		b.Fatalf("%s: tar x left %d files of %d bytes, want %d of %d", kindNames[p.kind], files, size, s.tarFiles, s.tarBytes)
	}
	return []stepTime{x}
}

// countTree returns the number and total size of the regular files under
// root.
func countTree(b *testing.B, root string) (int, int64) {
	var n int
	var size int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		size += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n, size
}

// makeTarball writes a generated source tree under scratch, always the
// same for a number of files, tars it into tarball and returns the size of
// its files: files files in 5 directories of 10 subdirectories each, of
// 200 B to 64 KiB (log-uniform, about 11 KB on average) of text lines.
func makeTarball(b *testing.B, scratch, tarball string, files int) int64 {
	root := filepath.Join(scratch, "tree")
	var seed [32]byte
	copy(seed[:], "escalefs mount tar tree")
	rng := rand.New(rand.NewChaCha8(seed))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 (){}.,;:=+-*/\"\t"
	var total int64
	var buf []byte
	for i := range files {
		dir := filepath.Join(root, fmt.Sprintf("pkg%d", i%5), fmt.Sprintf("sub%d", i/5%10))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		size := int(200 * math.Exp(rng.Float64()*math.Log(65536.0/200)))
		buf = buf[:0]
		for len(buf) < size {
			if len(buf)%64 == 63 || len(buf) == size-1 {
				buf = append(buf, '\n')
			} else {
				buf = append(buf, alphabet[rng.IntN(len(alphabet))])
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%05d.go", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	out, err := exec.Command("tar", "-C", root, "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
		"--mtime=@1700000000", "-cf", tarball, ".").CombinedOutput()
	if err != nil {
		b.Fatalf("tar c: %v\n%s", err, out)
	}
	if err := os.RemoveAll(root); err != nil {
		b.Fatal(err)
	}
	return total
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("$%s=%q: want a positive integer", name, v)
	}
	return n
}

// print writes the figures as markdown tables.
func (s *mountBench) print(w io.Writer) {
	if len(s.results) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmount: native directory, escalefs mount and rclone mount --vfs-cache-mode full, both over Apache WebDAV on 127.0.0.1 (%s)\n\n", s.setup)
	fmt.Fprintln(w, "| step | native s | escalefs s | rclone s | native | escalefs | rclone | escalefs/native | rclone/escalefs | goal vs native | goal vs rclone |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
	for _, r := range s.results {
		for i, st := range r.wl.steps {
			var secs, rates [numKinds]string
			for k := range numKinds {
				d := r.mean(i, k)
				secs[k] = strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
				rates[k] = fmt.Sprintf("%.0f %s", st.amount/d.Seconds(), st.unit)
			}
			xn := r.mean(i, escalefsMount).Seconds() / r.mean(i, native).Seconds()
			xr := r.mean(i, rcloneMount).Seconds() / r.mean(i, escalefsMount).Seconds()
			goalNative := fmt.Sprintf("≤ %.2f× %s", st.goal, met(xn <= st.goal))
			if st.goal == mountGoalSeq {
				goalNative = fmt.Sprintf("≥ 90%% of native (%.0f%%) %s", 100/xn, met(xn <= st.goal))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.2f× | %.2f× | %s | ≥ %d× %s |\n",
				st.label, secs[native], secs[escalefsMount], secs[rcloneMount],
				rates[native], rates[escalefsMount], rates[rcloneMount],
				xn, xr, goalNative, mountGoalRclone, met(xr >= mountGoalRclone))
		}
	}
	fmt.Fprintln(w, "\nCPU time of the mount process during each step (its background uploads included):")
	fmt.Fprintln(w, "\n| step | escalefs CPU s | rclone CPU s |")
	fmt.Fprintln(w, "|---|--:|--:|")
	for _, r := range s.results {
		for i, st := range r.wl.steps {
			fmt.Fprintf(w, "| %s | %.2f | %.2f |\n", st.label,
				(r.cpu[i][escalefsMount] / time.Duration(r.n)).Seconds(), (r.cpu[i][rcloneMount] / time.Duration(r.n)).Seconds())
		}
	}
	fmt.Fprintln(w)
	if s.uploads[escalefsMount] > 0 {
		fmt.Fprintf(w, "Before the dd read, waited for dd.bin to reach the relay (not in the figures): escalefs %.1f s, rclone %.1f s (rclone starts uploading 5 s after the close, its --vfs-write-back).\n",
			s.uploads[escalefsMount].Seconds(), s.uploads[rcloneMount].Seconds())
	}
	switch s.passthrough {
	case "true":
		fmt.Fprintln(w, "escalefs mount logged passthrough=true: the kernel reads and writes the backing files itself (FUSE passthrough); opens, closes, fsyncs and metadata still go through the escalefs process.")
	case "":
		fmt.Fprintln(w, "escalefs mount did not log whether it uses FUSE passthrough.")
	default:
		fmt.Fprintf(w, "escalefs mount logged passthrough=%s: every read and write goes through the escalefs process.\n", s.passthrough)
	}
	fmt.Fprintf(w, "Load average at the end: %s.\n", loadAverage())
	for _, n := range s.notes {
		fmt.Fprintln(w, n)
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// describeSetup names the CPUs, the kernel and rclone's version.
func describeSetup(rclone string) string {
	kernel := "unknown kernel"
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var rel []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			rel = append(rel, byte(c))
		}
		kernel = "Linux " + string(rel)
	}
	version := "rclone version unknown"
	if out, err := exec.Command(rclone, "version").Output(); err == nil {
		version, _, _ = strings.Cut(string(out), "\n")
	}
	return fmt.Sprintf("%d CPUs, %s, %s, load average %s at the start", runtime.NumCPU(), kernel, version, loadAverage())
}

// loadAverage returns the 1, 5 and 15 minute load averages: the machine
// may be shared.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
