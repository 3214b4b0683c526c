package s3

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/relay"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := relay.ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in     string
		host   string
		secure bool
		err    string
	}{
		{"", DefaultEndpoint, true, ""},
		{"http://127.0.0.1:8333", "127.0.0.1:8333", false, ""},
		{"https://minio.example.org", "minio.example.org", true, ""},
		{"minio.example.org:9000", "minio.example.org:9000", true, ""},
		{"http://127.0.0.1:8333/", "127.0.0.1:8333", false, ""},
		{"ftp://host", "", false, "must be http or https"},
		{"http://host/bucket", "", false, "without a path"},
		{"http://", "", false, "without a path"},
	} {
		host, secure, err := parseEndpoint(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseEndpoint(%q): %v, want an error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || secure != tc.secure {
			t.Errorf("parseEndpoint(%q) = %q, %v, %v; want %q, %v", tc.in, host, secure, err, tc.host, tc.secure)
		}
	}
}

func TestNewRelayURL(t *testing.T) {
	env := envOf(map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"})
	for _, tc := range []struct {
		url, prefix, err string
	}{
		{"s3://bucket", "", ""},
		{"s3://bucket/", "", ""},
		{"s3://bucket/a/b", "a/b/", ""},
		{"s3://bucket/a/b/", "a/b/", ""},
		{"s3:///path", "", "no bucket"},
		{"s3://bucket:9000/x", "", "--s3-endpoint"},
		{"s3://bucket/x?region=eu", "", "unexpected query"},
		{"s3://bucket/a//b", "", "prefix"},
	} {
		r, err := newRelay(mustURL(t, tc.url), relay.Options{Getenv: env, S3Endpoint: "http://127.0.0.1:1"}, config{})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error containing %q", tc.url, err, tc.err)
			}
			if err != nil && !relay.IsPermanent(err) {
				t.Errorf("%s: URL error is not permanent: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if r.bucket != "bucket" || r.prefix != tc.prefix {
			t.Errorf("%s: bucket %q prefix %q, want bucket, %q", tc.url, r.bucket, r.prefix, tc.prefix)
		}
		if p := r.Properties(); p.Scheme != "s3" || !p.AtomicPut || p.Location == "" {
			t.Errorf("%s: properties %+v", tc.url, p)
		}
	}
}

func TestCredentialSources(t *testing.T) {
	dir := t.TempDir()
	credFile := filepath.Join(dir, "credentials")
	if err := os.WriteFile(credFile, []byte("[default]\naws_access_key_id = fileid\naws_secret_access_key = filesecret\n\n[other]\naws_access_key_id = otherid\naws_secret_access_key = othersecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	netrc := filepath.Join(dir, "netrc")
	if err := os.WriteFile(netrc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// An empty home keeps the developer's ~/.aws out of the test.
	t.Setenv("HOME", dir)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	for _, tc := range []struct {
		name     string
		url      string
		opts     relay.Options
		env      map[string]string
		id, from string
		err      string
	}{
		{name: "env", url: "s3://b/p", env: map[string]string{"AWS_ACCESS_KEY_ID": "envid", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "tok"},
			id: "envid", from: "AWS_ACCESS_KEY_ID"},
		{name: "url user and password option", url: "s3://KEY@b/p", opts: relay.Options{Password: "pw"}, env: map[string]string{"AWS_ACCESS_KEY_ID": "envid", "AWS_SECRET_ACCESS_KEY": "x"},
			id: "KEY", from: "relay URL"},
		{name: "url user without secret", url: "s3://KEY@b/p", opts: relay.Options{NetrcFile: netrc},
			err: "no secret key"},
		{name: "credentials file", url: "s3://b/p", opts: relay.Options{CredentialsFile: credFile}, env: map[string]string{"AWS_ACCESS_KEY_ID": "envid", "AWS_SECRET_ACCESS_KEY": "x"},
			id: "fileid", from: credFile},
		{name: "credentials file with profile", url: "s3://b/p", opts: relay.Options{CredentialsFile: credFile}, env: map[string]string{"AWS_PROFILE": "other"},
			id: "otherid", from: `profile "other"`},
		{name: "missing credentials file", url: "s3://b/p", opts: relay.Options{CredentialsFile: filepath.Join(dir, "absent")},
			err: "S3 credentials file"},
		{name: "nothing", url: "s3://b/p", from: "no credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Getenv = envOf(tc.env)
			c, from, err := credentialsFor(mustURL(t, tc.url), opts, opts.Getenv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("%v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.GetWithContext(nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.AccessKeyID != tc.id || !strings.Contains(from, tc.from) {
				t.Errorf("access key %q from %q, want %q from something containing %q", v.AccessKeyID, from, tc.id, tc.from)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	r := &Relay{bucket: "bkt", endpoint: "http://127.0.0.1:1", credFrom: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}
	resp := func(status int, code string) error {
		return fmt.Errorf("wrapped: %w", minio.ErrorResponse{StatusCode: status, Code: code, Message: "msg"})
	}
	for _, tc := range []struct {
		err       error
		is        error
		permanent bool
		text      string
	}{
		{resp(404, "NoSuchKey"), fs.ErrNotExist, true, "NoSuchKey"},
		{resp(404, "NoSuchBucket"), nil, true, `bucket "bkt" does not exist at http://127.0.0.1:1: create it first`},
		{resp(403, "InvalidAccessKeyId"), relay.ErrAuth, true, "refused AWS_ACCESS_KEY_ID"},
		{resp(403, "SignatureDoesNotMatch"), relay.ErrAuth, true, "SignatureDoesNotMatch"},
		{resp(403, "AccessDenied"), relay.ErrAuth, true, `bucket "bkt"`},
		{resp(403, "QuotaExceeded"), relay.ErrQuota, true, "QuotaExceeded"},
		{resp(400, "EntityTooLarge"), relay.ErrQuota, true, "EntityTooLarge"},
		{resp(507, "507 Insufficient Storage"), relay.ErrQuota, true, "507"},
		{resp(503, "SlowDown"), nil, false, "SlowDown"},
		{resp(500, "InternalError"), nil, false, "InternalError"},
		{resp(429, "TooManyRequests"), nil, false, "429"},
		{resp(400, "InvalidArgument"), nil, true, "InvalidArgument"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, relay.ErrUnreachable, false, "S3 endpoint http://127.0.0.1:1 cannot be reached"},
	} {
		got := r.translate(tc.err)
		if tc.is != nil && !errors.Is(got, tc.is) {
			t.Errorf("%v: translated to %v, which is not %v", tc.err, got, tc.is)
		}
		if relay.IsPermanent(got) != tc.permanent {
			t.Errorf("%v: permanent = %v, want %v", tc.err, relay.IsPermanent(got), tc.permanent)
		}
		if !strings.Contains(got.Error(), tc.text) {
			t.Errorf("%v: message %q lacks %q", tc.err, got, tc.text)
		}
	}
	if got := r.translate(fmt.Errorf("x: %w", fs.ErrClosed)); relay.IsPermanent(got) {
		t.Errorf("an unknown error is permanent: %v", got)
	}
}
