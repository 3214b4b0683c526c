package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xwebdav "golang.org/x/net/webdav"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// fakeServer is golang.org/x/net/webdav in-process, behind Basic auth, with
// a hook that lets a test answer some requests itself. x/net/webdav writes
// PUT bodies in place and replaces a MOVE target only with "Overwrite: T",
// so it checks what Apache and nginx hide.
type fakeServer struct {
	*httptest.Server
	dir string
	// hook, if set, may answer a request itself and return true.
	hook atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func startFake(t testing.TB) *fakeServer {
	t.Helper()
	f := &fakeServer{dir: t.TempDir()}
	h := &xwebdav.Handler{Prefix: "/dav", FileSystem: xwebdav.Dir(f.dir), LockSystem: xwebdav.NewMemLS()}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != testserver.User || p != testserver.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="dav"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if hook := f.hook.Load(); hook != nil && (*hook)(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) setHook(fn func(w http.ResponseWriter, r *http.Request) bool) {
	if fn == nil {
		f.hook.Store(nil)
		return
	}
	f.hook.Store(&fn)
}

// open opens a relay on the fake server's /dav/<sub>.
func (f *fakeServer) open(t testing.TB, sub string, opts relay.Options) relay.Relay {
	t.Helper()
	u, _ := url.Parse(f.URL + "/dav/" + sub)
	u.Scheme = "webdav"
	u.User = url.UserPassword(testserver.User, testserver.Password)
	r, err := Open(ctxT(t), u, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestXNetWebDAV(t *testing.T) {
	f := startFake(t)
	n := 0
	relaytest.Run(t, relaytest.Config{
		Secret: testserver.Password,
		New: func(t *testing.T) relaytest.Fixture {
			n++
			sub := fmt.Sprintf("r%d", n)
			r := f.open(t, sub, relay.Options{})
			return relaytest.Fixture{Relay: r, Raw: func(tb testing.TB) []string { return testserver.ListFiles(tb, f.dir+"/"+sub) }}
		},
	})
}

func TestUnreachable(t *testing.T) {
	port := testserver.FreePort(t) // free, so closed
	u, _ := url.Parse(fmt.Sprintf("webdav://%s@127.0.0.1:%d/dav", testserver.User, port))
	_, err := Open(ctxT(t), u, relay.Options{Password: testserver.Password})
	checkErr(t, "open on a closed port", err, relay.ErrUnreachable, fmt.Sprint(port))
	if relay.IsPermanent(err) {
		t.Errorf("unreachable host is permanent: %v", err)
	}
}

func TestMalformedURL(t *testing.T) {
	for _, tc := range []struct {
		url     *url.URL
		mention string
	}{
		{&url.URL{Scheme: "webdav", Path: "/dav"}, "no host"},
		{&url.URL{Scheme: "webdav", Opaque: "host/dav"}, "no host"},
		{&url.URL{Scheme: "webdav", Host: "127.0.0.1:0", Path: "/dav"}, "port"},
		{&url.URL{Scheme: "webdav", Host: "127.0.0.1:99999", Path: "/dav"}, "port"},
		{&url.URL{Scheme: "webdav", Host: "127.0.0.1:80", Path: "/dav", RawQuery: "x=1"}, "query"},
		{&url.URL{Scheme: "ftp", Host: "127.0.0.1", Path: "/dav"}, "not a WebDAV scheme"},
	} {
		_, err := Open(ctxT(t), tc.url, relay.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("open %q: %v; want an error mentioning %q", tc.url, err, tc.mention)
		}
	}
	// What relay.ParseURL makes of a bad port never reaches Open.
	if _, err := relay.ParseURL("webdav://user:" + testserver.Password + "@host:port/x"); err == nil || strings.Contains(err.Error(), testserver.Password) {
		t.Errorf("ParseURL of a bad port: %v", err)
	}
	b := Backend()
	if len(b.Schemes) != 4 || b.Open == nil || !strings.Contains(b.Usage, "webdav") {
		t.Errorf("backend %+v", b)
	}
}

// TestStatusTranslation checks the sentinel each server answer maps to.
func TestStatusTranslation(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "st", relay.Options{})
	ctx := ctxT(t)
	relaytest.MustPut(t, r, "obj", []byte("data"))
	for _, tc := range []struct {
		method    string
		code      int
		want      error
		permanent bool
	}{
		{"PUT", http.StatusInsufficientStorage, relay.ErrQuota, true},
		{"PUT", http.StatusRequestEntityTooLarge, relay.ErrQuota, true},
		{"PUT", http.StatusForbidden, fs.ErrPermission, true},
		{"PUT", http.StatusServiceUnavailable, nil, false},
		{"PUT", http.StatusTooManyRequests, nil, false},
		{"MOVE", http.StatusPreconditionFailed, fs.ErrExist, true},
		{"MOVE", http.StatusInsufficientStorage, relay.ErrQuota, true},
		{"MOVE", http.StatusBadGateway, nil, false},
		{"PUT", http.StatusUnauthorized, relay.ErrAuth, true},
	} {
		f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != tc.method {
				return false
			}
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(tc.code)
			return true
		})
		err := r.Put(ctx, "obj", relay.BytesPayload([]byte("new data")))
		what := fmt.Sprintf("put with %s answering %d", tc.method, tc.code)
		if err == nil {
			t.Errorf("%s: no error", what)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", what, err, tc.want)
		}
		if relay.IsPermanent(err) != tc.permanent {
			t.Errorf("%s: %v permanent=%v, want %v", what, err, relay.IsPermanent(err), tc.permanent)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(tc.code)) || !strings.Contains(err.Error(), `"obj"`) {
			t.Errorf("%s: %q does not name the status and the object", what, err)
		}
		f.setHook(nil)
		if raw := testserver.ListFiles(t, f.dir+"/st"); len(raw) != 1 || raw[0] != "obj" {
			t.Errorf("%s: storage holds %q, want only obj", what, raw)
		}
		if got := relaytest.MustGet(t, r, "obj"); string(got) != "data" {
			t.Errorf("%s: object now %q", what, got)
		}
	}
	for _, tc := range []struct {
		code int
		want error
	}{
		{http.StatusForbidden, fs.ErrPermission},
		{http.StatusGone, fs.ErrNotExist},
		{http.StatusInternalServerError, nil},
	} {
		f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(tc.code)
			return true
		})
		_, err := r.Stat(ctx, "obj")
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && relay.IsPermanent(err) {
			t.Errorf("stat with %d: %v, want %v", tc.code, err, tc.want)
		}
		err = r.Get(ctx, "obj", 0, -1, func(io.Reader) error { t.Errorf("get with %d called fn", tc.code); return nil })
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("get with %d: %v, want %v", tc.code, err, tc.want)
		}
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, "https://elsewhere.example/dav/", http.StatusMovedPermanently)
		return true
	})
	_, err := r.Stat(ctx, "obj")
	if err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Errorf("stat redirected: %v", err)
	}
	u, _ := url.Parse(f.URL + "/dav/st")
	u.Scheme = "webdav"
	u.User = url.UserPassword(testserver.User, testserver.Password)
	_, err = Open(ctx, u, relay.Options{})
	if err == nil || !strings.Contains(err.Error(), "redirects to https://elsewhere.example/dav/") || strings.Contains(err.Error(), testserver.Password) {
		t.Errorf("open redirected: %v", err)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return true
	})
	_, err = Open(ctx, u, relay.Options{})
	checkErr(t, "open on a server without PROPFIND", err, relay.ErrUnsupported, "PROPFIND")
}

// TestRangeIgnored checks ranged reads from a server that answers every
// GET with the whole object, and one that sends the wrong range.
func TestRangeIgnored(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "rg", relay.Options{})
	data := relaytest.RandomBytes(10_000)
	relaytest.MustPut(t, r, "obj", data)
	relaytest.MustPut(t, r, "empty", nil)
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	})
	ctx := ctxT(t)
	for _, c := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {1, 10}, {5000, -1}, {9999, 5}, {10_000, 1}, {20_000, -1}, {3, 0}} {
		got, err := relaytest.ReadAll(ctx, r, "obj", c.off, c.n)
		lo := min(c.off, 10_000)
		hi := int64(10_000)
		if c.n >= 0 {
			hi = min(hi, c.off+c.n)
		}
		if err != nil || string(got) != string(data[lo:hi]) {
			t.Errorf("range %d+%d from a server ignoring Range: %d bytes, %v; want %d bytes", c.off, c.n, len(got), err, hi-lo)
		}
	}
	if got, err := relaytest.ReadAll(ctx, r, "empty", 3, 2); err != nil || len(got) != 0 {
		t.Errorf("range of an empty object: %d bytes, %v", len(got), err)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "GET" {
			return false
		}
		w.Header().Set("Content-Range", "bytes 0-9/10000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[:10])
		return true
	})
	called := false
	err := r.Get(ctx, "obj", 100, 10, func(io.Reader) error { called = true; return nil })
	if err == nil || called || !strings.Contains(err.Error(), "Content-Range") {
		t.Errorf("get answered with the wrong range: %v (fn called: %v)", err, called)
	}
}

// zeroPayload is a large payload that exists nowhere in memory.
type zeroPayload struct{ size, off int64 }

func (p *zeroPayload) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-p.off))
	clear(b[:n])
	p.off += int64(n)
	return n, nil
}
func (p *zeroPayload) Length() int64 { return p.size }
func (p *zeroPayload) Rewind() error { p.off = 0; return nil }

// TestStreamsPut checks that a Put streams its payload instead of buffering
// it (gowebdav's WriteStream would hold it all in memory).
func TestStreamsPut(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "big", relay.Options{})
	var got atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "PUT" {
			return false
		}
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		w.WriteHeader(http.StatusCreated)
		return true
	})
	const size = 256 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The MOVE fails (no temporary object was stored), which is fine here.
	r.Put(ctxT(t), "huge", &zeroPayload{size: size})
	runtime.ReadMemStats(&after)
	if got.Load() != size {
		t.Fatalf("server received %d bytes, want %d", got.Load(), size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("a %d MiB put allocated %d MiB", size>>20, alloc>>20)
	}
}

// TestCancelInterrupts checks that cancelling a call interrupts a request
// the server does not answer.
func TestCancelInterrupts(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "stall", relay.Options{})
	relaytest.MustPut(t, r, "obj", relaytest.RandomBytes(1<<20))
	release := make(chan struct{})
	defer close(release)
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == "GET":
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
		case r.Method == "PUT" || r.Method == "PROPFIND" && strings.HasSuffix(r.URL.Path, "/obj"):
		default:
			return false
		}
		select { // stall until the client goes away
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	check := func(what string, call func(ctx context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		err := call(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", what, err)
		}
	}
	check("stalled put", func(ctx context.Context) error {
		return r.Put(ctx, "new", &zeroPayload{size: 64 << 20})
	})
	check("stalled get", func(ctx context.Context) error {
		return r.Get(ctx, "obj", 0, -1, func(rd io.Reader) error {
			_, err := io.ReadAll(rd)
			return err
		})
	})
	check("stalled stat", func(ctx context.Context) error {
		_, err := r.Stat(ctx, "obj")
		return err
	})
}

// TestTimeout checks that a server that stops answering fails the call
// after the timeout, as unreachable.
func TestTimeout(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "slow", relay.Options{Timeout: 300 * time.Millisecond})
	relaytest.MustPut(t, r, "obj", relaytest.RandomBytes(100_000))
	release := make(chan struct{})
	defer close(release)
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "GET" {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 100))
			w.(http.Flusher).Flush()
		} else if r.Method != "PROPFIND" {
			return false
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	_, err := r.Stat(ctxT(t), "obj")
	checkErr(t, "stat of a server that does not answer", err, relay.ErrUnreachable)
	if relay.IsPermanent(err) {
		t.Errorf("timeout is permanent: %v", err)
	}
	err = r.Get(ctxT(t), "obj", 0, -1, func(rd io.Reader) error {
		_, err := io.ReadAll(rd)
		return err
	})
	checkErr(t, "get that stalls midway", err, relay.ErrUnreachable)
}

// TestHostileListing checks that a listing keeps to the listed collection
// and to valid names, whatever the server sends.
func TestHostileListing(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "h", relay.Options{})
	entry := func(href string, dir bool, size int) string {
		rt := ""
		if dir {
			rt = "<D:collection/>"
		}
		return fmt.Sprintf(`<D:response><D:href>%s</D:href><D:propstat><D:prop><D:resourcetype>%s</D:resourcetype>
<D:getcontentlength>%d</D:getcontentlength><D:getlastmodified>Mon, 02 Jan 2006 15:04:05 GMT</D:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`, href, rt, size)
	}
	body := `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">` +
		entry("/dav/h/", true, 0) +
		entry("/dav/h/good", false, 5) +
		entry("http://127.0.0.1:1/dav/h/abs%20url", false, 6) +
		entry("/dav/h/_.dotted", false, 7) +
		entry("/dav/h/.escalefs-tmp.0123", false, 8) +
		entry("/dav/h/.htaccess", false, 9) +
		entry("/dav/h/..", false, 10) +
		entry("/dav/h/back%5Cslash", false, 11) +
		entry("/dav/h/a%2Fb", false, 12) +
		entry("/dav/other/x", false, 13) +
		entry("/dav/h/deep/er/x", false, 14) +
		`<D:response><D:href>/dav/h/gone</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>` +
		`</D:multistatus>`
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "PROPFIND" || r.URL.Path != "/dav/h/" || r.Header.Get("Depth") != "1" {
			return false
		}
		w.WriteHeader(http.StatusMultiStatus)
		io.WriteString(w, body)
		return true
	})
	infos := map[string]int64{}
	err := r.List(ctxT(t), "", func(oi relay.ObjectInfo) error {
		infos[oi.Name] = oi.Size
		if oi.ModTime.Year() != 2006 {
			t.Errorf("%s: mtime %v", oi.Name, oi.ModTime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"good": 5, "abs url": 6, ".dotted": 7}
	if fmt.Sprint(infos) != fmt.Sprint(want) {
		t.Errorf("list = %v, want %v", infos, want)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "PROPFIND" {
			return false
		}
		w.WriteHeader(http.StatusMultiStatus)
		io.WriteString(w, `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/h/</D:hr`)
		return true
	})
	err = r.List(ctxT(t), "", func(relay.ObjectInfo) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "XML") || relay.IsPermanent(err) {
		t.Errorf("list with broken XML: %v", err)
	}
}

// TestDeleteDirectory checks that a Delete of a directory's name keeps
// its contents on a server that ignores "Depth: 0" on DELETE.
func TestDeleteDirectory(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "deldir", relay.Options{})
	relaytest.MustPut(t, r, "d/inner", []byte("x"))
	if err := r.Delete(ctxT(t), "d"); err != nil {
		t.Errorf("delete of a directory name: %v", err)
	}
	if got := relaytest.ListNames(t, r, ""); !slices.Equal(got, []string{"d/inner"}) {
		t.Errorf("after deleting the directory name: %q", got)
	}
}

// TestDotNames checks how names with leading dots are stored: with a "_"
// in front, so that servers hiding dot files still list them.
func TestDotNames(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "dots", relay.Options{})
	names := []string{".a", "_.b", "__.c", "_d", "e.", "._", ".f/.g", "_/x"}
	for _, n := range names {
		relaytest.MustPut(t, r, n, []byte(n))
	}
	raw := testserver.ListFiles(t, f.dir+"/dots")
	want := []string{"_.a", "__.b", "___.c", "_d", "e.", "_._", "_.f/_.g", "_/x"}
	if fmt.Sprint(sortedCopy(raw)) != fmt.Sprint(sortedCopy(want)) {
		t.Errorf("stored %q, want %q", sortedCopy(raw), sortedCopy(want))
	}
	if got := relaytest.ListNames(t, r, ""); fmt.Sprint(got) != fmt.Sprint(sortedCopy(names)) {
		t.Errorf("listed %q, want %q", got, sortedCopy(names))
	}
	for _, n := range names {
		if got := relaytest.MustGet(t, r, n); string(got) != n {
			t.Errorf("%q holds %q", n, got)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestMkcolLocked: a MKCOL answered 423 Locked (the server holds the
// collection for another client's MKCOL of it) is sent again, and the Put
// goes through.
func TestMkcolLocked(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "locked", relay.Options{})
	var locked atomic.Int32
	f.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == "MKCOL" && strings.HasSuffix(strings.TrimSuffix(req.URL.Path, "/"), "/dir") && locked.Add(1) <= 2 {
			w.WriteHeader(http.StatusLocked)
			return true
		}
		return false
	})
	if err := r.Put(ctxT(t), "dir/obj", relay.BytesPayload([]byte("x"))); err != nil {
		t.Fatalf("put after two 423 answers: %v", err)
	}
	if n := locked.Load(); n < 3 {
		t.Errorf("%d MKCOLs of dir, want the two locked ones and one more", n)
	}
}

// TestNewObjectOnePut: a new object (relay.NewObjects) costs one PUT, in
// place; any other Put a PUT to a temporary name and a MOVE.
func TestNewObjectOnePut(t *testing.T) {
	f := startFake(t)
	r := f.open(t, "fresh", relay.Options{})
	relaytest.MustPut(t, r, "blobs/first", []byte("makes the collection"))
	var mu sync.Mutex
	var calls []string
	f.setHook(func(_ http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		calls = append(calls, r.Method+" "+path.Base(r.URL.Path))
		mu.Unlock()
		return false
	})
	if err := r.Put(relay.NewObjects(ctxT(t)), "blobs/new", relay.BytesPayload([]byte("a blob"))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(calls, []string{"PUT new"}) {
		t.Errorf("a new object: requests %q, want one PUT of it", calls)
	}
	calls = nil
	mu.Unlock()
	if err := r.Put(ctxT(t), "blobs/other", relay.BytesPayload([]byte("a record"))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "PUT "+relay.TempPrefix) || !strings.HasPrefix(calls[1], "MOVE "+relay.TempPrefix) {
		t.Errorf("another object: requests %q, want a PUT of a temporary name and a MOVE", calls)
	}
	mu.Unlock()
	if got := relaytest.MustGet(t, r, "blobs/new"); string(got) != "a blob" {
		t.Errorf("the new object reads %q", got)
	}
}
