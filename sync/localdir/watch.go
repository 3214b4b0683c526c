package localdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of WatchOptions.
const (
	DefaultQuiet       = 500 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
	DefaultRescanEvery = 10 * time.Minute
)

// Rescan reasons of a Batch.
const (
	ReasonOverflow   = "event overflow"
	ReasonPeriodic   = "periodic"
	ReasonWatchError = "watch error"
	ReasonRootMoved  = "root moved or removed"
)

// WatchOptions configure a Watcher. The zero value gives the defaults.
type WatchOptions struct {
	// Quiet is how long no event may arrive before the pending paths are
	// delivered (debounce: editors write, rename and fsync in bursts). Zero
	// means DefaultQuiet.
	Quiet time.Duration
	// MaxDelay bounds how long a path waits when events never stop (a file
	// being written continuously): pending paths are delivered at most
	// MaxDelay after the first of them arrived. Zero means DefaultMaxDelay.
	MaxDelay time.Duration
	// RescanEvery is the period of the safety-net full rescan; zero means
	// DefaultRescanEvery, a negative value turns it off.
	RescanEvery time.Duration

	// onEvent, if set, is called after each event has been handled, with
	// its path: tests wait on it before moving the clock.
	onEvent func(rel string)
}

// Batch is what a Watcher delivers: paths that may have changed, or a
// request to scan everything.
type Batch struct {
	// Paths may have changed, each with its subtree if it is (or was) a
	// directory: scan them with ScanOptions{Paths: b.Paths}. Sorted, with
	// paths inside others folded; nil when Rescan is set.
	Paths []string
	// Rescan asks for a scan of the whole folder: events were lost
	// (overflow, a watch error), the safety-net period elapsed, or the root
	// itself moved. Reason says which, for logs.
	Rescan bool
	Reason string
}

// Watcher reports paths of a Dir that may have changed, from inotify (or
// the platform's equivalent, via fsnotify). It watches every directory of
// the tree that Options.Skip does not exclude, adds watches for
// directories as they appear (and reports them, so their contents made
// before the watch was added are scanned), and drops them when they go.
//
// Events are never blocked on a slow consumer: paths accumulate while a
// Batch waits to be received, and merge into the next one.
type Watcher struct {
	d        *Dir
	fsw      *fsnotify.Watcher
	out      chan Batch
	quiet    time.Duration
	maxDelay time.Duration
	every    time.Duration
	onEvent  func(string)

	watched    map[string]bool // directories with a watch; owned by run
	limitNoted bool            // warned about the watch limit; owned by run

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce gosync.Once
	closeErr  error
}

// Watch starts watching the folder. Start it before the initial full Scan,
// so that nothing changed between the two is missed. The watcher runs
// until ctx is cancelled or Close is called; then Batches is closed.
// Directories that cannot be watched (permissions, the inotify watch limit
// fs.inotify.max_user_watches) are logged as warnings and left to the
// periodic rescan; only a failure to watch the root is an error.
func (d *Dir) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", d.root, err)
	}
	w := &Watcher{
		d: d, fsw: fsw, out: make(chan Batch),
		quiet: opts.Quiet, maxDelay: opts.MaxDelay, every: opts.RescanEvery,
		onEvent: opts.onEvent,
		watched: make(map[string]bool),
		done:    make(chan struct{}),
	}
	if w.quiet <= 0 {
		w.quiet = DefaultQuiet
	}
	if w.maxDelay <= 0 {
		w.maxDelay = DefaultMaxDelay
	}
	if w.every == 0 {
		w.every = DefaultRescanEvery
	}
	if err := fsw.Add(d.root); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", d.root, err)
	}
	w.watched[""] = true
	w.watchTree("")
	ctx, w.cancel = context.WithCancel(ctx)
	go w.run(ctx)
	return w, nil
}

// Batches delivers the batches. It is closed when the watcher stops.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Close stops the watcher and waits for it to finish. Batches is closed
// afterwards. Closing twice is harmless.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.done
	})
	return w.closeErr
}

// pending is what has accumulated since the last delivery.
type pending struct {
	paths  map[string]bool
	rescan bool
	reason string
}

func (p *pending) empty() bool { return len(p.paths) == 0 && !p.rescan }

func (p *pending) add(rel string) {
	if p.paths == nil {
		p.paths = make(map[string]bool)
	}
	p.paths[rel] = true
}

func (p *pending) fullScan(reason string) {
	if !p.rescan {
		p.rescan, p.reason = true, reason
	}
}

// merge moves o into p.
func (p *pending) merge(o *pending) {
	for rel := range o.paths {
		p.add(rel)
	}
	if o.rescan {
		p.fullScan(o.reason)
	}
	*o = pending{}
}

func (p *pending) batch() Batch {
	if p.rescan {
		return Batch{Rescan: true, Reason: p.reason}
	}
	paths := make([]string, 0, len(p.paths))
	for rel := range p.paths {
		paths = append(paths, rel)
	}
	slices.SortFunc(paths, pathCompare)
	out := paths[:0]
	for _, rel := range paths {
		if n := len(out); n > 0 && under(rel, out[n-1]) {
			continue
		}
		out = append(out, rel)
	}
	return Batch{Paths: out}
}

func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// run is the watcher's loop: it owns all its state.
func (w *Watcher) run(ctx context.Context) {
	clock := w.d.clock
	var (
		acc, ready   pending // accumulating; waiting to be received
		first, last  time.Time
		debounce     Timer
		periodic     Timer
		accumulating bool
		batch        *Batch // ready.batch(), made once per change of ready
	)
	if w.every > 0 {
		periodic = clock.NewTimer(w.every)
	}
	defer func() {
		for _, t := range []Timer{debounce, periodic} {
			if t != nil {
				t.Stop()
			}
		}
		w.closeErr = w.fsw.Close()
		close(w.out)
		close(w.done)
	}()
	touch := func() {
		now := clock.Now()
		if !accumulating {
			first, accumulating = now, true
		}
		last = now
		if debounce == nil {
			debounce = clock.NewTimer(w.quiet)
		}
	}
	for {
		var out chan Batch
		var b Batch
		if !ready.empty() {
			if batch == nil {
				bb := ready.batch()
				batch = &bb
			}
			out, b = w.out, *batch
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			rel, mark, reason := w.handle(ev)
			switch {
			case reason != "":
				acc.fullScan(reason)
				touch()
			case mark:
				acc.add(rel)
				touch()
			}
			if w.onEvent != nil {
				w.onEvent(rel)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			reason := ReasonWatchError
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				reason = ReasonOverflow
			}
			w.d.log.Warn("file system events lost; rescanning everything", "dir", w.d.root, "err", err)
			acc.fullScan(reason)
			touch()
		case <-timerC(debounce):
			debounce = nil
			now := clock.Now()
			due := last.Add(w.quiet)
			if limit := first.Add(w.maxDelay); limit.Before(due) {
				due = limit
			}
			if now.Before(due) {
				debounce = clock.NewTimer(due.Sub(now))
				continue
			}
			ready.merge(&acc)
			accumulating, batch = false, nil
		case <-timerC(periodic):
			periodic = clock.NewTimer(w.every)
			ready.fullScan(ReasonPeriodic)
			batch = nil
		case out <- b:
			ready, batch = pending{}, nil
		}
	}
}

// handle updates the watches for one event and returns its path, whether
// to report it, and a reason if it calls for a full rescan.
func (w *Watcher) handle(ev fsnotify.Event) (rel string, mark bool, rescan string) {
	rel, ok := w.rel(ev.Name)
	if !ok {
		return "", false, ""
	}
	if rel == "" {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			return "", false, ReasonRootMoved
		}
		return "", false, "" // the root's own mode or times: nothing to sync
	}
	if IsTemp(rel) {
		return rel, false, ""
	}
	isDir := w.watched[rel]
	if isDir && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
		// Gone, or moved: a watch that moved keeps its old name, so drop it
		// and its subtree's; a Create event re-adds them at the new name.
		w.unwatch(rel)
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			isDir = true
			if !w.d.skip(rel, true) {
				w.watchTree(rel)
			}
		}
	}
	if w.d.skip(rel, isDir) {
		return rel, false, ""
	}
	return rel, true, ""
}

// rel returns the relative path of an event's file name.
func (w *Watcher) rel(name string) (string, bool) {
	if name == w.d.root {
		return "", true
	}
	rest, ok := strings.CutPrefix(name, w.d.root+string(filepath.Separator))
	if !ok || rest == "" {
		return "", false
	}
	return filepath.ToSlash(rest), true
}

// watchTree adds watches for the directory rel and every directory below
// it that is not skipped. It never follows symlinks.
func (w *Watcher) watchTree(rel string) {
	start := w.d.abs(rel)
	_ = filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if e != nil && e.IsDir() {
				return filepath.SkipDir
			}
			return nil // vanished or unreadable: its parent's events or a rescan tell
		}
		if !e.IsDir() {
			return nil
		}
		r, _ := w.rel(p)
		if r != "" && p != start && (IsTemp(e.Name()) || w.d.skip(r, true)) {
			return filepath.SkipDir
		}
		if w.watched[r] {
			return nil
		}
		if err := w.fsw.Add(p); err != nil {
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case errors.Is(err, syscall.ENOSPC):
				if !w.limitNoted {
					w.limitNoted = true
					w.d.log.Warn("inotify watch limit reached; changes in unwatched directories are found by the periodic rescan only; raise fs.inotify.max_user_watches",
						"dir", p, "err", err)
				}
			default:
				w.d.log.Warn("cannot watch a directory; its changes are found by the periodic rescan only", "dir", p, "err", err)
			}
			return filepath.SkipDir
		}
		w.watched[r] = true
		return nil
	})
}

// unwatch drops the watches of rel and its subtree.
func (w *Watcher) unwatch(rel string) {
	for p := range w.watched {
		if p == rel || under(p, rel) {
			_ = w.fsw.Remove(w.d.abs(p)) // may be gone already: the kernel drops a deleted directory's watch
			delete(w.watched, p)
		}
	}
}
