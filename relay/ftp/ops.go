package ftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/escalefs/escalefs/relay"
)

// drainMax is the most that Get reads past what its caller wanted, to end a
// download cleanly and keep the connection. Beyond it, the connection is
// dropped instead: pure-ftpd over TLS never answers a download closed
// early, and other servers answer in ways that differ.
const drainMax = 256 << 10

// Stat returns the size and modification time of an object, by MLST where
// the server offers it (pure-ftpd, proftpd) and by SIZE and MDTM otherwise
// (vsftpd). A directory is not an object: fs.ErrNotExist.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := relay.ValidName(name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	var info relay.ObjectInfo
	err := r.do(ctx, "stat", name, func(c *conn) error {
		var err error
		info, err = r.stat(c, name)
		return err
	})
	if err != nil {
		return relay.ObjectInfo{}, err
	}
	return info, nil
}

func (r *Relay) stat(c *conn, name string) (relay.ObjectInfo, error) {
	p := r.abs(name)
	info := relay.ObjectInfo{Name: name}
	if r.mlst {
		e, err := c.sc.GetEntry(p)
		if err := c.check(err, false); err != nil {
			return info, err
		}
		if e.Type != ftp.EntryTypeFile {
			return info, fmt.Errorf("%w: a directory, not an object", fs.ErrNotExist)
		}
		info.Size, info.ModTime = int64(e.Size), e.Time
		if !info.ModTime.IsZero() || !c.sc.IsGetTimeSupported() {
			return info, nil
		}
	} else {
		// SIZE fails on directories ("550 Could not get file size." on
		// vsftpd), which is what a directory should give here.
		size, err := c.sc.FileSize(p)
		if err := c.check(err, false); err != nil {
			return info, err
		}
		info.Size = size
		if !c.sc.IsGetTimeSupported() {
			return info, nil
		}
	}
	t, err := c.sc.GetTime(p)
	if err := c.check(err, false); err != nil {
		return info, err
	}
	info.ModTime = t
	return info, nil
}

// List calls fn for every object below dir, walking the directories one by
// one with MLSD where the server offers it and LIST -a otherwise. A
// connection is held only while a directory is read, not while fn runs.
// Entries that are not objects are skipped: ".", "..", temporary objects of
// puts in progress, and the servers' own upload staging files.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	todo := []string{dir}
	for len(todo) > 0 {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		var entries []*ftp.Entry
		err := r.do(ctx, "list", d, func(c *conn) error {
			var err error
			entries, err = r.readDir(c, d)
			return err
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue // a missing directory lists nothing
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if skipEntry(e.Name) {
				continue
			}
			base, ok := decodeComponent(e.Name)
			name := path.Join(d, base)
			if !ok || relay.ValidName(name) != nil {
				// Not a name that Put can have written: another
				// program's file.
				r.log.Debug("ftp: skipping a file whose name is not an object name", "dir", d, "name", e.Name)
				continue
			}
			switch e.Type {
			case ftp.EntryTypeFolder:
				todo = append(todo, name)
			case ftp.EntryTypeFile:
				if err := fn(relay.ObjectInfo{Name: name, Size: int64(e.Size), ModTime: e.Time}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readDir lists one directory. It enters the directory first and lists it
// without an argument: vsftpd matches a LIST argument as a glob pattern, so
// a directory name holding [ or * would list something else.
func (r *Relay) readDir(c *conn, dir string) ([]*ftp.Entry, error) {
	if err := c.check(c.sc.ChangeDir(r.abs(dir)), false); err != nil {
		return nil, err
	}
	if r.mlst {
		entries, err := c.sc.List("")
		return entries, c.check(err, false)
	}
	r.mu.Lock()
	plain := r.listPlain
	r.mu.Unlock()
	if plain {
		entries, err := c.sc.List("")
		return entries, c.check(err, false)
	}
	// Without MLSD, vsftpd (force_dot_files=NO, its default) and others
	// hide dotfiles from LIST unless asked with -a. A server that does not
	// know -a may refuse it, or take it for a file name and list nothing:
	// an empty or refused LIST -a is checked with a plain LIST (which
	// costs a round trip only for empty directories, since LIST -a shows
	// "." and "..").
	entries, err := c.sc.List("-a")
	if err == nil && len(entries) > 0 {
		return entries, nil
	}
	if err != nil && !cleanReply(err) {
		return nil, c.check(err, false)
	}
	plainEntries, perr := c.sc.List("")
	if perr != nil {
		return nil, c.check(perr, false)
	}
	if err != nil || len(plainEntries) > 0 {
		r.log.Warn("ftp: the server does not understand LIST -a; files whose names start with a dot may be missing from listings",
			"location", r.loc, "err", err)
		r.mu.Lock()
		r.listPlain = true
		r.mu.Unlock()
	}
	return plainEntries, nil
}

// skipEntry reports whether a directory entry is not an object.
func skipEntry(base string) bool {
	switch {
	case base == "" || base == "." || base == ".." || strings.Contains(base, "/"):
		// "." and ".." come with MLSD on pure-ftpd and proftpd; a name
		// with a slash would be a server's cdir entry with a full path.
		return true
	case relay.IsTempName(base):
		return true
	case strings.HasPrefix(base, ".pureftpd-upload."):
		// pure-ftpd writes uploads to such a file first.
		return true
	case strings.HasPrefix(base, ".in.") && strings.HasSuffix(base, ".") && relay.IsTempName(base[len(".in."):]):
		// proftpd with HiddenStores stores an upload of NAME as
		// ".in.NAME." until it is complete; all uploads here go to
		// temporary names, so only those are staging files.
		return true
	}
	return false
}

// Get calls fn with a reader over length bytes of the object from offset
// (length < 0: to the end). It asks for the size first (SIZE), so that a
// missing object gives fs.ErrNotExist without calling fn and a range at or
// past the end gives an empty reader, then downloads with REST + RETR. A
// download that ends before the expected size is an error, not a short
// read. When fn stops reading early, the rest of the download is read and
// dropped if it is short (at most drainMax), and the connection is closed
// otherwise.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	if offset < 0 {
		return relay.WrapOp("get", name, fmt.Errorf("negative offset %d: %w", offset, fs.ErrInvalid))
	}
	return r.do(ctx, "get", name, func(c *conn) error {
		p := r.abs(name)
		size, err := c.sc.FileSize(p)
		if err := c.check(err, false); err != nil {
			return err
		}
		want := max(size-offset, 0)
		if length >= 0 {
			want = min(want, length)
		}
		if want == 0 {
			if err := fn(bytes.NewReader(nil)); err != nil {
				return &callerError{err}
			}
			return nil
		}
		resp, err := c.sc.RetrFrom(p, uint64(offset))
		if err := c.check(err, false); err != nil {
			return err
		}
		rd := &getReader{ctx: ctx, c: c, name: name, resp: resp, left: want, want: want}
		ferr := fn(rd)
		if ferr == nil && rd.err != nil {
			// fn swallowed a failed read; the data it got is incomplete.
			ferr = rd.err
		}
		cerr := r.endDownload(c, resp, rd, size-offset-(want-rd.left))
		if ferr != nil {
			return &callerError{ferr}
		}
		return cerr
	})
}

// endDownload ends a download that has rest bytes left on the server. It
// reads them if they are few and waits for the server's closing reply, so
// that the connection can be reused; otherwise it marks the connection
// broken so that it is closed without waiting.
func (r *Relay) endDownload(c *conn, resp *ftp.Response, rd *getReader, rest int64) error {
	if rd.err != nil || rest > drainMax {
		c.taint()
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp, rest+1))
	if err != nil || n != rest {
		// A network error, or the object grew: not at the end.
		c.taint()
		return nil
	}
	return c.check(resp.Close(), false)
}

// getReader is the reader that Get hands to fn.
type getReader struct {
	ctx        context.Context
	c          *conn
	name       string
	resp       *ftp.Response
	left, want int64
	err        error // the first read error, sticky
}

func (g *getReader) Read(b []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > g.left {
		b = b[:g.left]
	}
	n, err := g.resp.Read(b)
	g.left -= int64(n)
	switch {
	case err == nil:
	case err == io.EOF && g.left == 0:
		err = nil
	case err == io.EOF:
		err = relay.Transient(fmt.Errorf("download ended after %d of %d bytes: %w", g.want-g.left, g.want, io.ErrUnexpectedEOF))
	default:
		err = ctxErr(g.ctx, translate(err, false))
	}
	if err != nil {
		g.err = relay.WrapOp("get", g.name, err)
		g.c.taint()
		return n, g.err
	}
	return n, nil
}

// Put stores the payload under a temporary name in the target's directory
// (STOR), then renames it onto name (RNFR/RNTO); a new object
// (relay.NewObjects) is stored in place. Missing parent directories
// are created (MKD) when the server refuses the upload. On failure or
// cancellation the temporary object is deleted over a new connection, since
// the one that failed may be unusable.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("put", name, err)
	}
	tmp := relay.PutTarget(ctx, name) // name itself for a new object: no rename
	stored := false
	err := r.doWith(ctx, "put", name, (*conn).abortTransfer, func(c *conn) error {
		refused, err := r.stor(ctx, c, tmp, p)
		if refused && mayLackParents(err) && strings.Contains(name, "/") {
			// The likely cause is a missing parent directory. Creating
			// directories first on every put would cost a round trip
			// per level.
			if merr := r.mkdirs(c, name); merr != nil {
				return merr
			}
			if rerr := p.Rewind(); rerr != nil {
				return fmt.Errorf("rewinding the payload: %w", rerr)
			}
			refused, err = r.stor(ctx, c, tmp, p)
		}
		if err != nil {
			// An upload that failed once started may have left a
			// partial file, e.g. after "452 quota exceeded".
			stored = !refused
			return err
		}
		stored = true
		if tmp == name {
			return nil
		}
		return r.rename(c, tmp, name)
	})
	if err != nil && stored {
		r.removeTemp(tmp)
	}
	return err
}

// stor uploads p to name. refused reports that the server turned the upload
// down before any data went, so that nothing was created.
func (r *Relay) stor(ctx context.Context, c *conn, name string, p relay.Payload) (refused bool, err error) {
	src := &payloadReader{ctx: ctx, r: relay.CheckedReader(p)}
	err = c.sc.Stor(r.abs(name), src)
	switch {
	case src.err != nil:
		// The payload failed (or ctx ended); the server has
		// nevertheless closed the file, which removeTemp deletes.
		c.taint()
		return false, ctxErr(ctx, fmt.Errorf("reading the payload: %w", src.err))
	case err == nil:
		return false, nil
	}
	return cleanReply(err), ctxErr(ctx, c.check(err, true))
}

// payloadReader stops an upload once ctx is done and remembers the
// payload's error, which jlaffaye/ftp would join with others.
type payloadReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

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

// mayLackParents reports whether a STOR or RNTO refusal may come from a
// missing parent directory. Servers differ: proftpd answers 550, vsftpd
// 553, pure-ftpd 553 to STOR and 451 to RNTO.
func mayLackParents(err error) bool {
	code := replyCode(err)
	return code >= 450 && !errors.Is(err, relay.ErrQuota) && !errors.Is(err, relay.ErrAuth)
}

// mkdirs creates the parent directories of name. A failed MKD is ignored:
// the directory may exist (or be created by a concurrent put), and the
// command that needs it reports a real problem.
func (r *Relay) mkdirs(c *conn, name string) error {
	for _, d := range relay.Parents(name) {
		if err := c.check(c.sc.MakeDir(r.abs(d)), true); err != nil && !isReply(err) {
			return err
		}
	}
	return nil
}

// removeTemp deletes the temporary object of a failed put, with a fresh
// connection and a context of its own: the put's context may be cancelled
// and its connection closed.
func (r *Relay) removeTemp(tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(r.timeout, 30*time.Second))
	defer cancel()
	err := r.do(ctx, "delete", tmp, func(c *conn) error {
		err := c.check(c.sc.Delete(r.abs(tmp)), true)
		if replyCode(err) == 550 {
			return nil // never created, or the server removed it itself
		}
		return err
	})
	if err != nil {
		r.log.Warn("ftp: could not remove the temporary object of a failed put", "name", tmp, "err", err)
	}
}

// Delete removes an object (DELE). The 550 that servers give for a missing
// object is success, after a Stat tells that it is indeed missing rather
// than protected.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	return r.do(ctx, "delete", name, func(c *conn) error {
		err := c.check(c.sc.Delete(r.abs(name)), true)
		if replyCode(err) != 550 {
			return err
		}
		if _, serr := r.stat(c, name); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}

// Rename moves an object (RNFR/RNTO), replacing an object at to and
// creating to's parent directories when the server refuses the move.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	if err := relay.ValidName(from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", to, err)
	}
	return r.do(ctx, "rename", from, func(c *conn) error {
		err := r.rename(c, from, to)
		if mayLackParents(err) && !errors.Is(err, fs.ErrNotExist) && strings.Contains(to, "/") {
			if merr := r.mkdirs(c, to); merr != nil {
				return merr
			}
			err = r.rename(c, from, to)
		}
		return err
	})
}

func (r *Relay) rename(c *conn, from, to string) error {
	err := c.sc.Rename(r.abs(from), r.abs(to))
	if err == nil || !cleanReply(err) {
		return c.check(err, true)
	}
	// jlaffaye/ftp sends RNFR and RNTO in one call, and servers answer
	// 550 to both a missing source and a refused target: ask which.
	if _, serr := r.stat(c, from); serr != nil {
		return serr
	}
	return c.check(err, true)
}
