package localdir

import (
	"os"
	"syscall"
)

// Hooks for the tests of package localdir_test.

// SetHashHook makes d call f for each file it has opened for hashing,
// before reading it.
func SetHashHook(d *Dir, f func(rel string)) { d.onHash = f }

// WithEventHook returns o with f called after each event a Watcher handles.
func WithEventHook(o WatchOptions, f func(rel string)) WatchOptions {
	o.onEvent = f
	return o
}

// FSNotifyErrors is the error channel of w's fsnotify watcher, into which
// tests inject errors such as an overflow.
func (w *Watcher) FSNotifyErrors() chan error { return w.fsw.Errors }

// SetCrossDevice makes d's hold directory behave as if it were on another
// file system than the folder: a link into it fails with EXDEV.
func SetCrossDevice(d *Dir) {
	d.linkOut = func(*os.Root, string, string) error { return syscall.EXDEV }
}

// Racy is racy, for the tests of the racy window.
func Racy(changed, now int64) bool { return racy(changed, now) }
