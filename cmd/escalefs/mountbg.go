package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// notifyEnv names the environment variable through which escalefs mount,
// started without -f, tells the copy of itself that it starts in the
// background which inherited file descriptor to report readiness on. A
// process that finds it serves in the foreground of its own session.
const notifyEnv = "ESCALEFS_MOUNT_NOTIFY_FD"

// mountReadyTimeout bounds how long escalefs mount waits for the
// background process to mount before it stops it.
const mountReadyTimeout = 60 * time.Second

// mountLogName and mountPIDName are the files, in the node's state
// directory, where the background process logs and leaves its process ID.
const (
	mountLogName = "mount.log"
	mountPIDName = "mount.pid"
)

// mountBackground starts escalefs mount again, with the same arguments, as
// a process of its own session with stdin on /dev/null, and waits until it
// reports that the mount is up or fails. What that process writes before it
// is ready reaches the user only if it fails, with its exit status; after,
// it logs to mount.log in the node's state directory.
func mountBackground(ctx context.Context, g *globals, mnt string, asked askedSecrets) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the escalefs program to start in the background (%v): mount with -f", err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devNull.Close()
	notifyR, notifyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer notifyR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		notifyW.Close()
		return err
	}
	defer outR.Close()

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), notifyEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, outW, outW
	cmd.ExtraFiles = []*os.File{notifyW} // fd 3
	secretsR, env, err := asked.handOver(4)
	if err != nil {
		notifyW.Close()
		outW.Close()
		return err
	}
	if secretsR != nil {
		defer secretsR.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, secretsR) // fd 4
		cmd.Env = append(cmd.Env, env)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	notifyW.Close()
	outW.Close()
	if err != nil {
		return fmt.Errorf("starting escalefs mount in the background: %w; mount with -f", err)
	}

	var early bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&early, outR)
		close(copied)
	}()
	ready := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(notifyR).ReadString('\n')
		if err == nil {
			ready <- strings.TrimSuffix(line, "\n")
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timer := time.NewTimer(mountReadyTimeout)
	defer timer.Stop()
	select {
	case logPath := <-ready:
		// The process moved its output to the log before it reported.
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprintf(g.stdout, "mounted %s (log: %s)\n", mnt, logPath)
		return nil
	case err := <-exited:
		<-copied
		_, _ = g.stderr.Write(early.Bytes())
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return &exitError{code: ee.ExitCode()}
		}
		if err == nil {
			return errors.New("escalefs mount stopped before the mount was ready")
		}
		return fmt.Errorf("escalefs mount stopped before the mount was ready: %v", err)
	case <-ctx.Done():
		stopBackground(cmd, exited)
		return errors.New("interrupted before the mount was ready; stopped the background process")
	case <-timer.C:
		stopBackground(cmd, exited)
		<-copied
		_, _ = g.stderr.Write(early.Bytes())
		return fmt.Errorf("the mount was not ready within %v; stopped the background process: "+
			"run escalefs mount -f to see what it waits for", mountReadyTimeout)
	}
}

// stopBackground stops a background mount process that is not ready: with
// SIGTERM, which unmounts if it had mounted, then with SIGKILL if it is
// still there after the unmount grace period.
func stopBackground(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(unmountGrace + 5*time.Second):
	}
	_ = cmd.Process.Kill()
	<-exited
}

// notifier is the background side of mountBackground: the pipe to report
// on, and what the process logged before it had a log file.
type notifier struct {
	pipe *os.File
	log  *os.File
	// logFile is the --log-file the process logs to instead of log, if
	// given; log still takes what is not logged, such as a crash's trace.
	logFile string

	mu    sync.Mutex
	early *bytes.Buffer // nil once the output goes to the log
}

// takeNotifier returns the notifier of a process started by
// mountBackground, or nil. It removes notifyEnv from the environment and,
// until the mount is ready, keeps a copy of what goes to g.stderr.
func takeNotifier(g *globals) (*notifier, error) {
	v, ok := os.LookupEnv(notifyEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(notifyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("$%s=%q is not a file descriptor", notifyEnv, v)
	}
	nt := &notifier{pipe: os.NewFile(uintptr(fd), "notify"), early: &bytes.Buffer{}, logFile: g.log.logFilePath()}
	g.stderr = &teeWriter{w: g.stderr, nt: nt}
	return nt, nil
}

// teeWriter writes to w and, until the notifier's output goes to the log,
// to the notifier's buffer.
type teeWriter struct {
	w  io.Writer
	nt *notifier
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.nt.mu.Lock()
	if t.nt.early != nil {
		t.nt.early.Write(p)
	}
	t.nt.mu.Unlock()
	return t.w.Write(p)
}

// openLog opens the log in the node's state directory.
func (nt *notifier) openLog(state string) error {
	f, err := os.OpenFile(filepath.Join(state, mountLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the mount's log: %w", err)
	}
	nt.log = f
	return nil
}

// ready moves standard output and error to the log, after what the process
// wrote before, writes the process ID to mount.pid, and tells the waiting
// escalefs mount that the mount is up. It returns a function that removes
// mount.pid.
func (nt *notifier) ready(state string) (func(), error) {
	pidFile := filepath.Join(state, mountPIDName)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", pidFile, err)
	}
	removePID := func() { os.Remove(pidFile) }
	nt.mu.Lock()
	_, _ = nt.log.Write(nt.early.Bytes())
	nt.early = nil
	nt.mu.Unlock()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(nt.log.Fd()), fd); err != nil {
			removePID()
			return nil, fmt.Errorf("moving the output to the mount's log: %w", err)
		}
	}
	logName := nt.log.Name()
	if nt.logFile != "" {
		logName = nt.logFile
	}
	_, err := fmt.Fprintln(nt.pipe, logName)
	nt.pipe.Close()
	if err != nil {
		removePID()
		return nil, fmt.Errorf("reporting the mount ready: %w", err)
	}
	return removePID, nil
}
