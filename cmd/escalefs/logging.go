package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/pflag"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/escalefs/escalefs/internal/units"
)

// Defaults of the log flags.
const (
	defaultLogMaxSize    = 10 << 20 // 10MiB
	defaultLogMaxBackups = 5
)

// logLevels maps the names --log-level accepts to their level.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
}

// logLevelForm describes the values of --log-level, for error messages.
const logLevelForm = "expected debug, info, warn or error"

// logOptions say where and how much escalefs logs: the global flags
// --log-level, --log-file, --log-max-size and --log-max-backups, or the
// same keys of the configuration file's global table.
type logOptions struct {
	// File is the log file, rotated when it would grow past MaxSize; ""
	// logs to standard error (for a mount in the background, to mount.log
	// in the node's state directory).
	File string
	// MaxSize is the size in bytes past which File is rotated, rounded up
	// to whole MiB; at least 1MiB.
	MaxSize int64
	// MaxBackups is how many rotated files are kept beside File (0: all).
	MaxBackups int
	// Level is the lowest level logged, when LevelSet; otherwise each
	// command has its own (info for sync and mount, warn for the others).
	Level    slog.Level
	LevelSet bool

	once sync.Once
	out  *lumberjack.Logger // File, once opened; nil if it cannot be
}

// defaultLogOptions returns the options in effect when nothing sets them.
func defaultLogOptions() logOptions {
	return logOptions{MaxSize: defaultLogMaxSize, MaxBackups: defaultLogMaxBackups}
}

// parseLogLevel parses a --log-level value.
func parseLogLevel(s string) (slog.Level, error) {
	l, ok := logLevels[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return 0, fmt.Errorf("--log-level %q: %s", s, logLevelForm)
	}
	return l, nil
}

// parseLogMaxSize parses a --log-max-size value.
func parseLogMaxSize(s string) (int64, error) {
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--log-max-size %q: %v; %s", s, err, units.SizeForm)
	}
	if n < 1<<20 {
		return 0, fmt.Errorf("--log-max-size %q: expected at least 1MiB: the log is rotated in whole MiB", s)
	}
	return n, nil
}

// SetLevel sets Level from a --log-level value.
func (o *logOptions) SetLevel(s string) error {
	l, err := parseLogLevel(s)
	if err != nil {
		return err
	}
	o.Level, o.LevelSet = l, true
	return nil
}

// SetMaxSize sets MaxSize from a --log-max-size value.
func (o *logOptions) SetMaxSize(s string) error {
	n, err := parseLogMaxSize(s)
	if err != nil {
		return err
	}
	o.MaxSize = n
	return nil
}

// SetMaxBackups sets MaxBackups, which must not be negative.
func (o *logOptions) SetMaxBackups(n int) error {
	if n < 0 {
		return fmt.Errorf("--log-max-backups %d: expected 0 (keep every rotated log) or a positive number", n)
	}
	o.MaxBackups = n
	return nil
}

// register sets o to its defaults and adds the log flags to fs.
func (o *logOptions) register(fs *pflag.FlagSet) {
	*o = defaultLogOptions()
	fs.Var(logLevelValue{o}, "log-level", "lowest level logged: debug, info, warn or error (default: info for sync and mount, warn otherwise)")
	fs.StringVar(&o.File, "log-file", "", "log to `FILE` instead of standard error (a background mount: instead of mount.log), rotated at --log-max-size")
	fs.Var(logSizeValue{o}, "log-max-size", "size at which --log-file is rotated, such as 10MiB or 50MB (at least 1MiB)")
	fs.Var(logBackupsValue{o}, "log-max-backups", "how many rotated logs of --log-file to keep (0: all)")
}

// The flag values of register: each parses and checks what it is given.
type (
	logLevelValue   struct{ o *logOptions }
	logSizeValue    struct{ o *logOptions }
	logBackupsValue struct{ o *logOptions }
)

func (v logLevelValue) String() string {
	if v.o == nil || !v.o.LevelSet {
		return ""
	}
	return strings.ToLower(v.o.Level.String())
}
func (v logLevelValue) Set(s string) error {
	if _, err := parseLogLevel(s); err != nil {
		return errors.New(logLevelForm)
	}
	return v.o.SetLevel(s)
}
func (logLevelValue) Type() string { return "LEVEL" }

func (v logSizeValue) String() string {
	if v.o == nil {
		return ""
	}
	if v.o.MaxSize%(1<<20) == 0 {
		return strconv.FormatInt(v.o.MaxSize>>20, 10) + "MiB"
	}
	return strconv.FormatInt(v.o.MaxSize, 10)
}
func (v logSizeValue) Set(s string) error {
	n, err := units.ParseSize(s)
	switch {
	case err != nil:
		return fmt.Errorf("%v; %s", err, units.SizeForm)
	case n < 1<<20:
		return errors.New("expected at least 1MiB: the log is rotated in whole MiB")
	}
	v.o.MaxSize = n
	return nil
}
func (logSizeValue) Type() string { return "SIZE" }

func (v logBackupsValue) String() string {
	if v.o == nil {
		return ""
	}
	return strconv.Itoa(v.o.MaxBackups)
}
func (v logBackupsValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("expected 0 (keep every rotated log) or a positive number")
	}
	v.o.MaxBackups = n
	return nil
}
func (logBackupsValue) Type() string { return "N" }

// level is the level a command whose default is def logs at: --log-level
// if given, and debug with -v.
func (g *globals) level(def slog.Level) slog.Level {
	l := def
	if g.log.LevelSet {
		l = g.log.Level
	}
	if g.verbose {
		l = min(l, slog.LevelDebug)
	}
	return l
}

// newLogger returns a logger of one line per record (time, level, message
// and key=value attributes) at g.level(def), to the log file if one is
// given, else to g.stderr.
func (g *globals) newLogger(def slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(g.logWriter(), &slog.HandlerOptions{Level: g.level(def)}))
}

// logWriter returns where the logs go: the log file, opened once and
// shared by every logger of the process, or g.stderr if none is given or
// it cannot be written (which is said on g.stderr).
func (g *globals) logWriter() io.Writer {
	o := &g.log
	if o.File == "" {
		return g.stderr
	}
	o.once.Do(func() {
		path, err := filepath.Abs(o.File)
		if err != nil {
			path = o.File
		}
		out, err := openRotated(path, o.MaxSize, o.MaxBackups)
		if err != nil {
			fmt.Fprintf(g.stderr, "escalefs: cannot write the log file %s (%v): logging to standard error\n", path, err)
			return
		}
		o.out = out
	})
	if o.out == nil {
		return g.stderr
	}
	return o.out
}

// logFilePath returns the absolute path of the log file, or "" if none is
// given.
func (o *logOptions) logFilePath() string {
	if o.File == "" {
		return ""
	}
	if p, err := filepath.Abs(o.File); err == nil {
		return p
	}
	return o.File
}

// openRotated opens the log file path for appending, in a directory made
// private if it is created, with mode 0600, rotated when it would grow past
// maxSize bytes (rounded up to whole MiB), keeping maxBackups rotated files
// (0: all).
func openRotated(path string, maxSize int64, maxBackups int) (*lumberjack.Logger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
		// Rotated files keep the mode of the file they replace.
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, err
		}
	}
	out := &lumberjack.Logger{
		Filename:   path,
		MaxSize:    int((max(maxSize, 1) + 1<<20 - 1) >> 20),
		MaxBackups: maxBackups,
	}
	// An empty write opens (or creates) the file, so that an unwritable
	// one is reported now rather than dropping every record.
	if _, err := out.Write(nil); err != nil {
		return nil, err
	}
	return out, nil
}
