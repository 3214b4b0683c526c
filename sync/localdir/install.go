package localdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// copyBufSize is Install's write buffer.
const copyBufSize = 256 << 10

// Meta is what Install, Mkdir and SetMeta apply to a path besides content.
type Meta struct {
	// Kind is what to install: cache.KindFile or cache.KindSymlink for
	// Install, cache.KindFile or cache.KindDir for SetMeta.
	Kind cache.Kind
	// Mode's ModeMask bits are applied to files and directories exactly,
	// without the umask; setuid and setgid included, so the engine decides
	// whether to trust them. Symlinks have no mode of their own.
	Mode fs.FileMode
	// ModTime is applied to files and symlinks (the link's own time) with
	// nanosecond precision; zero leaves the time of writing. Directories
	// keep the time the system gives them.
	ModTime time.Time
	// Target is a symlink's target, stored as is (never resolved).
	Target string
}

// checkPath validates a path an operation is asked to change.
func checkPath(op, rel string) error {
	if err := cache.ValidPath(rel); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if IsTemp(rel) {
		return fmt.Errorf("%s %q: a temporary file name: %w", op, rel, cache.ErrInvalidPath)
	}
	return nil
}

// localChanged wraps ErrLocalChanged with what was found.
func localChanged(op, rel, why string) error {
	return fmt.Errorf("%s %q: %s: %w", op, rel, why, ErrLocalChanged)
}

// checkExpect compares what is at name in dir with expect: nil expect means
// nothing may be there. It returns the current kind, 0 if nothing is there
// (and then err wraps ErrLocalChanged only if expect is not nil).
func checkExpect(op, rel string, dir *os.Root, name string, expect *cache.LocalStat) (k cache.Kind, there bool, err error) {
	fi, err := dir.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if expect != nil {
			return 0, false, localChanged(op, rel, "deleted locally")
		}
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("%s %q: %w", op, rel, err)
	}
	k = statKind(fi.Mode())
	if expect == nil {
		return k, true, localChanged(op, rel, "created locally")
	}
	if k == 0 || !sameStat(localStat(fi), k, *expect) {
		return k, true, localChanged(op, rel, "modified locally")
	}
	return k, true, nil
}

// openParent opens the directory of rel, creating it (and its parents) if
// create is set. Something that is not a directory in the way wraps
// ErrLocalChanged.
func (d *Dir) openParent(op, rel string, create bool) (dir *os.Root, name string, created []string, err error) {
	parent, name := splitRel(rel)
	dir, created, err = d.openDir(parent, create)
	if errors.Is(err, errLink) {
		err = fmt.Errorf("%s %q: %w: %w (%w)", op, rel, err, ErrThroughSymlink, ErrLocalChanged)
	} else if errors.Is(err, errNotDir) {
		err = fmt.Errorf("%s %q: %w: %w", op, rel, err, ErrLocalChanged)
	} else if err != nil {
		err = fmt.Errorf("%s %q: %w", op, rel, err)
	}
	return dir, name, created, err
}

// undoCreated removes the directories openDir made, deepest first, if they
// are still empty.
func (d *Dir) undoCreated(created []string) {
	if len(created) == 0 {
		return
	}
	r, err := d.openRoot()
	if err != nil {
		return
	}
	defer r.Close()
	for i := len(created) - 1; i >= 0; i-- {
		_ = r.Remove(created[i])
	}
}

// Install puts a file (content read from src) or a symlink (meta.Target;
// src is ignored and may be nil) at rel, atomically: it is written to a
// temporary file in the same directory, fsynced with its mode and mtime
// set, and renamed into place, and the directory is fsynced; readers see
// the old file or the complete new one, never a partial one. Missing
// parent directories are created.
//
// Just before the rename, the path is checked against expect, the
// LocalStat the engine last recorded for it (nil: nothing may be there).
// If the local path changed since (modified, created, deleted, replaced),
// Install fails with an error wrapping ErrLocalChanged and the local path
// is left untouched; so it is on any other error or when ctx is cancelled
// (directories it created are removed again if still empty). Between the
// check and the rename a few microseconds remain in which a local write
// can still be overwritten; a new file at a path that had none is never
// overwritten where the filesystem supports RENAME_NOREPLACE.
//
// When src is a Move, its whole file is installed (whatever was read of
// it) and, on the same filesystem, the file is hard-linked into place
// instead of copied and its own name removed: see Move.
//
// It returns the fingerprint of the installed file, to be stored in
// Entry.Local.
func (d *Dir) Install(ctx context.Context, rel string, src io.Reader, meta Meta, expect *cache.LocalStat) (cache.LocalStat, error) {
	const op = "install"
	if err := checkPath(op, rel); err != nil {
		return cache.LocalStat{}, err
	}
	if meta.Kind != cache.KindFile && meta.Kind != cache.KindSymlink {
		return cache.LocalStat{}, fmt.Errorf("install %q: cannot install a %s", rel, meta.Kind)
	}
	if err := ctx.Err(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	dir, name, created, err := d.openParent(op, rel, true)
	if err != nil {
		d.undoCreated(created)
		return cache.LocalStat{}, err
	}
	defer dir.Close()
	tmp := tempName()
	var ls cache.LocalStat
	if meta.Kind == cache.KindSymlink {
		ls, err = d.installSymlink(ctx, dir, tmp, name, rel, meta, expect)
	} else {
		ls, err = d.installFile(ctx, dir, tmp, name, rel, src, meta, expect)
	}
	if err != nil {
		_ = dir.Remove(tmp)
		d.undoCreated(created)
		return cache.LocalStat{}, err
	}
	d.log.Debug("installed", "path", rel, "kind", meta.Kind, "size", ls.Size)
	return ls, nil
}

// Move is a complete file outside the folder (a finished download) that
// Install takes as it is: on the folder's file system it becomes the
// installed file without a copy, and its name (F.Name(), absolute) is
// removed once it is installed, before Install takes the fingerprint it
// returns, which the removal changes (the ctime); elsewhere it is copied
// and left alone. The caller must not change the file afterwards.
type Move struct{ F *os.File }

func (m Move) Read(p []byte) (int, error) { return m.F.Read(p) }

func (d *Dir) installFile(ctx context.Context, dir *os.Root, tmp, name, rel string, src io.Reader, meta Meta, expect *cache.LocalStat) (cache.LocalStat, error) {
	var f *os.File
	var n int64
	moved := ""
	if mv, ok := src.(Move); ok && filepath.IsAbs(mv.F.Name()) && linkInto(dir, mv.F.Name(), tmp) == nil {
		sf := mv.F
		moved = sf.Name()
		// A complete file on the same filesystem (a finished download):
		// it becomes the temporary file without a copy.
		fi, err := sf.Stat()
		if err != nil {
			return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
		}
		n = fi.Size()
		if f, err = dir.OpenFile(tmp, os.O_WRONLY, 0); err != nil {
			return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
		}
	} else {
		var err error
		f, err = dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
		}
		sw := NewSparseWriter(f, 0)
		if n, err = copyCtx(ctx, sw, src); err == nil {
			err = sw.Finish()
		}
		if err != nil {
			f.Close()
			return cache.LocalStat{}, fmt.Errorf("install %q: writing: %w", rel, err)
		}
	}
	defer f.Close()
	if err := f.Chmod(meta.Mode & ModeMask); err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	if !meta.ModTime.IsZero() {
		if err := dir.Chtimes(tmp, time.Time{}, meta.ModTime); err != nil {
			return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
		}
	}
	if err := f.Sync(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	written, err := f.Stat()
	if err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	if err := d.commit(ctx, dir, tmp, name, rel, expect); err != nil {
		return cache.LocalStat{}, err
	}
	if moved != "" {
		// Its other name goes now, so that the fingerprint returned
		// holds the ctime this gives.
		if err := os.Remove(moved); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("removing the name of a file installed", "file", moved, "err", err)
		}
	}
	// The rename changed the ctime; take it from our open file, whose size
	// and mtime are what we wrote. Should a local write slip in right after
	// the rename, its new size or mtime differs from what is returned, and
	// the next scan notices.
	ls := localStat(written)
	ls.Size = n
	if now, err := f.Stat(); err == nil && os.SameFile(now, written) {
		ls.CTimeNs = localStat(now).CTimeNs
	}
	return ls, nil
}

func (d *Dir) installSymlink(ctx context.Context, dir *os.Root, tmp, name, rel string, meta Meta, expect *cache.LocalStat) (cache.LocalStat, error) {
	if meta.Target == "" {
		return cache.LocalStat{}, fmt.Errorf("install %q: symlink without a target", rel)
	}
	if err := dir.Symlink(meta.Target, tmp); err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	if !meta.ModTime.IsZero() {
		// The link's own time (lutimes); a rename keeps it.
		if err := setLinkTime(dir, tmp, meta.ModTime); err != nil {
			return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
		}
	}
	made, err := dir.Lstat(tmp)
	if err != nil {
		return cache.LocalStat{}, fmt.Errorf("install %q: %w", rel, err)
	}
	if err := d.commit(ctx, dir, tmp, name, rel, expect); err != nil {
		return cache.LocalStat{}, err
	}
	if now, err := dir.Lstat(name); err == nil && os.SameFile(now, made) {
		return localStat(now), nil
	}
	return localStat(made), nil
}

// commit checks the target against expect, renames tmp over it and fsyncs
// the directory.
func (d *Dir) commit(ctx context.Context, dir *os.Root, tmp, name, rel string, expect *cache.LocalStat) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("install %q: %w", rel, err)
	}
	k, _, err := checkExpect("install", rel, dir, name, expect)
	if err != nil {
		return err
	}
	if k == cache.KindDir {
		return localChanged("install", rel, "a directory is there")
	}
	var held func(ok bool)
	if k == cache.KindFile {
		held = d.hold(ctx, dir, name, rel, expect, false)
	}
	err = d.renameAt(dir, tmp, dir, name, expect == nil)
	if held != nil {
		held(err == nil)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return localChanged("install", rel, "created locally")
		}
		return fmt.Errorf("install %q: %w", rel, err)
	}
	if err := fsyncDir(dir); err != nil {
		return fmt.Errorf("install %q: fsync directory: %w", rel, err)
	}
	return nil
}

// copyCtx copies src to dst, checking ctx between chunks.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	if src == nil {
		return 0, nil
	}
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Mkdir makes the directory rel with mode (ModeMask bits, exactly), and
// its missing parents (mode 0777 less the umask). It is idempotent: if rel
// is already a directory, only its mode is set. Something else at rel, or
// in place of a parent, fails with an error wrapping ErrLocalChanged and is
// left alone. It returns the directory's fingerprint.
func (d *Dir) Mkdir(ctx context.Context, rel string, mode fs.FileMode) (cache.LocalStat, error) {
	const op = "mkdir"
	if err := checkPath(op, rel); err != nil {
		return cache.LocalStat{}, err
	}
	if err := ctx.Err(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("mkdir %q: %w", rel, err)
	}
	dir, name, created, err := d.openParent(op, rel, true)
	if err != nil {
		d.undoCreated(created)
		return cache.LocalStat{}, err
	}
	defer dir.Close()
	if err := dir.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		d.undoCreated(created)
		return cache.LocalStat{}, fmt.Errorf("mkdir %q: %w", rel, err)
	}
	fi, err := dir.Lstat(name)
	if err != nil {
		return cache.LocalStat{}, fmt.Errorf("mkdir %q: %w", rel, err)
	}
	if !fi.IsDir() {
		return cache.LocalStat{}, localChanged(op, rel, "not a directory")
	}
	if fi.Mode()&ModeMask != mode&ModeMask {
		if err := dir.Chmod(name, mode&ModeMask); err != nil {
			return cache.LocalStat{}, fmt.Errorf("mkdir %q: %w", rel, err)
		}
	}
	if err := fsyncDir(dir); err != nil {
		return cache.LocalStat{}, fmt.Errorf("mkdir %q: fsync directory: %w", rel, err)
	}
	if fi, err = dir.Lstat(name); err != nil {
		return cache.LocalStat{}, fmt.Errorf("mkdir %q: %w", rel, err)
	}
	return localStat(fi), nil
}

// SetMeta sets the mode, and for a file the mtime (if not zero), of the
// file or directory rel (meta.Kind says which) without touching its
// content: a remote OpChmod or OpTouch. The path must still match expect
// and be of meta.Kind, or SetMeta fails with an error wrapping
// ErrLocalChanged and changes nothing. It returns the new fingerprint.
func (d *Dir) SetMeta(ctx context.Context, rel string, meta Meta, expect cache.LocalStat) (cache.LocalStat, error) {
	const op = "set metadata of"
	if err := checkPath(op, rel); err != nil {
		return cache.LocalStat{}, err
	}
	if meta.Kind != cache.KindFile && meta.Kind != cache.KindDir {
		return cache.LocalStat{}, fmt.Errorf("set metadata of %q: not possible on a %s", rel, meta.Kind)
	}
	if err := ctx.Err(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("set metadata of %q: %w", rel, err)
	}
	dir, name, _, err := d.openParent(op, rel, false)
	if err != nil {
		if errors.Is(err, ErrLocalChanged) {
			return cache.LocalStat{}, localChanged(op, rel, "deleted locally")
		}
		return cache.LocalStat{}, err
	}
	defer dir.Close()
	k, _, err := checkExpect(op, rel, dir, name, &expect)
	if err != nil {
		return cache.LocalStat{}, err
	}
	if k != meta.Kind {
		return cache.LocalStat{}, localChanged(op, rel, "now a "+k.String())
	}
	if err := dir.Chmod(name, meta.Mode&ModeMask); err != nil {
		return cache.LocalStat{}, fmt.Errorf("set metadata of %q: %w", rel, err)
	}
	if k == cache.KindFile && !meta.ModTime.IsZero() {
		if err := dir.Chtimes(name, time.Time{}, meta.ModTime); err != nil {
			return cache.LocalStat{}, fmt.Errorf("set metadata of %q: %w", rel, err)
		}
	}
	fi, err := dir.Lstat(name)
	if err != nil {
		return cache.LocalStat{}, fmt.Errorf("set metadata of %q: %w", rel, err)
	}
	return localStat(fi), nil
}

// Remove deletes the file, symlink or empty directory rel, if it still
// matches expect (the LocalStat the engine recorded): a deletion that
// came from another node. A path that is already gone is not an error. If
// it changed since, or is a directory that is not empty (it holds
// something the engine does not know about), Remove fails with an error
// wrapping ErrLocalChanged and deletes nothing. The parent directory is
// fsynced.
func (d *Dir) Remove(ctx context.Context, rel string, expect cache.LocalStat) error {
	const op = "remove"
	if err := checkPath(op, rel); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %q: %w", rel, err)
	}
	dir, name, _, err := d.openParent(op, rel, false)
	if errors.Is(err, ErrLocalChanged) {
		return nil // a parent is gone (or replaced), so rel is gone too
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	k, there, err := checkExpect(op, rel, dir, name, &expect)
	if !there && errors.Is(err, ErrLocalChanged) {
		return nil // already gone
	}
	if err != nil {
		return err
	}
	var held func(ok bool)
	if k == cache.KindFile {
		held = d.hold(ctx, dir, name, rel, &expect, true)
	}
	err = dir.Remove(name)
	if held != nil {
		held(err == nil)
	}
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case k == cache.KindDir && isNotEmpty(err):
			return localChanged(op, rel, "directory not empty")
		}
		return fmt.Errorf("remove %q: %w", rel, err)
	}
	if err := fsyncDir(dir); err != nil {
		return fmt.Errorf("remove %q: fsync directory: %w", rel, err)
	}
	return nil
}

// Rename moves from to to, if from still matches expect: a rename that
// came from another node. to must not exist, and its missing parents are
// created. A directory moves with its contents. If from changed or is
// gone, or something is at to, Rename fails with an error wrapping
// ErrLocalChanged and changes nothing. Both directories are fsynced. It
// returns the fingerprint of the moved path (a rename changes its ctime).
func (d *Dir) Rename(ctx context.Context, from, to string, expect cache.LocalStat) (cache.LocalStat, error) {
	const op = "rename"
	if err := checkPath(op, from); err != nil {
		return cache.LocalStat{}, err
	}
	if err := checkPath(op, to); err != nil {
		return cache.LocalStat{}, err
	}
	if from == to || under(to, from) {
		return cache.LocalStat{}, fmt.Errorf("rename %q to %q: into itself: %w", from, to, fs.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("rename %q: %w", from, err)
	}
	fdir, fname, _, err := d.openParent(op, from, false)
	if err != nil {
		if errors.Is(err, ErrLocalChanged) {
			return cache.LocalStat{}, localChanged(op, from, "deleted locally")
		}
		return cache.LocalStat{}, err
	}
	defer fdir.Close()
	if _, _, err := checkExpect(op, from, fdir, fname, &expect); err != nil {
		return cache.LocalStat{}, err
	}
	tdir, tname, created, err := d.openParent(op, to, true)
	if err != nil {
		d.undoCreated(created)
		return cache.LocalStat{}, err
	}
	defer tdir.Close()
	if err := d.renameAt(fdir, fname, tdir, tname, true); err != nil {
		d.undoCreated(created)
		if errors.Is(err, fs.ErrExist) {
			return cache.LocalStat{}, localChanged(op, to, "exists locally")
		}
		return cache.LocalStat{}, fmt.Errorf("rename %q to %q: %w", from, to, err)
	}
	if err := fsyncDir(tdir); err != nil {
		return cache.LocalStat{}, fmt.Errorf("rename %q to %q: fsync directory: %w", from, to, err)
	}
	if err := fsyncDir(fdir); err != nil {
		return cache.LocalStat{}, fmt.Errorf("rename %q to %q: fsync directory: %w", from, to, err)
	}
	fi, err := tdir.Lstat(tname)
	if err != nil {
		return cache.LocalStat{}, fmt.Errorf("rename %q to %q: %w", from, to, err)
	}
	return localStat(fi), nil
}

// CleanTemp removes the temporary files (TempPrefix) that an interrupted
// Install left anywhere in the folder, and returns how many it removed.
// Call it at start, before any Install: it would remove the temporary file
// of one in progress. Symlinks are not followed; directories are never
// removed. It goes on past errors and returns them joined.
func (d *Dir) CleanTemp(ctx context.Context) (int, error) {
	removed := 0
	var errs []error
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if p != d.root {
				errs = append(errs, err)
				return nil
			}
			return err
		}
		if e.IsDir() || !IsTemp(e.Name()) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed++
		d.log.Debug("removed a leftover temporary file", "path", p)
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("clean temporary files in %s: %w", d.root, errors.Join(errs...))
	}
	return removed, nil
}
