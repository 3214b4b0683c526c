package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestLogFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--log-level", "loud", "version"}, []string{`"loud"`, "--log-level", "expected debug, info, warn or error"}},
		{[]string{"--log-max-size", "lots", "version"}, []string{`"lots"`, "--log-max-size", "expected a size"}},
		{[]string{"--log-max-size", "500KB", "version"}, []string{"--log-max-size", "at least 1MiB"}},
		{[]string{"--log-max-backups", "-1", "version"}, []string{"--log-max-backups", "expected 0"}},
	} {
		out, errOut, code := run(t, tc.args...)
		for _, w := range tc.want {
			if code == 0 || !strings.Contains(out+errOut, w) {
				t.Errorf("%q: exit %d, output %q, want a failure mentioning %q", tc.args, code, out+errOut, w)
			}
		}
	}
}

func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		args []string
		def  slog.Level
		want slog.Level
	}{
		{nil, slog.LevelInfo, slog.LevelInfo},
		{nil, slog.LevelWarn, slog.LevelWarn},
		{[]string{"-v"}, slog.LevelInfo, slog.LevelDebug},
		{[]string{"--log-level", "error"}, slog.LevelInfo, slog.LevelError},
		{[]string{"--log-level", "WARN"}, slog.LevelInfo, slog.LevelWarn},
		{[]string{"--log-level", "warning"}, slog.LevelInfo, slog.LevelWarn},
		{[]string{"--log-level", "info"}, slog.LevelWarn, slog.LevelInfo},
		{[]string{"--log-level", "error", "-v"}, slog.LevelInfo, slog.LevelDebug},
	} {
		g := &globals{stderr: &bytes.Buffer{}}
		fs := pflag.NewFlagSet("escalefs", pflag.ContinueOnError)
		fs.BoolVarP(&g.verbose, "verbose", "v", false, "")
		g.log.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := g.level(tc.def); got != tc.want {
			t.Errorf("%q with default %v: level %v, want %v", tc.args, tc.def, got, tc.want)
		}
	}
}

func TestLogFile(t *testing.T) {
	dir := t.TempDir()
	relayDir := t.TempDir()
	logFile := filepath.Join(dir, "logs", "escalefs.log")
	_, errOut, code := run(t, "--log-file", logFile, "--log-level", "debug", "relay", "check", "file://"+relayDir)
	if code != 0 {
		t.Fatalf("relay check with --log-file: exit %d\n%s", code, errOut)
	}
	if strings.Contains(errOut, "level=") {
		t.Errorf("log records on standard error with --log-file:\n%s", errOut)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `level=DEBUG msg="relay call"`) {
		t.Errorf("the log file lacks the relay calls:\n%s", data)
	}
	checkMode(t, logFile, 0o600)
	checkMode(t, filepath.Dir(logFile), 0o700|os.ModeDir)
}

func TestLogFileUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	g := &globals{stderr: &stderr, log: defaultLogOptions()}
	g.log.File = filepath.Join(dir, "escalefs.log")
	g.newLogger(slog.LevelInfo).Info("still logged")
	if !strings.Contains(stderr.String(), "cannot write the log file") || !strings.Contains(stderr.String(), "msg=\"still logged\"") {
		t.Errorf("an unwritable log file: standard error is\n%s", stderr.String())
	}
}

func TestLogFileRotation(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "escalefs.log")
	// An existing log of another mode is made private.
	if err := os.WriteFile(logFile, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &globals{stderr: &bytes.Buffer{}}
	fs := pflag.NewFlagSet("escalefs", pflag.ContinueOnError)
	g.log.register(fs)
	if err := fs.Parse([]string{"--log-file", logFile, "--log-max-size", "1MiB", "--log-max-backups", "2"}); err != nil {
		t.Fatal(err)
	}
	log := g.newLogger(slog.LevelInfo)
	// Two loggers of one process share the file.
	other := g.newLogger(slog.LevelWarn)
	line := strings.Repeat("x", 1000)
	for i := range 4500 { // about 4.5MiB: four rotations
		log.Info("filler", "i", i, "pad", line)
	}
	other.Warn("last")

	fi, err := os.Stat(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("%s holds %d bytes, past --log-max-size 1MiB", logFile, fi.Size())
	}
	checkMode(t, logFile, 0o600)
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "level=WARN msg=last") {
		t.Errorf("the last record is not in %s", logFile)
	}
	// lumberjack removes the backups past --log-max-backups in a goroutine
	// of its own after each rotation: wait for it.
	var backups []string
	waitFor(t, 10*time.Second, "the rotated logs to be pruned to 2", func() bool {
		backups, err = filepath.Glob(filepath.Join(dir, "escalefs-*.log"))
		return err == nil && len(backups) == 2
	})
	for _, b := range backups {
		checkMode(t, b, 0o600)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// A mount in the background with --log-file logs there, and says so,
// instead of in mount.log.
func TestMountBackgroundLogFile(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	mnt, stateHome := t.TempDir(), t.TempDir()
	logFile := filepath.Join(t.TempDir(), "escalefs.log")
	t.Cleanup(func() {
		for _, pid := range processesWith(t, mnt) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = exec.Command("fusermount", "-u", "-z", mnt).Run()
	})

	out, errOut, code := mountBG(t, bin, stateHome, "--relay", relay, "--key-file", key, "--name", "alice",
		"--log-file", logFile, "--log-max-size", "2MiB", mnt)
	if code != 0 {
		t.Fatalf("escalefs mount --log-file: exit %d\n%s%s", code, out, errOut)
	}
	if want := "mounted " + mnt + " (log: " + logFile + ")\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	readLog := func() string {
		data, _ := os.ReadFile(logFile)
		return string(data)
	}
	if !strings.Contains(readLog(), "level=INFO msg=mounted") {
		t.Errorf("the log file lacks the mounted line:\n%s", readLog())
	}
	checkMode(t, logFile, 0o600)
	if out, err := exec.Command("fusermount", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u %s: %v\n%s", mnt, err, out)
	}
	waitFor(t, 20*time.Second, "the background process to log its end", func() bool {
		return strings.Contains(readLog(), "level=INFO msg=stopped")
	})
	logs, err := filepath.Glob(filepath.Join(stateHome, "escalefs", "*", mountLogName))
	if err != nil || len(logs) != 1 {
		t.Fatalf("mount.log files under %s: %v, %v; want one", stateHome, logs, err)
	}
	if data, err := os.ReadFile(logs[0]); err != nil || strings.Contains(string(data), "level=") {
		t.Errorf("%s holds log records although --log-file was given (%v):\n%s", logs[0], err, data)
	}
}
