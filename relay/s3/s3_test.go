package s3

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// minPart is S3's smallest part size (all but the last part).
const minPart = 5 << 20

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openAt opens a relay on prefix of s's bucket.
func openAt(t testing.TB, s *testserver.S3Server, prefix string, cfg config) *Relay {
	t.Helper()
	u, err := url.Parse(s.URL(prefix))
	if err != nil {
		t.Fatal(err)
	}
	r, err := open(ctxT(t), u, s.Options(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v\nserver output:\n%s", u, err, tailOf(s.Process.Output()))
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func tailOf(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

func TestSeaweedFS(t *testing.T) {
	s := testserver.StartSeaweedFS(t)
	t.Run("Conformance", func(t *testing.T) {
		relaytest.Run(t, relaytest.Config{
			Secret:  s.SecretKey,
			MaxSize: 2*minPart + 123, // a multipart upload of three parts
			New: func(t *testing.T) relaytest.Fixture {
				prefix := s.NewPrefix(t)
				r := openAt(t, s, prefix, config{partSize: minPart})
				return relaytest.Fixture{Relay: r, Raw: func(tb testing.TB) []string { return s.RawKeys(tb, prefix) }}
			},
		})
	})
	t.Run("Multipart", func(t *testing.T) { testMultipart(t, s) })
	t.Run("CancelledMultipart", func(t *testing.T) { testCancelledMultipart(t, s) })
	t.Run("InterruptedUploadCleanedAtOpen", func(t *testing.T) { testStaleUploads(t, s) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, s) })
	t.Run("ForeignKeys", func(t *testing.T) { testForeignKeys(t, s) })
	t.Run("Pagination", func(t *testing.T) { testPagination(t, s) })
}

// A 16 MiB object in 5 MiB parts round-trips, and ranges across part
// boundaries read right.
func testMultipart(t *testing.T, s *testserver.S3Server) {
	prefix := s.NewPrefix(t)
	r := openAt(t, s, prefix, config{partSize: minPart})
	data := relaytest.RandomBytes(16 << 20)
	relaytest.MustPut(t, r, "big/obj", data)
	st, err := r.Stat(ctxT(t), "big/obj")
	if err != nil || st.Size != int64(len(data)) {
		t.Fatalf("stat: %+v, %v", st, err)
	}
	if got := relaytest.MustGet(t, r, "big/obj"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ", len(got))
	}
	for _, c := range []struct{ off, n int64 }{{minPart - 10, 20}, {2*minPart - 1, minPart + 2}, {15 << 20, -1}, {0, 3*minPart + 1}} {
		got, err := relaytest.ReadAll(ctxT(t), r, "big/obj", c.off, c.n)
		hi := int64(len(data))
		if c.n >= 0 {
			hi = min(hi, c.off+c.n)
		}
		if err != nil || !bytes.Equal(got, data[c.off:hi]) {
			t.Errorf("range %d+%d: %d bytes, %v", c.off, c.n, len(got), err)
		}
	}
	// The key has a multipart ETag ("…-4"): it was stored in parts.
	oi, err := s.Client.StatObject(ctxT(t), s.Bucket, prefix+"/big/obj", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(oi.ETag, "-4") {
		t.Errorf("ETag %q: not a 4-part upload", oi.ETag)
	}
	if raw := s.RawKeys(t, prefix); !slices.Equal(raw, []string{"big/obj"}) {
		t.Errorf("bucket holds %q", raw)
	}
}

// cancelAfter is a payload that cancels a context once n bytes are read.
type cancelAfter struct {
	relay.Payload
	n      int64
	read   int64
	cancel func()
}

func (p *cancelAfter) Read(b []byte) (int, error) {
	n, err := p.Payload.Read(b)
	p.read += int64(n)
	if p.read >= p.n {
		p.cancel()
	}
	return n, err
}

// A multipart upload cancelled after its first part is aborted: neither
// the object nor an incomplete upload stays.
func testCancelledMultipart(t *testing.T, s *testserver.S3Server) {
	prefix := s.NewPrefix(t)
	r := openAt(t, s, prefix, config{partSize: minPart})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &cancelAfter{Payload: relay.BytesPayload(relaytest.RandomBytes(16 << 20)), n: minPart + 1, cancel: cancel}
	err := r.Put(ctx, "big/cancelled", p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled multipart put: %v, want context.Canceled", err)
	}
	if raw := s.RawKeys(t, prefix); len(raw) != 0 {
		t.Errorf("after a cancelled multipart put the bucket holds %q", raw)
	}
}

// An upload left by a killed process (started, one part sent, never
// completed nor aborted) is invisible, survives an Open while it may still
// be in progress, and is aborted by the first Open after StaleUploadAge
// and by RemoveTemp.
func testStaleUploads(t *testing.T, s *testserver.S3Server) {
	prefix := s.NewPrefix(t)
	core := minio.Core{Client: s.Client}
	leave := func(name string) {
		t.Helper()
		key := prefix + "/" + name
		id, err := core.NewMultipartUpload(ctxT(t), s.Bucket, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		part := relaytest.RandomBytes(minPart)
		if _, err := core.PutObjectPart(ctxT(t), s.Bucket, key, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	leave("blobs/n1/killed")
	leave("nodes/n1/killed")
	// Another relay's upload, beside this one's prefix.
	other := s.NewPrefix(t)
	otherKey := other + "/x"
	if _, err := core.NewMultipartUpload(ctxT(t), s.Bucket, otherKey, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"blobs/n1/killed (incomplete upload)", "nodes/n1/killed (incomplete upload)"}
	r := openAt(t, s, prefix, config{})
	if got := relaytest.ListNames(t, r, ""); len(got) != 0 {
		t.Errorf("incomplete uploads listed as objects: %q", got)
	}
	raw := s.RawKeys(t, prefix)
	slices.Sort(raw)
	if !slices.Equal(raw, want) {
		t.Fatalf("an Open soon after the uploads began left %q, want %q", raw, want)
	}
	// RemoveTemp of one directory.
	n, err := r.RemoveTemp(ctxT(t), "nodes/n1", time.Now().Add(time.Minute))
	if err != nil || n != 1 {
		t.Errorf("RemoveTemp nodes/n1: %d, %v; want 1", n, err)
	}
	// An Open a day later.
	later := func() time.Time { return time.Now().Add(StaleUploadAge + time.Hour) }
	openAt(t, s, prefix, config{now: later})
	if raw := s.RawKeys(t, prefix); len(raw) != 0 {
		t.Errorf("after an Open past the stale age, the bucket holds %q", raw)
	}
	if raw := s.RawKeys(t, other); !slices.Equal(raw, []string{"x (incomplete upload)"}) {
		t.Errorf("the other prefix's upload: %q", raw)
	}
}

func testErrors(t *testing.T, s *testserver.S3Server) {
	ctx := ctxT(t)
	u := func(raw string) *url.URL {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	t.Run("MissingBucket", func(t *testing.T) {
		_, err := Open(ctx, u("s3://no-such-bucket/p"), s.Options())
		want := `bucket "no-such-bucket" does not exist at ` + s.Endpoint + `: create it first`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("open: %v, want an error containing %q", err, want)
		}
		if !relay.IsPermanent(err) || errors.Is(err, relay.ErrAuth) {
			t.Errorf("missing bucket: permanent %v, auth %v", relay.IsPermanent(err), errors.Is(err, relay.ErrAuth))
		}
	})
	badCreds := func(id, secret string) relay.Options {
		o := s.Options()
		env := map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret}
		o.Getenv = func(k string) string { return env[k] }
		return o
	}
	for _, tc := range []struct {
		name string
		opts relay.Options
		want string
	}{
		{"WrongSecret", badCreds(s.AccessKey, "wrong-secret"), "SignatureDoesNotMatch"},
		{"UnknownKey", badCreds("NOSUCHKEY", "whatever"), "InvalidAccessKeyId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, u(s.URL("p")), tc.opts)
			if !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
				t.Fatalf("open: %v, want a permanent relay.ErrAuth", err)
			}
			for _, w := range []string{tc.want, "AWS_ACCESS_KEY_ID", s.Endpoint} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "wrong-secret") {
				t.Errorf("message shows the secret: %v", err)
			}
		})
	}
	t.Run("UnreachableEndpoint", func(t *testing.T) {
		o := s.Options()
		o.S3Endpoint = "http://127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
		_, err := Open(ctx, u(s.URL("p")), o)
		if !errors.Is(err, relay.ErrUnreachable) || relay.IsPermanent(err) {
			t.Fatalf("open: %v, want a transient relay.ErrUnreachable", err)
		}
		if !strings.Contains(err.Error(), o.S3Endpoint+" cannot be reached") {
			t.Errorf("message %q does not name the endpoint", err)
		}
	})
}

// Keys that other tools put beside the relay's objects: directory
// markers are not listed, and a key "<prefix>x" outside the prefix's
// "directory" is not either. (List also skips keys that are not valid
// names, such as "a//b", but SeaweedFS stores that one as "a/b".)
func testForeignKeys(t *testing.T, s *testserver.S3Server) {
	prefix := s.NewPrefix(t)
	r := openAt(t, s, prefix, config{})
	for _, k := range []string{prefix + "/dir/", prefix + "x/outside", prefix + "/ok"} {
		if _, err := s.Client.PutObject(ctxT(t), s.Bucket, k, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	if got := relaytest.ListNames(t, r, ""); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("list = %q, want [ok]", got)
	}
}

// A listing longer than a page is read page by page: with 5 keys a page,
// every one of 23 objects is listed once, in order.
func testPagination(t *testing.T, s *testserver.S3Server) {
	r := openAt(t, s, s.NewPrefix(t), config{listPage: 5})
	ctx := ctxT(t)
	var want []string
	for i := range 23 {
		name := "nodes/" + strconv.Itoa(i%3) + "/obj-" + strconv.Itoa(100+i)
		if err := r.Put(ctx, name, relay.BytesPayload([]byte(name))); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	var got []string
	if err := r.List(ctx, "nodes", func(oi relay.ObjectInfo) error {
		got = append(got, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listing in pages of 5 gave %d names:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
}
