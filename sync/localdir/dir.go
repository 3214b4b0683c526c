package localdir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// TempPrefix starts the name of every temporary file this package creates.
// Names with this prefix are never reported by Scan or Watch, and CleanTemp
// removes them.
const TempPrefix = ".escalefs-tmp."

// ModeMask is the part of a file mode that Scan reports and Install, Mkdir
// and SetMeta apply: the permission bits plus setuid, setgid and sticky. Type
// bits are never part of a reported Mode; Kind says what the path is.
const ModeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// ErrLocalChanged is returned (wrapped, naming the path) by Install, Mkdir,
// SetMeta, Remove and Rename when the local path no longer is what the
// engine last saw: the file was modified, created, deleted or replaced since
// the LocalStat passed as expect was taken, a directory to remove is not
// empty, or something that is not a directory sits where one is needed. The
// local path is left untouched; the engine keeps the local version, e.g. by
// making a conflict copy (see ConflictName).
var ErrLocalChanged = errors.New("local file changed since it was last scanned")

// IsTemp reports whether name (a base name or a path) is a temporary file of
// this package.
func IsTemp(name string) bool {
	return strings.HasPrefix(path.Base(name), TempPrefix)
}

// tempName returns a fresh temporary file name.
func tempName() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return TempPrefix + hex.EncodeToString(b[:])
}

// Clock is the time source of a Dir: Scan reads Now, and a Watcher also
// arms timers. Tests inject a fake one (localdirtest.Clock) so that they
// never sleep to wait for a debounce.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that delivers once on its channel after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C is the channel the timer delivers on.
	C() <-chan time.Time
	// Stop prevents the timer from firing; afterwards C delivers nothing.
	Stop()
}

// SystemClock is the real clock. It is what a nil Options.Clock means.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop()               { t.t.Stop() }

// Options configure a Dir. The zero value is usable.
type Options struct {
	// Logger receives warnings (skipped names, unwatchable directories) and
	// debug messages; nil discards them.
	Logger *slog.Logger
	// Clock is the time source; nil means SystemClock.
	Clock Clock
	// Skip, if set, excludes paths (filters, ignore patterns): Scan neither
	// reports a skipped path nor anything below it, on disk or in the cache,
	// and Watch neither watches nor reports it. isDir tells whether the
	// path is a directory. Skip must be safe for concurrent use and cheap;
	// it is called for every name a scan sees.
	Skip func(rel string, isDir bool) bool
	// Hold, if set, is a directory on the folder's file system where a
	// file that Install replaces or Remove deletes is kept, for a program
	// that still writes to it (see Held). It is made if missing.
	Hold string
	// HoldCopy: where the hold directory is on another file system than
	// the folder, a file about to be replaced or deleted is copied there
	// (it cannot be linked), for a version store to keep. A program that
	// still writes to the replaced file is not seen then.
	HoldCopy bool
}

// Dir is a local directory that escalefs keeps in step. It holds no open
// file: every operation opens the root anew, so a root that is replaced
// (or unmounted) is seen as it is now. A Dir is safe for concurrent use.
type Dir struct {
	root  string
	log   *slog.Logger
	clock Clock
	skipF func(string, bool) bool
	// holdDir is Options.Hold.
	holdDir  string
	holdCopy bool

	// linkOut links a file into the hold directory; tests make it fail
	// as across file systems.
	linkOut func(dir *os.Root, name, dst string) error

	// onHash, if set, is called when a file has been opened for hashing,
	// before it is read: tests change the file there.
	onHash func(rel string)
}

// New returns the Dir rooted at root, which must be an existing directory
// (a symlink to one is accepted for the root itself, and only there). The
// path is made absolute. Nothing is created or changed.
func New(root string, opts Options) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local directory %q: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("local directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local directory %q is not a directory", abs)
	}
	d := &Dir{root: abs, log: opts.Logger, clock: opts.Clock, skipF: opts.Skip, holdDir: opts.Hold, holdCopy: opts.HoldCopy, linkOut: linkOut}
	if d.holdDir != "" {
		if err := os.MkdirAll(d.holdDir, 0o700); err != nil {
			return nil, fmt.Errorf("hold directory: %w", err)
		}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = SystemClock{}
	}
	return d, nil
}

// Root returns the absolute path of the directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) skip(rel string, isDir bool) bool {
	return d.skipF != nil && d.skipF(rel, isDir)
}

// abs returns the absolute file name of rel.
func (d *Dir) abs(rel string) string {
	if rel == "" {
		return d.root
	}
	return filepath.Join(d.root, filepath.FromSlash(rel))
}

// openRoot opens the root directory.
func (d *Dir) openRoot() (*os.Root, error) {
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("local directory: %w", err)
	}
	return r, nil
}

// errNotDir reports that a path component that must be a directory is not
// one (or has gone). It is internal; callers translate it.
var errNotDir = errors.New("not a directory")

// errLink reports that a path component that must be a directory is a
// symbolic link; it is an errNotDir.
var errLink = fmt.Errorf("a symbolic link, %w", errNotDir)

// ErrThroughSymlink means a change was refused because a directory of its
// path is a symbolic link in the folder: nothing is ever written, moved or
// removed through a link, which may lead out of the folder. Trying again
// does not help until the link is gone. An error wrapping it also wraps
// ErrLocalChanged.
var ErrThroughSymlink = errors.New("a directory of the path is a symbolic link, which is never followed")

// openDir opens the directory rel ("" for the root) one component at a
// time, never following a symlink: each component must be a real
// directory, checked by comparing the Lstat of the name with the Stat of
// what was opened. With create set, missing components are made (mode
// 0777 less the umask) and their paths returned, parents first, so that a
// failed operation can take them away again. A component that is missing
// (without create) or not a directory yields an error wrapping errNotDir
// that names it.
func (d *Dir) openDir(rel string, create bool) (dir *os.Root, created []string, err error) {
	r, err := d.openRoot()
	if err != nil {
		return nil, nil, err
	}
	if rel == "" {
		return r, nil, nil
	}
	cur := ""
	for name := range strings.SplitSeq(rel, "/") {
		cur = joinRel(cur, name)
		sub, made, err := openSubdir(r, name, create)
		r.Close()
		if made {
			created = append(created, cur)
		}
		if err != nil {
			if errors.Is(err, errNotDir) {
				err = fmt.Errorf("%q: %w", cur, err)
			}
			return nil, created, err
		}
		r = sub
	}
	return r, created, nil
}

// openSubdir opens the directory name inside parent without following a
// symlink, creating it first if create is set and it is missing.
func openSubdir(parent *os.Root, name string, create bool) (sub *os.Root, made bool, err error) {
	fi, err := parent.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		err = parent.Mkdir(name, 0o777)
		switch {
		case err == nil:
			made = true
		case errors.Is(err, fs.ErrExist): // made by someone else meanwhile
		default:
			return nil, false, err
		}
		fi, err = parent.Lstat(name)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, made, errNotDir
	case err != nil:
		return nil, made, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, made, errLink
	case !fi.IsDir():
		return nil, made, errNotDir
	}
	sub, err = openVerified(parent, name, fi)
	return sub, made, err
}

// openVerified opens the directory name inside parent, whose Lstat was fi,
// and checks that what it opened is that directory: os.Root follows a
// symlink that stays inside the root, and the name may have been swapped
// for one since the Lstat.
func openVerified(parent *os.Root, name string, fi fs.FileInfo) (*os.Root, error) {
	sub, err := parent.OpenRoot(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, errNotDir
		}
		return nil, err
	}
	now, err := sub.Stat(".")
	if err != nil {
		sub.Close()
		return nil, err
	}
	if !os.SameFile(fi, now) {
		sub.Close()
		return nil, errNotDir
	}
	return sub, nil
}

// fsyncDir makes the entries of dir durable.
func fsyncDir(dir *os.Root) error {
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// joinRel joins a relative directory path ("" for the root) and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// splitRel returns the directory ("" for the root) and base name of a
// valid relative path.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// under reports whether p is inside the subtree of dir ("" is everything),
// dir itself excluded.
func under(p, dir string) bool {
	if dir == "" {
		return p != ""
	}
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// pathCompare orders paths as the cache does: component by component, so
// that a directory comes directly before its subtree ("a", "a/b", "a-b").
func pathCompare(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			ca = 0
		}
		if cb == '/' {
			cb = 0
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// statKind returns the cache kind of a file mode, or 0 for anything that
// is not a regular file, directory or symlink.
func statKind(m fs.FileMode) cache.Kind {
	switch {
	case m.IsRegular():
		return cache.KindFile
	case m.IsDir():
		return cache.KindDir
	case m&fs.ModeSymlink != 0:
		return cache.KindSymlink
	}
	return 0
}

// sameStat reports whether the file now at a path, with fingerprint cur
// and kind k, is the one expect describes. Directories compare by inode
// alone (their times change with every entry added or removed); files and
// symlinks by size and mtime, and by inode and ctime where expect has them
// (zero means unknown: a LocalStat from a scan is smudged that way when it
// was taken too close to the file's last change to be trusted).
func sameStat(cur cache.LocalStat, k cache.Kind, expect cache.LocalStat) bool {
	if expect.Inode != 0 && cur.Inode != expect.Inode {
		return false
	}
	if k == cache.KindDir {
		return true
	}
	if cur.Size != expect.Size || cur.MTimeNs != expect.MTimeNs {
		return false
	}
	return expect.CTimeNs == 0 || cur.CTimeNs == expect.CTimeNs
}
