package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// cleanupTimeout bounds the removal of a failed Put's temporary object,
// which runs after the caller's context may have ended.
const cleanupTimeout = 10 * time.Second

// lingerDelay is how long a server gets to finish handling an upload whose
// answer was lost before the temporary object is deleted again.
const lingerDelay = time.Second

// Stat implements relay.Relay with a PROPFIND of depth 0. A collection is
// not an object, so statting one yields fs.ErrNotExist.
func (r *davRelay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := relay.ValidName(name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	oi, err := r.stat(ctx, name)
	return oi, finish(ctx, "stat", name, err)
}

func (r *davRelay) stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	resp, err := r.propfind(ctx, r.objectURL(name), "0")
	if err != nil {
		return relay.ObjectInfo{}, err
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return relay.ObjectInfo{}, r.objectStatusError("PROPFIND", resp)
	}
	var found *entry
	err = parseMultistatus(resp.Body, func(e entry) error {
		found = &e
		return errStopParse
	})
	if err != nil && !errors.Is(err, errStopParse) {
		return relay.ObjectInfo{}, relay.Transient(fmt.Errorf("reading the PROPFIND answer: %w", err))
	}
	if found == nil {
		// The server listed the resource without a 200 propstat.
		return relay.ObjectInfo{}, fmt.Errorf("PROPFIND answer describes no properties: %w", fs.ErrNotExist)
	}
	if found.isDir {
		return relay.ObjectInfo{}, fmt.Errorf("is a collection (directory), not an object: %w", fs.ErrNotExist)
	}
	return r.info(name, *found), nil
}

// info converts an entry of an object to an ObjectInfo.
func (r *davRelay) info(name string, e entry) relay.ObjectInfo {
	if e.size < 0 {
		r.log.Debug("server sent no getcontentlength; taking size 0", "name", name)
		e.size = 0
	}
	return relay.ObjectInfo{Name: name, Size: e.size, ModTime: e.modTime}
}

// objectStatusError is statusError for requests on an object's URL. nginx
// redirects a GET of a directory to the URL with a trailing slash; that
// means the name is a collection, so no object.
func (r *davRelay) objectStatusError(method string, resp *http.Response) error {
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && redirectsToSlash(resp) {
		return relay.Permanent(fmt.Errorf("is a collection (directory), not an object (server answered %s to %s): %w",
			resp.Status, method, fs.ErrNotExist))
	}
	return r.statusError(method, resp)
}

// redirectsToSlash reports whether resp redirects to its request's URL
// with a slash appended.
func redirectsToSlash(resp *http.Response) bool {
	if resp.Request == nil {
		return false
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	return err == nil && loc.Host == resp.Request.URL.Host && loc.Path == resp.Request.URL.Path+"/"
}

// listStop carries an error returned by the List callback, which List
// returns as is.
type listStop struct{ err error }

func (e *listStop) Error() string { return e.err.Error() }

// List implements relay.Relay. It walks the tree with PROPFIND of depth 1,
// one collection at a time, since Apache refuses depth infinity. Temporary
// objects of in-progress puts and names that are not valid object names
// (files someone else put on the server) are skipped.
func (r *davRelay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	err := r.list(ctx, dir, fn)
	var stop *listStop
	if errors.As(err, &stop) {
		return stop.err
	}
	return finish(ctx, "list", dir, err)
}

func (r *davRelay) list(ctx context.Context, top string, fn func(relay.ObjectInfo) error) error {
	queue := []string{top}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		subdirs, err := r.listDir(ctx, dir, fn)
		if err != nil {
			return err
		}
		queue = append(queue, subdirs...)
	}
	return nil
}

// listDir lists one collection, calls fn for its objects and returns its
// subcollections. The answer is read completely before fn is called, so
// that fn may use the relay even when it has a single connection.
func (r *davRelay) listDir(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) ([]string, error) {
	u := r.collURL(dir)
	resp, err := r.propfind(ctx, u, "1")
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusMultiStatus:
	case http.StatusNotFound, http.StatusGone:
		// A missing directory lists nothing; a subdirectory may also have
		// been removed since its parent was listed.
		discard(resp)
		return nil, nil
	default:
		// Apache answers 400 to a collection URL (trailing slash) that
		// names a file, nginx 409 or a redirect: an object has nothing
		// under it.
		err := r.statusError("PROPFIND", resp)
		discard(resp)
		if r.isFile(ctx, dir) {
			return nil, nil
		}
		return nil, err
	}
	objects, subdirs, err := r.parseListing(resp.Body, dir, u)
	discard(resp)
	if err != nil {
		return nil, relay.Transient(fmt.Errorf("reading the PROPFIND answer for %q: %w", "/"+dir, err))
	}
	for _, oi := range objects {
		if err := fn(oi); err != nil {
			return nil, &listStop{err}
		}
	}
	return subdirs, nil
}

// parseListing reads the PROPFIND answer for the collection dir at u.
func (r *davRelay) parseListing(body io.Reader, dir string, u *url.URL) (objects []relay.ObjectInfo, subdirs []string, err error) {
	self, _ := splitEscaped(u.EscapedPath())
	var alias []string // the server's own spelling of self, if it differs
	first := true
	err = parseMultistatus(body, func(e entry) error {
		isFirst := first
		first = false
		switch {
		case slices.Equal(e.segs, self):
			if !e.isDir {
				return errStopParse // dir is an object, not a collection
			}
			return nil
		case len(e.segs) == len(self)+1 && slices.Equal(e.segs[:len(self)], self):
		case alias != nil && len(e.segs) == len(alias)+1 && slices.Equal(e.segs[:len(alias)], alias):
		case isFirst && e.isDir:
			// A server behind a proxy that rewrites paths names the
			// collection differently; take its first entry as itself, as
			// every server puts it first.
			r.log.Debug("server names the listed collection differently", "want", "/"+strings.Join(self, "/"), "got", "/"+strings.Join(e.segs, "/"))
			alias = e.segs
			return nil
		default:
			r.log.Warn("skipping a listing entry outside the listed collection", "dir", dir, "href", "/"+strings.Join(e.segs, "/"))
			return nil
		}
		stored := e.segs[len(e.segs)-1]
		base, ok := decodeComponent(stored)
		if !ok {
			// Temporary objects of puts in progress, and dot files that
			// are not ours (Apache's .DAV property store, .htaccess).
			return nil
		}
		name := base
		if dir != "" {
			name = dir + "/" + base
		}
		if err := relay.ValidName(name); err != nil || strings.Contains(base, "/") {
			r.log.Warn("skipping a server entry that is not a valid object name", "dir", dir, "name", stored)
			return nil
		}
		if e.isDir {
			subdirs = append(subdirs, name)
			r.markDir(name)
			return nil
		}
		objects = append(objects, r.info(name, e))
		return nil
	})
	if errors.Is(err, errStopParse) {
		return nil, nil, nil
	}
	return objects, subdirs, err
}

// isFile reports whether name ("" for the root) is a resource that is not
// a collection.
func (r *davRelay) isFile(ctx context.Context, name string) bool {
	resp, err := r.propfind(ctx, r.objectURL(name), "0")
	if err != nil {
		return false
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return false
	}
	file := false
	parseMultistatus(resp.Body, func(e entry) error {
		file = !e.isDir
		return errStopParse
	})
	return file
}

// Get implements relay.Relay with a ranged GET. A server that ignores the
// Range header and answers 200 is handled by skipping and cutting the body
// here; 416 (offset at or past the end) gives an empty reader.
func (r *davRelay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	if offset < 0 {
		return relay.WrapOp("get", name, fmt.Errorf("%w: negative offset %d", fs.ErrInvalid, offset))
	}
	if length == 0 {
		// Nothing to read, but a missing object must still be reported.
		if _, err := r.stat(ctx, name); err != nil {
			return finish(ctx, "get", name, err)
		}
		return fn(strings.NewReader(""))
	}
	rd, closeBody, err := r.get(ctx, name, offset, length)
	if err != nil {
		return finish(ctx, "get", name, err)
	}
	defer closeBody()
	return fn(rd)
}

// get starts the download and returns the reader for fn.
func (r *davRelay) get(ctx context.Context, name string, offset, length int64) (io.Reader, func(), error) {
	hdr := map[string]string{}
	end := int64(-1) // last byte wanted, -1: to the end
	if length > 0 && offset <= (1<<63-1)-length {
		end = offset + length - 1
	}
	switch {
	case end >= 0:
		hdr["Range"] = fmt.Sprintf("bytes=%d-%d", offset, end)
	case offset > 0:
		hdr["Range"] = fmt.Sprintf("bytes=%d-", offset)
	}
	resp, err := r.do(ctx, request{method: "GET", url: r.objectURL(name), header: hdr})
	if err != nil {
		return nil, nil, err
	}
	closeBody := func() { discard(resp) }
	var body io.Reader = resp.Body
	switch resp.StatusCode {
	case http.StatusOK:
		// The server ignored the Range header: skip to offset here.
		if offset > 0 {
			n, err := io.CopyN(io.Discard, resp.Body, offset)
			if err == io.EOF || (err == nil && n < offset) {
				closeBody()
				return strings.NewReader(""), func() {}, nil
			}
			if err != nil {
				closeBody()
				return nil, nil, relay.ClassifyNetError(fmt.Errorf("skipping to offset %d of a full GET answer: %w", offset, err))
			}
		}
	case http.StatusPartialContent:
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			closeBody()
			return nil, nil, fmt.Errorf("server answered a GET of bytes %d- with Content-Range %q", offset, resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		closeBody()
		return strings.NewReader(""), func() {}, nil
	default:
		closeBody()
		return nil, nil, r.objectStatusError("GET", resp)
	}
	if length > 0 {
		body = io.LimitReader(body, length)
	}
	return &bodyReader{r: body}, closeBody, nil
}

// contentRangeStart parses the first byte of "bytes FIRST-LAST/SIZE".
func contentRangeStart(cr string) (int64, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(cr), "bytes ")
	if !ok {
		return 0, fmt.Errorf("not a byte range")
	}
	first, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, fmt.Errorf("no range")
	}
	return strconv.ParseInt(strings.TrimSpace(first), 10, 64)
}

// bodyReader classifies the network errors of a response body.
type bodyReader struct{ r io.Reader }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = relay.ClassifyNetError(fmt.Errorf("reading the GET answer: %w", err))
	}
	return n, err
}

// Put implements relay.Relay: PUT to a temporary name in the target's
// collection, then MOVE over the target; a new object (relay.NewObjects)
// is PUT in place. A failed or cancelled Put removes the object it wrote. Parent collections are created with MKCOL first
// (Apache answers 409 to a PUT into a missing collection), once per
// collection thanks to a cache that a 409 invalidates.
func (r *davRelay) Put(ctx context.Context, name string, p relay.Payload) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("put", name, err)
	}
	return finish(ctx, "put", name, r.put(ctx, name, p))
}

func (r *davRelay) put(ctx context.Context, name string, p relay.Payload) error {
	if err := r.ensureParents(ctx, name); err != nil {
		return err
	}
	up := &upload{p: p}
	tmp := relay.PutTarget(ctx, name) // name itself for a new object: one PUT
	err := r.upload(ctx, tmp, up)
	if statusCode(err) == http.StatusConflict {
		// A parent collection was removed behind the cache's back.
		r.forgetDirs(name)
		if err = r.ensureParents(ctx, name); err == nil {
			err = r.upload(ctx, tmp, up)
		}
	}
	if err == nil && tmp != name {
		err = r.moveIntoPlace(ctx, tmp, name)
	}
	if err != nil {
		r.removeTemp(ctx, tmp, statusCode(err) == 0)
	}
	return err
}

// upload is the state of one Put's payload across the requests that send
// it.
type upload struct {
	p       relay.Payload
	started bool // the payload has been read from: rewind before reuse
}

// body returns a reader over the payload for one request. It checks the
// payload's length and stops at once when ctx ends, so that a cancelled
// upload can never complete on the server: the transport would otherwise
// keep sending the rest of the body until it notices the cancellation.
func (up *upload) body(ctx context.Context) (io.Reader, int64, error) {
	if up.started {
		if err := up.p.Rewind(); err != nil {
			return nil, 0, relay.Permanent(fmt.Errorf("rewinding the payload to send it again: %w", err))
		}
	}
	up.started = true
	n := up.p.Length()
	rd := &ctxReader{ctx: ctx, r: relay.CheckedReader(up.p)}
	if n == 0 {
		// Make sure an empty payload really is empty.
		if _, err := rd.Read(make([]byte, 1)); err != io.EOF {
			if err == nil {
				err = relay.Permanent(fmt.Errorf("payload is longer than its declared length 0"))
			}
			return nil, 0, err
		}
	}
	return rd, n, nil
}

// ctxReader fails reads once ctx has ended.
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

// upload PUTs the payload with its length, streaming it: gowebdav's
// WriteStream would buffer an unseekable payload in memory.
func (r *davRelay) upload(ctx context.Context, name string, up *upload) error {
	resp, err := r.do(ctx, request{
		method: "PUT",
		url:    r.objectURL(name),
		header: map[string]string{"Content-Type": "application/octet-stream"},
		body:   func(int) (io.Reader, int64, error) { return up.body(ctx) },
	})
	if err != nil {
		return err
	}
	defer discard(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	}
	return r.statusError("PUT", resp)
}

// moveIntoPlace moves from onto to, replacing an object there but never a
// collection that holds objects. A MOVE with "Overwrite: T" onto a
// collection deletes the whole collection first (RFC 4918 9.9.3; Apache
// does so, nginx refuses with 409), so the first MOVE says "Overwrite: F".
// Only when the server answers that something is in the way (412, or 409
// from nginx) is that something looked at: an object is replaced with a
// second MOVE, a leftover collection with no objects in it is removed
// first (Delete leaves empty collections behind), and a collection with
// objects is an error wrapping fs.ErrExist.
func (r *davRelay) moveIntoPlace(ctx context.Context, from, to string) error {
	err := r.move(ctx, from, to, false)
	code := statusCode(err)
	if code != http.StatusPreconditionFailed && code != http.StatusConflict {
		return err
	}
	if r.isCollection(ctx, to) {
		if err := r.removeEmptyCollection(ctx, to); err != nil {
			return err
		}
	} else if code == http.StatusConflict {
		return err
	}
	return r.move(ctx, from, to, true)
}

// move sends a MOVE. "Overwrite" is always explicit: x/net/webdav (and so
// rclone) takes a missing header as F, unlike the RFC.
func (r *davRelay) move(ctx context.Context, from, to string, overwrite bool) error {
	ow := "F"
	if overwrite {
		ow = "T"
	}
	resp, err := r.do(ctx, request{
		method: "MOVE",
		url:    r.objectURL(from),
		header: map[string]string{"Destination": r.objectURL(to).String(), "Overwrite": ow},
	})
	if err != nil {
		return err
	}
	defer discard(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent, http.StatusOK: // lighttpd: 200
		return nil
	case http.StatusMultiStatus:
		// Partial failure, which a single object should not have.
		return relay.Transient(fmt.Errorf("MOVE to %q failed on the server (207 Multi-Status)", to))
	}
	return r.statusError("MOVE", resp)
}

// removeEmptyCollection deletes the collection name if no object lies
// anywhere below it, and fails with fs.ErrExist otherwise.
func (r *davRelay) removeEmptyCollection(ctx context.Context, name string) error {
	errFound := errors.New("found an object")
	err := r.list(ctx, name, func(relay.ObjectInfo) error { return &listStop{errFound} })
	var stop *listStop
	if errors.As(err, &stop) {
		return relay.Permanent(fmt.Errorf("%w: a collection (directory) holding objects is in the way", fs.ErrExist))
	}
	if err != nil {
		return err
	}
	resp, err := r.do(ctx, request{method: "DELETE", url: r.collURL(name)})
	if err != nil {
		return err
	}
	defer discard(resp)
	r.forgetTree(name)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		r.log.Debug("removed an empty collection in the way of an object", "name", name)
		return nil
	}
	return fmt.Errorf("removing the empty collection in the way: %w", r.statusError("DELETE", resp))
}

// removeTemp deletes the temporary object of a failed Put. It runs with a
// fresh context, since the caller's may have ended, and in the background
// when it has: a cancelled Put returns at once, even if the server has
// stopped answering. When the outcome of the upload is unknown (no answer
// came back), the server may still be storing it and a DELETE that arrives
// first finds nothing, so it is repeated a little later, in the background.
// Close waits for these.
func (r *davRelay) removeTemp(ctx context.Context, tmp string, uncertain bool) {
	bg := context.WithoutCancel(ctx)
	remove := func(delay time.Duration) {
		ctx, cancel := context.WithTimeout(bg, delay+min(cleanupTimeout, r.timeout))
		defer cancel()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.closing: // Close is waiting: delete now
			}
		}
		if err := r.delete(ctx, tmp); err != nil {
			r.log.Warn("could not remove the temporary object of a failed put", "name", tmp, "err", err)
		}
	}
	background := func(delay time.Duration) {
		r.cleanups.Add(1)
		go func() {
			defer r.cleanups.Done()
			remove(delay)
		}()
	}
	if ctx.Err() != nil {
		background(0)
	} else {
		remove(0)
	}
	if uncertain {
		background(lingerDelay)
	}
}

// Delete implements relay.Relay. A missing object is no error. A Delete of
// a name that happens to be a directory must not remove the whole subtree,
// which a WebDAV DELETE of a collection does. So the request carries
// "Depth: 0", which Apache and nginx refuse for a collection; servers
// built on x/net/webdav (rclone) ignore it, so a name known to be a
// collection is also checked first.
func (r *davRelay) Delete(ctx context.Context, name string) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	if r.knownDir(name) && r.isCollection(ctx, name) {
		return nil
	}
	return finish(ctx, "delete", name, r.delete(ctx, name))
}

func (r *davRelay) delete(ctx context.Context, name string) error {
	resp, err := r.do(ctx, request{method: "DELETE", url: r.objectURL(name), header: map[string]string{"Depth": "0"}})
	if err != nil {
		return err
	}
	defer discard(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusAccepted, http.StatusNotFound, http.StatusGone:
		return nil
	case http.StatusBadRequest, http.StatusConflict:
		// Apache: 400 "Depth must be infinity" for a collection; nginx: 409
		// for a collection URL without its slash. No object by that name.
		err := r.statusError("DELETE", resp)
		discard(resp)
		if _, serr := r.stat(ctx, name); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return r.statusError("DELETE", resp)
}

// Rename implements relay.Renamer with MOVE, creating the target's parent
// collections first: Apache answers 500, not 409, to a MOVE into a missing
// collection. The source is checked to be an object, since Apache would
// move a whole collection.
func (r *davRelay) Rename(ctx context.Context, from, to string) error {
	if err := relay.ValidName(from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", to, err)
	}
	return finish(ctx, "rename", from, r.rename(ctx, from, to))
}

func (r *davRelay) rename(ctx context.Context, from, to string) error {
	if _, err := r.stat(ctx, from); err != nil {
		return err
	}
	if err := r.ensureParents(ctx, to); err != nil {
		return err
	}
	err := r.moveIntoPlace(ctx, from, to)
	if c := statusCode(err); c == http.StatusConflict || c == http.StatusInternalServerError {
		// Perhaps a cached parent collection was removed meanwhile.
		r.forgetDirs(to)
		if err = r.ensureParents(ctx, to); err == nil {
			err = r.moveIntoPlace(ctx, from, to)
		}
	}
	if err != nil && statusCode(err) == http.StatusNotFound {
		return fmt.Errorf("source vanished: %w", err)
	}
	if err != nil {
		return fmt.Errorf("to %q: %w", to, err)
	}
	return nil
}

// ensureParents creates the collections above name that are not known to
// exist, top down, including the root collection. A 409 (a parent is
// missing after all) empties the cache for name and starts over once.
func (r *davRelay) ensureParents(ctx context.Context, name string) error {
	dirs := append([]string{""}, relay.Parents(name)...)
	for try := 0; ; try++ {
		// Everything above the deepest known collection exists too.
		i := len(dirs)
		for i > 0 && !r.knownDir(dirs[i-1]) {
			i--
		}
		var err error
		for _, d := range dirs[i:] {
			if err = r.mkcol(ctx, d); err != nil {
				err = fmt.Errorf("creating collection %q: %w", "/"+d, err)
				break
			}
		}
		if err == nil || statusCode(err) != http.StatusConflict || try > 0 || i == 0 {
			return err
		}
		r.forgetDirs(name)
	}
}

// mkcolLockedTries bounds how often a MKCOL answered 423 Locked is sent
// again: the server locks a collection while another request creates it.
const mkcolLockedTries = 8

// mkcol creates the collection dir. An existing one is fine: 405 is what
// Apache and nginx answer then.
func (r *davRelay) mkcol(ctx context.Context, dir string) error {
	resp, err := r.do(ctx, request{method: "MKCOL", url: r.collURL(dir)})
	// A server that locks the collection while another client's MKCOL of
	// it runs (golang.org/x/net/webdav) answers 423 to this one: wait for
	// that one to finish, then ask again.
	wait := 10 * time.Millisecond
	for try := 1; err == nil && resp.StatusCode == http.StatusLocked && try < mkcolLockedTries; try++ {
		discard(resp)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
		resp, err = r.do(ctx, request{method: "MKCOL", url: r.collURL(dir)})
	}
	if err != nil {
		return err
	}
	defer discard(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent, http.StatusMethodNotAllowed:
		r.markDir(dir)
		return nil
	case http.StatusUnauthorized, http.StatusInsufficientStorage, http.StatusConflict:
	default:
		// Apache answers 403 to the loser of two concurrent MKCOLs of one
		// collection: fine if the collection is there now.
		err := r.statusError("MKCOL", resp)
		discard(resp)
		if r.isCollection(ctx, dir) {
			r.markDir(dir)
			return nil
		}
		return err
	}
	return r.statusError("MKCOL", resp)
}

// isCollection reports whether the collection dir exists.
func (r *davRelay) isCollection(ctx context.Context, dir string) bool {
	resp, err := r.propfind(ctx, r.collURL(dir), "0")
	if err != nil {
		return false
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return false
	}
	coll := false
	parseMultistatus(resp.Body, func(e entry) error {
		coll = e.isDir
		return errStopParse
	})
	return coll
}
