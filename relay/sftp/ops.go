package sftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// abs returns the absolute server path of an object or directory name.
func (r *Relay) abs(name string) string {
	if name == "" {
		return r.root
	}
	if r.root == "/" {
		return "/" + name
	}
	return r.root + "/" + name
}

// Stat returns the size and modification time of an object. A directory
// is not an object: fs.ErrNotExist.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := relay.ValidName(name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	var info relay.ObjectInfo
	err := r.do(ctx, "stat", name, func(c *conn) error {
		st, err := c.sc.Stat(r.abs(name))
		if err != nil {
			return translate(err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%w: not a regular file", fs.ErrNotExist)
		}
		info = relay.ObjectInfo{Name: name, Size: st.Size(), ModTime: st.ModTime()}
		return nil
	})
	return info, err
}

// List walks dir breadth first. Each directory is read on a pooled
// connection that is released before fn is called, so that fn may use the
// relay. Temporary objects, other names that are not valid object names,
// and anything but regular files and directories are skipped.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	return r.walk(ctx, "list", dir, func(name string, st os.FileInfo) error {
		if relay.ValidName(name) != nil {
			return nil
		}
		return fn(relay.ObjectInfo{Name: name, Size: st.Size(), ModTime: st.ModTime()})
	})
}

// walk calls fn for every regular file under dir, temporary ones included,
// with its name relative to the root.
func (r *Relay) walk(ctx context.Context, op, dir string, fn func(name string, st os.FileInfo) error) error {
	queue := []string{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		var entries []os.FileInfo
		err := r.do(ctx, op, d, func(c *conn) error {
			var err error
			entries, err = c.sc.ReadDirContext(ctx, r.abs(d))
			if err == nil {
				return nil
			}
			if errors.Is(err, fs.ErrNotExist) {
				entries = nil
				return nil // a missing directory lists nothing
			}
			if st, serr := c.sc.Stat(r.abs(d)); serr == nil && !st.IsDir() {
				entries = nil
				return nil // an object, not a directory
			}
			return translate(err)
		})
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if d != "" {
				name = d + "/" + name
			}
			switch {
			case e.Name() == "." || e.Name() == "..":
			case e.IsDir():
				queue = append(queue, name)
			case e.Mode().IsRegular():
				if err := fn(name, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Get opens the object, seeks to offset and hands fn a reader over at most
// length bytes. A read that fails midway closes the connection.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	if offset < 0 {
		return relay.WrapOp("get", name, fmt.Errorf("negative offset %d: %w", offset, fs.ErrInvalid))
	}
	return r.do(ctx, "get", name, func(c *conn) error {
		f, err := c.sc.Open(r.abs(name))
		if err != nil {
			return translate(err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return translate(err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%w: not a regular file", fs.ErrNotExist)
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return translate(err)
		}
		// Large reads let pkg/sftp keep several read requests in
		// flight; a caller's small reads would cost a round trip each.
		var src io.Reader = bufio.NewReaderSize(f, getBuffer)
		if length >= 0 {
			src = io.LimitReader(src, length)
		}
		rd := &getReader{c: c, name: name, r: src}
		ferr := fn(rd)
		if ferr == nil && rd.err != nil {
			ferr = rd.err // fn swallowed a failed read
		}
		if ferr != nil {
			return &callerError{ferr}
		}
		return nil
	})
}

// getBuffer is the size of the reads Get makes of a remote file.
const getBuffer = 1 << 20

// getReader translates read errors and marks the connection broken on
// one that is not a server refusal.
type getReader struct {
	c    *conn
	name string
	r    io.Reader
	err  error
}

func (g *getReader) Read(b []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(b)
	if err != nil && err != io.EOF {
		terr := translate(err)
		if connBroken(terr) {
			g.c.broken.Store(true)
		}
		g.err = relay.WrapOp("get", g.name, terr)
		return n, g.err
	}
	return n, err
}

// Put writes the payload to a temporary file in the target's directory,
// creating missing directories, and renames it onto name; a new object
// (relay.NewObjects) is written in place. On failure or
// cancellation the temporary file is removed over a new connection.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	return r.put(ctx, "put", name, p, r.rename)
}

// Create implements relay.Creator: as Put, but the temporary file is moved
// with SFTP's own rename, which OpenSSH's server refuses when the target
// exists (it links, then unlinks).
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	return r.put(ctx, "create", name, p, func(c *conn, tmp, name string) error {
		err := c.sc.Rename(r.abs(tmp), r.abs(name))
		if err == nil {
			return nil
		}
		if _, serr := c.sc.Stat(r.abs(name)); serr == nil {
			return fmt.Errorf("%w: %v", fs.ErrExist, err)
		}
		return translate(err)
	})
}

// put writes p to a temporary file and moves it onto name with place.
func (r *Relay) put(ctx context.Context, op, name string, p relay.Payload, place func(c *conn, tmp, name string) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp(op, name, err)
	}
	tmp := relay.TempName(name)
	if op == "put" {
		tmp = relay.PutTarget(ctx, name) // name itself for a new object: no rename
	}
	created := false
	err := r.do(ctx, op, name, func(c *conn) error {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if tmp == name {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC // a retry finds what a failed try left
		}
		f, err := c.sc.OpenFile(r.abs(tmp), flags)
		if errors.Is(err, fs.ErrNotExist) && strings.Contains(name, "/") {
			if err := c.sc.MkdirAll(r.abs(path.Dir(name))); err != nil {
				return translate(err)
			}
			f, err = c.sc.OpenFile(r.abs(tmp), flags)
		}
		if err != nil {
			return r.writeError(c, translate(err))
		}
		created = true
		src := &payloadReader{ctx: ctx, r: relay.CheckedReader(p), size: p.Length()}
		_, err = f.ReadFrom(src)
		cerr := f.Close()
		switch {
		case src.err != nil:
			return ctxErr(ctx, fmt.Errorf("reading the payload: %w", src.err))
		case err != nil:
			return r.writeError(c, translate(err))
		case cerr != nil:
			return r.writeError(c, translate(cerr))
		}
		if tmp == name {
			return nil
		}
		return place(c, tmp, name)
	})
	if err != nil && created {
		r.removeTemp(tmp)
	}
	return err
}

// writeError turns a generic failure of a write into relay.ErrQuota when
// the file system has no space left: OpenSSH reports ENOSPC and EDQUOT as
// a bare SSH_FX_FAILURE, so the free space is asked for.
func (r *Relay) writeError(c *conn, err error) error {
	if !relay.IsPermanent(err) || errors.Is(err, relay.ErrQuota) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, ok := c.sc.HasExtension("statvfs@openssh.com"); !ok {
		return err
	}
	vfs, serr := c.sc.StatVFS(r.root)
	if serr != nil {
		return err
	}
	if vfs.Bavail == 0 || vfs.Favail == 0 {
		return fmt.Errorf("%w: the server's file system is full (%v)", relay.ErrQuota, err)
	}
	return err
}

// payloadReader stops an upload once ctx is done and remembers the
// payload's error. Size lets pkg/sftp send several writes at once.
type payloadReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	err  error
}

func (p *payloadReader) Size() int64 { return p.size }

func (p *payloadReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		p.err = err
		return 0, err
	}
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		p.err = err
	}
	return n, err
}

// rename moves from onto to, replacing to: in one step with
// posix-rename@openssh.com, else by removing to first (SFTP's plain rename
// refuses an existing target).
func (r *Relay) rename(c *conn, from, to string) error {
	if r.posix {
		return translate(c.sc.PosixRename(r.abs(from), r.abs(to)))
	}
	err := c.sc.Rename(r.abs(from), r.abs(to))
	if err == nil {
		return nil
	}
	if _, serr := c.sc.Stat(r.abs(to)); serr != nil {
		return translate(err)
	}
	if rerr := c.sc.Remove(r.abs(to)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return translate(rerr)
	}
	return translate(c.sc.Rename(r.abs(from), r.abs(to)))
}

// removeTemp deletes the temporary file of a failed put, with a fresh
// context: the put's may be cancelled and its connection closed.
func (r *Relay) removeTemp(tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(r.timeout, 30*time.Second))
	defer cancel()
	err := r.do(ctx, "delete", tmp, func(c *conn) error {
		err := c.sc.Remove(r.abs(tmp))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return translate(err)
	})
	if err != nil {
		r.log.Warn("sftp: could not remove the temporary file of a failed put", "name", tmp, "err", err)
	}
}

// Delete removes an object; a missing one is success.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	return r.do(ctx, "delete", name, func(c *conn) error {
		err := c.sc.Remove(r.abs(name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return translate(err)
	})
}

// Rename moves an object, replacing an object at to and creating to's
// parent directories.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	if err := relay.ValidName(from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", to, err)
	}
	return r.do(ctx, "rename", from, func(c *conn) error {
		st, err := c.sc.Stat(r.abs(from))
		if err != nil {
			return translate(err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%w: not a regular file", fs.ErrNotExist)
		}
		err = r.rename(c, from, to)
		if errors.Is(err, fs.ErrNotExist) && strings.Contains(to, "/") {
			if merr := c.sc.MkdirAll(r.abs(path.Dir(to))); merr != nil {
				return translate(merr)
			}
			err = r.rename(c, from, to)
		}
		return err
	})
}

// RemoveTemp implements relay.TempRemover: it deletes the temporary files
// under dir last modified before before.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	if err := relay.ValidDir(dir); err != nil {
		return 0, relay.WrapOp("remove temporary objects", dir, err)
	}
	var old []string
	err := r.walk(ctx, "remove temporary objects", dir, func(name string, st os.FileInfo) error {
		if relay.IsTempName(name) && st.ModTime().Before(before) {
			old = append(old, name)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range old {
		err := r.do(ctx, "delete", name, func(c *conn) error {
			err := c.sc.Remove(r.abs(name))
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return translate(err)
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Quota implements relay.Quotaer with the server's statvfs@openssh.com
// extension: the size and use of the file system holding the relay.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	var u relay.Usage
	err := r.do(ctx, "quota", "", func(c *conn) error {
		if _, ok := c.sc.HasExtension("statvfs@openssh.com"); !ok {
			return fmt.Errorf("%w: the server does not report disk usage (no statvfs@openssh.com)", relay.ErrUnsupported)
		}
		v, err := c.sc.StatVFS(r.root)
		if err != nil {
			return translate(err)
		}
		// Total counts only what the user may fill: blocks reserved
		// for root are left out.
		used := (v.Blocks - v.Bfree) * v.Frsize
		u = relay.Usage{Used: int64(used), Total: int64(used + v.Bavail*v.Frsize)}
		return nil
	})
	return u, err
}
