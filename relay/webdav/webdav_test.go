package webdav

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// davURL turns the server's http(s) URL into a webdav(s) URL for the user,
// with the password in it when withPassword is set.
func davURL(t testing.TB, raw string, withPassword bool) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = map[string]string{"http": "webdav", "https": "webdavs"}[u.Scheme]
	if withPassword {
		u.User = url.UserPassword(testserver.User, testserver.Password)
	} else {
		u.User = url.User(testserver.User)
	}
	return u
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openRelay opens a relay on a fresh subdirectory of s and returns it with
// its directory on disk.
func openRelay(t testing.TB, s *testserver.DAVServer, opts relay.Options) (relay.Relay, string) {
	t.Helper()
	raw, dir := s.Subdir(t)
	u := davURL(t, raw, false)
	if opts.Password == "" {
		opts.Password = s.Password
	}
	r, err := Open(ctxT(t), u, opts)
	if err != nil {
		t.Fatalf("open %s: %v\nserver log:\n%s", u.Redacted(), err, s.ErrorLog())
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// conformance runs the relay conformance suite on s.
func conformance(t *testing.T, s *testserver.DAVServer, opts func() relay.Options) {
	relaytest.Run(t, relaytest.Config{
		Secret: testserver.Password,
		New: func(t *testing.T) relaytest.Fixture {
			r, dir := openRelay(t, s, opts())
			return relaytest.Fixture{
				Relay: r,
				Raw:   func(tb testing.TB) []string { return testserver.ListFiles(tb, dir) },
			}
		},
	})
}

func noOpts() relay.Options { return relay.Options{} }

func TestApache(t *testing.T) {
	s := testserver.StartApache(t, testserver.DAVOptions{})
	t.Run("Conformance", func(t *testing.T) { conformance(t, s, noOpts) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, s, relay.Options{}) })
	t.Run("Quirks", func(t *testing.T) { quirks(t, s, relay.Options{}) })
	// Follow-up requests made while an answer is still open would wait
	// forever for a second connection.
	t.Run("QuirksOneConn", func(t *testing.T) { quirks(t, s, relay.Options{MaxConns: 1}) })
	t.Run("BadInputOneConn", func(t *testing.T) { badInput(t, s, relay.Options{MaxConns: 1}) })
}

func TestApacheHTTPS(t *testing.T) {
	s := testserver.StartApache(t, testserver.DAVOptions{TLS: true})
	t.Run("Conformance", func(t *testing.T) {
		conformance(t, s, func() relay.Options { return relay.Options{TLS: relay.TLSOptions{PinSHA256: s.Cert.Fingerprint}} })
	})
	t.Run("TLS", func(t *testing.T) { tlsChecks(t, s) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, s, relay.Options{}) })
}

func TestApacheDigest(t *testing.T) {
	s := testserver.StartApache(t, testserver.DAVOptions{Digest: true})
	t.Run("Conformance", func(t *testing.T) { conformance(t, s, noOpts) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, s, relay.Options{}) })
}

func TestNginx(t *testing.T) {
	s := testserver.StartNginx(t, testserver.DAVOptions{})
	t.Run("Conformance", func(t *testing.T) { conformance(t, s, noOpts) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, s, relay.Options{}) })
	t.Run("Quirks", func(t *testing.T) { quirks(t, s, relay.Options{}) })
	t.Run("QuirksOneConn", func(t *testing.T) { quirks(t, s, relay.Options{MaxConns: 1}) })
}

func TestNginxHTTPS(t *testing.T) {
	s := testserver.StartNginx(t, testserver.DAVOptions{TLS: true})
	t.Run("Conformance", func(t *testing.T) {
		conformance(t, s, func() relay.Options { return relay.Options{TLS: relay.TLSOptions{CAFile: s.Cert.CertFile}} })
	})
	t.Run("TLS", func(t *testing.T) { tlsChecks(t, s) })
}

// checkErr asserts that err wraps want, mentions every word of mention and
// does not contain the password.
func checkErr(t *testing.T, what string, err, want error, mention ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, want)
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: %v; want an error wrapping %q", what, err, want)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: %q does not mention %q", what, err, m)
		}
	}
	if strings.Contains(err.Error(), testserver.Password) {
		t.Errorf("%s: error reveals the password: %q", what, err)
	}
}

func badInput(t *testing.T, s *testserver.DAVServer, base relay.Options) {
	tlsOpts := relay.TLSOptions{}
	if s.Cert != nil {
		tlsOpts.PinSHA256 = s.Cert.Fingerprint
	}
	opts := func() relay.Options { o := base; o.TLS = tlsOpts; return o }
	t.Run("WrongPassword", func(t *testing.T) {
		raw, _ := s.Subdir(t)
		u := davURL(t, raw, false)
		u.User = url.UserPassword(testserver.User, "wrong-"+testserver.Password)
		_, err := Open(ctxT(t), u, opts())
		checkErr(t, "open with a wrong password", err, relay.ErrAuth, "401", testserver.User)
		if err != nil && strings.Contains(err.Error(), "wrong-") {
			t.Errorf("error reveals the password: %q", err)
		}
		if relay.IsPermanent(err) != true {
			t.Errorf("authentication failure is not permanent: %v", err)
		}
	})
	t.Run("NoPassword", func(t *testing.T) {
		raw, _ := s.Subdir(t)
		u := davURL(t, raw, false)
		u.User = nil
		_, err := Open(ctxT(t), u, func() relay.Options {
			o := opts()
			o.Getenv = func(string) string { return "" }
			o.NetrcFile = "/dev/null"
			return o
		}())
		checkErr(t, "open without credentials", err, relay.ErrAuth, "no credentials")
	})
	t.Run("MissingParent", func(t *testing.T) {
		u := davURL(t, s.URL+"/no-such-parent/relay", true)
		_, err := Open(ctxT(t), u, opts())
		checkErr(t, "open below a missing collection", err, fs.ErrNotExist, "not found", "/dav/no-such-parent/relay")
	})
	t.Run("RootIsAFile", func(t *testing.T) {
		r, _ := openRelay(t, s, opts())
		relaytest.MustPut(t, r, "file", []byte("x"))
		u, _ := url.Parse(r.Properties().Location) // the user but no password
		u.Path += "/file"
		_, err := Open(ctxT(t), u, func() relay.Options { o := opts(); o.Password = s.Password; return o }())
		checkErr(t, "open on a file", err, relay.ErrUnsupported, "not a collection")
	})
	t.Run("CreatesRoot", func(t *testing.T) {
		raw, dir := s.Subdir(t)
		u := davURL(t, raw, true)
		r, err := Open(ctxT(t), u, opts())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if files := testserver.ListFiles(t, dir); len(files) != 0 {
			t.Errorf("fresh root holds %q", files)
		}
		if p := r.Properties(); strings.Contains(p.Location, testserver.Password) || !strings.HasPrefix(p.Location, "webdav") {
			t.Errorf("location %q", p.Location)
		}
	})
}

func tlsChecks(t *testing.T, s *testserver.DAVServer) {
	open := func(t *testing.T, opts relay.TLSOptions) error {
		raw, _ := s.Subdir(t)
		r, err := Open(ctxT(t), davURL(t, raw, true), relay.Options{TLS: opts})
		if err == nil {
			r.Close()
		}
		return err
	}
	t.Run("Untrusted", func(t *testing.T) {
		err := open(t, relay.TLSOptions{})
		checkErr(t, "self-signed certificate without trust", err, relay.ErrTLS, "certificate")
		if !relay.IsPermanent(err) {
			t.Errorf("TLS failure is not permanent: %v", err)
		}
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		if err := open(t, relay.TLSOptions{InsecureSkipVerify: true}); err != nil {
			t.Errorf("with InsecureSkipVerify: %v", err)
		}
	})
	t.Run("Pin", func(t *testing.T) {
		if err := open(t, relay.TLSOptions{PinSHA256: s.Cert.Fingerprint}); err != nil {
			t.Errorf("with the right pin: %v", err)
		}
	})
	t.Run("CAFile", func(t *testing.T) {
		if err := open(t, relay.TLSOptions{CAFile: s.Cert.CertFile}); err != nil {
			t.Errorf("with the certificate as CA file: %v", err)
		}
	})
	t.Run("WrongPin", func(t *testing.T) {
		err := open(t, relay.TLSOptions{PinSHA256: strings.Repeat("ab", 32)})
		checkErr(t, "wrong pin", err, relay.ErrTLS, "does not match the pinned")
	})
	t.Run("PlainHTTPToTLSPort", func(t *testing.T) {
		raw, _ := s.Subdir(t)
		u := davURL(t, raw, true)
		u.Scheme = "webdav"
		_, err := Open(ctxT(t), u, relay.Options{})
		if err == nil {
			t.Fatal("plain HTTP to an HTTPS port worked")
		}
		if !strings.Contains(err.Error(), "webdavs://") {
			t.Errorf("error does not suggest webdavs://: %v", err)
		}
	})
}

// TestTLSToPlainServer checks webdavs:// against a plain HTTP server.
func TestTLSToPlainServer(t *testing.T) {
	s := testserver.StartNginx(t, testserver.DAVOptions{})
	raw, _ := s.Subdir(t)
	u := davURL(t, raw, true)
	u.Scheme = "webdavs"
	_, err := Open(ctxT(t), u, relay.Options{TLS: relay.TLSOptions{InsecureSkipVerify: true}})
	checkErr(t, "TLS to a plain HTTP server", err, relay.ErrTLS, "webdav://")
}

// quirks checks server behaviour the conformance suite does not reach.
func quirks(t *testing.T, s *testserver.DAVServer, opts relay.Options) {
	t.Run("DeleteDirectoryKeepsContents", func(t *testing.T) {
		r, dir := openRelay(t, s, opts)
		relaytest.MustPut(t, r, "d/inner", []byte("x"))
		if err := r.Delete(ctxT(t), "d"); err != nil {
			t.Errorf("delete of a directory name: %v, want success (no such object)", err)
		}
		if files := testserver.ListFiles(t, dir); len(files) != 1 {
			t.Errorf("after deleting a directory name, the storage holds %q, want d/inner", files)
		}
	})
	t.Run("RenameDirectory", func(t *testing.T) {
		r, _ := openRelay(t, s, opts)
		relaytest.MustPut(t, r, "d/inner", []byte("x"))
		err := r.(relay.Renamer).Rename(ctxT(t), "d", "e")
		checkErr(t, "rename of a directory", err, fs.ErrNotExist, "collection")
	})
	t.Run("PutOverDirectory", func(t *testing.T) {
		// A MOVE onto a collection replaces it with all its contents on
		// Apache; objects below the name must survive.
		r, dir := openRelay(t, s, opts)
		ctx := ctxT(t)
		relaytest.MustPut(t, r, "a/b", []byte("x"))
		err := r.Put(ctx, "a", relay.BytesPayload([]byte("y")))
		checkErr(t, "put over a directory holding objects", err, fs.ErrExist, "collection")
		relaytest.MustPut(t, r, "e", []byte("e"))
		err = r.(relay.Renamer).Rename(ctx, "e", "a")
		checkErr(t, "rename over a directory holding objects", err, fs.ErrExist, "collection")
		if files := testserver.ListFiles(t, dir); !slices.Equal(files, []string{"a/b", "e"}) {
			t.Errorf("storage holds %q, want a/b and e", files)
		}
		// A directory that Delete left empty is no obstacle.
		if err := r.Delete(ctx, "a/b"); err != nil {
			t.Fatal(err)
		}
		relaytest.MustPut(t, r, "a", []byte("now a file"))
		if got := relaytest.MustGet(t, r, "a"); string(got) != "now a file" {
			t.Errorf("a = %q", got)
		}
		relaytest.MustPut(t, r, "c/d/e", []byte("x"))
		if err := r.Delete(ctx, "c/d/e"); err != nil {
			t.Fatal(err)
		}
		if err := r.(relay.Renamer).Rename(ctx, "e", "c"); err != nil {
			t.Errorf("rename over an empty directory: %v", err)
		}
		// And the names can become directories again.
		if err := r.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		relaytest.MustPut(t, r, "a/again", []byte("x"))
		if got := relaytest.ListNames(t, r, ""); !slices.Equal(got, []string{"a/again", "c"}) {
			t.Errorf("list = %q", got)
		}
	})
	t.Run("GetDirectory", func(t *testing.T) {
		r, _ := openRelay(t, s, opts)
		relaytest.MustPut(t, r, "d/inner", []byte("x"))
		_, err := relaytest.ReadAll(ctxT(t), r, "d", 0, -1)
		if err == nil {
			t.Errorf("get of a directory succeeded")
		}
	})
	t.Run("ListCallsRelay", func(t *testing.T) {
		r, _ := openRelay(t, s, opts)
		for _, n := range []string{"a", "d/b", "d/e/c"} {
			relaytest.MustPut(t, r, n, []byte(n))
		}
		ctx := ctxT(t)
		var got []string
		err := r.List(ctx, "", func(oi relay.ObjectInfo) error {
			if _, err := r.Stat(ctx, oi.Name); err != nil {
				return err
			}
			b, err := relaytest.ReadAll(ctx, r, oi.Name, 0, -1)
			got = append(got, string(b))
			return err
		})
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"a", "d/b", "d/e/c"}) {
			t.Errorf("list calling the relay: %q, %v", got, err)
		}
	})
	t.Run("ListFile", func(t *testing.T) {
		r, _ := openRelay(t, s, opts)
		relaytest.MustPut(t, r, "f", []byte("x"))
		if names := relaytest.ListNames(t, r, "f"); len(names) != 0 {
			t.Errorf("list of an object name: %q, want nothing", names)
		}
	})
	t.Run("ParentRemovedBehindCache", func(t *testing.T) {
		r, dir := openRelay(t, s, opts)
		relaytest.MustPut(t, r, "a/b/one", []byte("1"))
		// Someone removes the collection the cache knows about.
		if err := os.RemoveAll(dir + "/a"); err != nil {
			t.Fatal(err)
		}
		relaytest.MustPut(t, r, "a/b/two", []byte("2"))
		if got := relaytest.MustGet(t, r, "a/b/two"); string(got) != "2" {
			t.Errorf("got %q", got)
		}
		relaytest.MustPut(t, r, "c/x", []byte("3"))
		if err := os.RemoveAll(dir + "/a"); err != nil {
			t.Fatal(err)
		}
		if err := r.(relay.Renamer).Rename(ctxT(t), "c/x", "a/b/x"); err != nil {
			t.Errorf("rename into a removed cached collection: %v", err)
		}
	})
}
