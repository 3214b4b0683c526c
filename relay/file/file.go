// Package file is the relay backend for a local directory or a mounted
// share: file:///path.
//
// Put is atomic: the payload goes to a temporary file in the target's
// directory, which is fsynced, renamed into place, and the directory is
// fsynced, so a crash leaves either the old or the new object.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Backend returns the registry entry for file:// URLs.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"file"},
		Usage:   "file:///path (a local directory or mounted share)",
		Open:    Open,
	}
}

// Relay stores objects as files under a root directory.
type Relay struct {
	root string
	loc  string
	log  *slog.Logger
}

var (
	_ relay.Relay   = (*Relay)(nil)
	_ relay.Renamer = (*Relay)(nil)
	_ relay.Creator = (*Relay)(nil)
	_ relay.Quotaer = (*Relay)(nil)
)

// Open opens the directory named by u's path, creating it if needed. A host
// other than "" or "localhost" is refused: file:// URLs name local paths.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("relay URL %q: a file URL names a local path and has no host; write file:///%s%s",
			u.Redacted(), u.Host, u.Path)
	}
	if u.Path == "" {
		return nil, fmt.Errorf("relay URL %q: no directory; expected file:///path", u.Redacted())
	}
	return New(ctx, u.Path, opts.Log())
}

// New opens root as a relay, creating it if needed.
func New(ctx context.Context, root string, log *slog.Logger) (*Relay, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("relay directory %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, relay.WrapOp("connect", abs, translate(err))
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, relay.WrapOp("connect", abs, translate(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("relay directory %q is not a directory", abs)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{root: abs, loc: (&url.URL{Scheme: "file", Path: abs}).String(), log: log}, nil
}

func (r *Relay) path(name string) string {
	return filepath.Join(r.root, filepath.FromSlash(name))
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := check(ctx, name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	st, err := os.Stat(r.path(name))
	if err == nil && !st.Mode().IsRegular() {
		err = fs.ErrNotExist // directories are not objects
	}
	if err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, translate(err))
	}
	return relay.ObjectInfo{Name: name, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// List implements relay.Relay.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	start := r.root
	if dir != "" {
		start = r.path(dir)
	}
	var fnErr error
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished while walking, or dir itself missing
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || relay.IsTempName(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(r.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if err := relay.ValidName(name); err != nil {
			r.log.Warn("skipping a relay file whose name escalefs never writes", "err", err)
			return nil
		}
		if err := fn(relay.ObjectInfo{Name: name, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return relay.WrapOp("list", dir, translate(err))
	}
	return nil
}

// Get implements relay.Relay.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := check(ctx, name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	f, err := os.Open(r.path(name))
	if err != nil {
		return relay.WrapOp("get", name, translate(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return relay.WrapOp("get", name, translate(err))
	}
	if !st.Mode().IsRegular() {
		return relay.WrapOp("get", name, fs.ErrNotExist)
	}
	offset = max(offset, 0)
	n := max(st.Size()-offset, 0)
	if length >= 0 {
		n = min(n, length)
	}
	return fn(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, offset, n)})
}

// ctxReader stops a long read when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// Put implements relay.Relay: temp file, fsync, rename, fsync directory.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	return r.put(ctx, "put", name, p, os.Rename)
}

// Create implements relay.Creator: as Put, but the temporary file is
// linked to its name, which fails if the name exists, rather than renamed
// over it. A file system without hard links (some network shares) gives
// relay.ErrUnsupported.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	return r.put(ctx, "create", name, p, func(tmp, final string) error {
		err := os.Link(tmp, final)
		os.Remove(tmp)
		switch {
		case err == nil, errors.Is(err, fs.ErrExist):
			return err
		case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EXDEV),
			errors.Is(err, syscall.EOPNOTSUPP):
			return fmt.Errorf("%w: the file system makes no hard links (%v)", relay.ErrUnsupported, err)
		}
		return err
	})
}

// put writes p to a temporary file, fsyncs it, and moves it to name with
// place (a rename, or a link that refuses an existing name).
func (r *Relay) put(ctx context.Context, op, name string, p relay.Payload, place func(tmp, final string) error) (err error) {
	if err := check(ctx, name); err != nil {
		return relay.WrapOp(op, name, err)
	}
	final := r.path(name)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	tmp := r.path(relay.TempName(name))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: relay.CheckedReader(p)}); err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	if err := f.Sync(); err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	if err := f.Close(); err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp(op, name, err)
	}
	if err := place(tmp, final); err != nil {
		return relay.WrapOp(op, name, translate(err))
	}
	if err := syncDir(dir); err != nil {
		// The object is in place; only its durability is in doubt.
		r.log.Warn("fsync of relay directory failed", "dir", dir, "err", err)
	}
	return nil
}

// Delete implements relay.Relay. Empty parent directories are removed so
// that the relay does not fill with them.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	p := r.path(name)
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		return nil // not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return relay.WrapOp("delete", name, translate(err))
	}
	r.pruneDirs(path.Dir(name))
	return nil
}

// pruneDirs removes dir and its ancestors while they are empty. Failure is
// harmless: another Put may have just created a file there.
func (r *Relay) pruneDirs(dir string) {
	for dir != "." && dir != "" {
		if err := os.Remove(r.path(dir)); err != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// Rename implements relay.Renamer.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	if err := check(ctx, from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", to, err)
	}
	src := r.path(from)
	if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() {
		return relay.WrapOp("rename", from, fs.ErrNotExist)
	}
	dst := r.path(to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return relay.WrapOp("rename", to, translate(err))
	}
	if err := os.Rename(src, dst); err != nil {
		return relay.WrapOp("rename", from, translate(err))
	}
	syncDir(filepath.Dir(dst))
	if filepath.Dir(src) != filepath.Dir(dst) {
		syncDir(filepath.Dir(src))
	}
	r.pruneDirs(path.Dir(from))
	return nil
}

// Quota implements relay.Quotaer with the file system's free space: Total
// is what is used plus what is still available to this user.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.root, &st); err != nil {
		return relay.Usage{}, relay.WrapOp("quota", "", translate(err))
	}
	var used int64
	err := filepath.WalkDir(r.root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if info, err := d.Info(); err == nil {
			used += info.Size()
		}
		return nil
	})
	if err != nil {
		return relay.Usage{}, relay.WrapOp("quota", "", err)
	}
	return relay.Usage{Used: used, Total: used + int64(st.Bavail)*st.Bsize}, nil
}

// Properties implements relay.Relay.
func (r *Relay) Properties() relay.Properties {
	return relay.Properties{Scheme: "file", Location: r.loc, AtomicPut: true, MaxNameComponent: 255}
}

// Close implements relay.Relay. It holds nothing open.
func (r *Relay) Close() error { return nil }

func check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return relay.ValidName(name)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// translate maps OS errors onto the relay sentinels.
func translate(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %v", relay.ErrQuota, err)
	case errors.Is(err, syscall.ENOTDIR):
		// A path component is a file: for object names that means "absent".
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return relay.Permanent(fmt.Errorf("%w: %v", relay.ErrInvalidName, err))
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %v", fs.ErrPermission, err)
	}
	return err
}

// RemoveTemp implements relay.TempRemover: it deletes the temporary files
// of Puts that never finished (a process killed halfway) under dir, if they
// were last modified before before.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	if err := relay.ValidDir(dir); err != nil {
		return 0, relay.WrapOp("remove temporary objects", dir, err)
	}
	start := r.root
	if dir != "" {
		start = r.path(dir)
	}
	n := 0
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !relay.IsTempName(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, relay.WrapOp("remove temporary objects", dir, err)
	}
	return n, nil
}
