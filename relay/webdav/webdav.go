// Package webdav is the relay backend for WebDAV servers: Apache mod_dav,
// nginx with dav_ext, lighttpd, rclone serve webdav, Nextcloud and the like.
//
// The URL path names the relay's root collection, which Open creates if its
// parent exists. Object names map to paths below it, one collection per
// directory, each component percent-encoded except for RFC 3986 unreserved
// characters. A component that starts with a dot is stored with a "_" in
// front (and one that starts with underscores and a dot gets one more),
// because nginx's dav_ext module leaves dot files out of listings.
//
// A Put uploads to a temporary name in the target's collection and then
// MOVEs it over the final name, so readers never see a partial object even
// on servers that write PUT bodies in place (x/net/webdav, rclone). Moves
// never replace a collection that holds objects: with "Overwrite: T" Apache
// would delete it whole.
//
// Requests are built with net/http so that every one of them carries the
// caller's context: gowebdav's client has no context support, buffers
// unseekable upload bodies in memory and cannot tell why a request failed.
// gowebdav still does the Basic and Digest authentication handshake, through
// its Authorizer. Listings parse PROPFIND answers here, taking names from
// hrefs (Apache sends no displayname) and walking one level at a time
// (Apache refuses "Depth: infinity").
package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	"github.com/studio-b12/gowebdav"

	"github.com/escalefs/escalefs/relay"
)

// usage is the URL form shown in help and error messages.
const usage = "webdav[s]://user@host[:port]/path (or http[s]://user@host[:port]/path)"

// maxNameComponent is one less than what the file systems behind nearly
// every WebDAV server accept (ext4, xfs, btrfs, NTFS: 255 bytes or
// characters), since encodeComponent may add a byte. The protocol itself
// has no limit, but a longer name fails on real servers.
const maxNameComponent = 254

// Backend returns the WebDAV backend. webdav:// is served over HTTP and
// webdavs:// over HTTPS; http:// and https:// URLs are accepted as well.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"webdav", "webdavs", "http", "https"},
		Usage:   usage,
		Open:    Open,
	}
}

// davRelay is a relay on a WebDAV collection.
type davRelay struct {
	log     *slog.Logger
	hc      *http.Client
	tr      *http.Transport
	timeout time.Duration

	// auth negotiates Basic or Digest authentication; nil when no
	// credentials were given. gowebdav's authenticators are not safe for
	// concurrent use (the negotiated Digest state is shared without a lock),
	// so every call into them holds authMu.
	auth   gowebdav.Authorizer
	authMu gosync.Mutex
	user   string

	scheme, host string   // of the HTTP requests: "http" or "https", host[:port]
	root         []string // decoded path segments of the root collection

	props relay.Properties

	// dirs holds the collections (relative names, "" for the root) known to
	// exist, so that a Put into a known directory issues no MKCOL.
	dirsMu gosync.Mutex
	dirs   map[string]bool

	// cleanups counts background removals of temporary objects; closing
	// tells them to stop waiting.
	cleanups  gosync.WaitGroup
	closing   chan struct{}
	closeOnce gosync.Once
}

var (
	_ relay.Relay   = (*davRelay)(nil)
	_ relay.Renamer = (*davRelay)(nil)
)

// Open connects to the WebDAV collection at u and checks that it is there,
// creating it with MKCOL when its parent exists. The password comes from u
// or opts (see relay.Options.Credentials); https certificates are checked
// as opts.TLS says. A rejected password gives an error wrapping
// relay.ErrAuth, an unreachable host relay.ErrUnreachable, an untrusted
// certificate relay.ErrTLS, and a missing parent collection fs.ErrNotExist.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	loc := u.Redacted()
	fail := func(err error) (relay.Relay, error) { return nil, relay.WrapOp("connect", loc, err) }

	var scheme string
	switch strings.ToLower(u.Scheme) {
	case "webdav", "http":
		scheme = "http"
	case "webdavs", "https":
		scheme = "https"
	default:
		return fail(fmt.Errorf("%w: scheme %q is not a WebDAV scheme; expected %s", relay.ErrUnsupported, u.Scheme, usage))
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return fail(fmt.Errorf("relay URL has no host; expected %s", usage))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail(fmt.Errorf("relay URL port %q is not a number between 1 and 65535", p))
		}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fail(fmt.Errorf("%w: a WebDAV relay URL takes no query or fragment (%q); expected %s", relay.ErrUnsupported, "?"+u.RawQuery+"#"+u.Fragment, usage))
	}
	root, err := splitEscaped(u.EscapedPath())
	if err != nil {
		return fail(fmt.Errorf("relay URL path %q: %v", u.EscapedPath(), err))
	}
	user, pass, err := opts.Credentials(u, "")
	if err != nil {
		return fail(err)
	}

	r := &davRelay{
		log:     opts.Log().With("relay", loc),
		timeout: opts.ConnTimeout(),
		user:    user,
		scheme:  scheme,
		host:    u.Host,
		root:    root,
		dirs:    map[string]bool{},
		closing: make(chan struct{}),
		props: relay.Properties{
			Scheme:           u.Scheme,
			Location:         loc,
			AtomicPut:        true,
			MaxNameComponent: maxNameComponent,
		},
	}
	if err := r.setupHTTP(u, opts); err != nil {
		return fail(err)
	}
	if user != "" || pass != "" {
		r.auth = gowebdav.NewAutoAuth(user, pass)
		if scheme == "http" && pass != "" {
			r.log.Warn("WebDAV relay over plain HTTP: the password and all data travel unencrypted; use webdavs://")
		}
	}
	if err := r.checkRoot(ctx); err != nil {
		r.Close()
		return fail(err)
	}
	return r, nil
}

// checkRoot makes sure the root collection exists, creating it if needed.
func (r *davRelay) checkRoot(ctx context.Context) error {
	resp, err := r.propfind(ctx, r.collURL(""), "0")
	if err != nil {
		if r.scheme == "http" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			// Apache hangs up on plain HTTP sent to its TLS port.
			return fmt.Errorf("%w (if the server only speaks HTTPS, use webdavs://)", err)
		}
		return err
	}
	defer discard(resp)
	switch resp.StatusCode {
	case http.StatusMultiStatus:
		var first *entry
		err := parseMultistatus(resp.Body, func(e entry) error {
			first = &e
			return errStopParse
		})
		if err != nil && !errors.Is(err, errStopParse) {
			return fmt.Errorf("reading the server's PROPFIND answer for the root collection: %w", err)
		}
		if first == nil {
			return fmt.Errorf("the server's PROPFIND answer for the root collection describes nothing; is this a WebDAV server?")
		}
		if !first.isDir {
			return fmt.Errorf("%w: the relay URL names a file, not a collection (directory)", relay.ErrUnsupported)
		}
	case http.StatusNotFound:
		discard(resp) // frees the connection for the MKCOL
		if err := r.mkcol(ctx, ""); err != nil {
			var he *httpError
			if errors.As(err, &he) && he.code == http.StatusConflict {
				return fmt.Errorf("%w: the parent collection of the relay URL path %q was not found on the server; create it or fix the URL",
					fs.ErrNotExist, "/"+strings.Join(r.root, "/"))
			}
			return fmt.Errorf("creating the root collection: %w", err)
		}
		r.log.Info("created the relay's root collection")
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return fmt.Errorf("%w: the server refused PROPFIND (%s); is WebDAV enabled at this URL?", relay.ErrUnsupported, resp.Status)
	case http.StatusBadRequest:
		// Apache's answer when the URL names a file (it was asked with a
		// trailing slash).
		discard(resp)
		if r.isFile(ctx, "") {
			return fmt.Errorf("%w: the relay URL names a file, not a collection (directory)", relay.ErrUnsupported)
		}
		err := r.statusError("PROPFIND", resp)
		if r.scheme == "http" {
			return fmt.Errorf("%w (if the server only speaks HTTPS, use webdavs://)", err)
		}
		return err
	default:
		return r.statusError("PROPFIND", resp)
	}
	r.markDir("")
	return nil
}

// Properties implements relay.Relay.
func (r *davRelay) Properties() relay.Properties { return r.props }

// Close implements relay.Relay. It waits for the removal of temporary
// objects of failed puts that is still under way.
func (r *davRelay) Close() error {
	r.closeOnce.Do(func() { close(r.closing) })
	r.cleanups.Wait()
	r.tr.CloseIdleConnections()
	return nil
}

// collURL is the URL of the collection dir ("" for the root), with the
// trailing slash that nginx insists on for collections.
func (r *davRelay) collURL(dir string) *url.URL {
	u := r.objectURL(dir)
	u.Path += "/"
	u.RawPath += "/"
	if u.Path == "//" {
		u.Path, u.RawPath = "/", "/"
	}
	return u
}

// objectURL is the URL of the object name ("" for the root collection,
// without a trailing slash).
func (r *davRelay) objectURL(name string) *url.URL {
	segs := append([]string(nil), r.root...)
	if name != "" {
		for _, c := range strings.Split(name, "/") {
			segs = append(segs, encodeComponent(c))
		}
	}
	var dec, esc strings.Builder
	for _, s := range segs {
		dec.WriteString("/")
		dec.WriteString(s)
		esc.WriteString("/")
		esc.WriteString(escapeSegment(s))
	}
	return &url.URL{Scheme: r.scheme, Host: r.host, Path: dec.String(), RawPath: esc.String()}
}

// encodeComponent maps a component of an object name to the name stored
// on the server. nginx's dav_ext module (and other servers) leave files
// whose names start with a dot out of PROPFIND listings, so such a
// component is stored with a "_" in front; to keep the mapping reversible,
// so is any component that starts with underscores and then a dot. The
// temporary objects of puts keep their leading dot: hidden is just right
// for them.
func encodeComponent(c string) string {
	if strings.HasPrefix(c, relay.TempPrefix) {
		return c
	}
	if strings.HasPrefix(strings.TrimLeft(c, "_"), ".") {
		return "_" + c
	}
	return c
}

// decodeComponent reverses encodeComponent. ok is false for a stored name
// starting with a dot, which no object maps to: a temporary object or some
// other program's file.
func decodeComponent(s string) (string, bool) {
	if strings.HasPrefix(s, ".") {
		return "", false
	}
	if strings.HasPrefix(s, "_") && strings.HasPrefix(strings.TrimLeft(s, "_"), ".") {
		return s[1:], true
	}
	return s, true
}

// escapeSegment percent-encodes everything in a path segment but the
// unreserved characters of RFC 3986. Servers differ in which reserved
// characters they accept raw (Apache and nginx treat ';', '#', '?', '%'
// and '+' differently), but every server decodes %XX.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// splitEscaped splits an escaped URL path into decoded segments, dropping
// empty ones, so that an escaped slash (%2F) stays inside its segment.
func splitEscaped(p string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// markDir records that the collection dir exists.
func (r *davRelay) markDir(dir string) {
	r.dirsMu.Lock()
	r.dirs[dir] = true
	r.dirsMu.Unlock()
}

// knownDir reports whether dir is known to exist.
func (r *davRelay) knownDir(dir string) bool {
	r.dirsMu.Lock()
	defer r.dirsMu.Unlock()
	return r.dirs[dir]
}

// forgetTree drops dir and every collection below it from the cache.
func (r *davRelay) forgetTree(dir string) {
	r.dirsMu.Lock()
	defer r.dirsMu.Unlock()
	for d := range r.dirs {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			delete(r.dirs, d)
		}
	}
}

// forgetDirs drops the root and every ancestor of name from the cache,
// after the server said one of them is gone.
func (r *davRelay) forgetDirs(name string) {
	r.dirsMu.Lock()
	defer r.dirsMu.Unlock()
	delete(r.dirs, "")
	for _, d := range relay.Parents(name) {
		delete(r.dirs, d)
	}
}
