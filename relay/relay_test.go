package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/escalefs/escalefs/relay"
)

func TestValidName(t *testing.T) {
	good := []string{"a", "a/b", ".hidden", "a/.b", "été/日本", "sp ace", "#%?&+'\"", strings.Repeat("x", 255), "a..b", "..a"}
	for _, n := range good {
		if err := relay.ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "./a", "a/.", "nul\x00", "tab\there", "del\x7f",
		"back\\slash", "\xff\xfe", relay.TempPrefix + "x", "d/" + relay.TempPrefix}
	for _, n := range bad {
		err := relay.ValidName(n)
		if !errors.Is(err, relay.ErrInvalidName) || !relay.IsPermanent(err) {
			t.Errorf("ValidName(%q) = %v, want a permanent ErrInvalidName", n, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", n)) {
			t.Errorf("ValidName(%q): error %q does not quote the name", n, err)
		}
	}
}

func TestTempName(t *testing.T) {
	for _, n := range []string{"x", "a/b/" + strings.Repeat("y", 200)} {
		tmp := relay.TempName(n)
		if !relay.IsTempName(tmp) {
			t.Errorf("IsTempName(TempName(%q)=%q) = false", n, tmp)
		}
		dir, base := filepath.Split(tmp)
		wantDir, _ := filepath.Split(n)
		if dir != wantDir || len(base) > 64 {
			t.Errorf("TempName(%q) = %q: want a short name in the same directory", n, tmp)
		}
	}
	if a, b := relay.TempName("x"), relay.TempName("x"); a == b {
		t.Error("TempName repeats itself")
	}
}

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), false},
		{syscall.ECONNRESET, false},
		{fs.ErrNotExist, true},
		{fmt.Errorf("wrapped: %w", relay.ErrQuota), true},
		{relay.ErrAuth, true},
		{context.Canceled, true},
		{relay.Transient(fs.ErrPermission), false}, // an explicit mark wins
		{relay.Permanent(errors.New("odd")), true},
		{relay.WrapOp("put", "x", relay.Transient(errors.New("busy"))), false},
		{relay.ClassifyNetError(&net.DNSError{Err: "no such host", Name: "nohost"}), false},
	} {
		if got := relay.IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !errors.Is(relay.ErrAuth, fs.ErrPermission) {
		t.Error("ErrAuth does not match fs.ErrPermission")
	}
}

func TestParseURL(t *testing.T) {
	u, err := relay.ParseURL("/srv/relay")
	if err != nil || u.Scheme != "file" || u.Path != "/srv/relay" {
		t.Errorf("plain path: %v, %v", u, err)
	}
	u, err = relay.ParseURL("FTPS://me@host/dir")
	if err != nil || u.Scheme != "ftps" {
		t.Errorf("upper-case scheme: %v, %v", u, err)
	}
	for _, raw := range []string{"ftp://me:hunter2@ho st/x", "ftp://me:hunter2@host:port/x", "ftp://me:hunter2@[::1/x"} {
		_, err := relay.ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q): the error shows the password: %v", raw, err)
		}
		if !strings.Contains(err.Error(), "malformed") {
			t.Errorf("ParseURL(%q): %v, want it to say the URL is malformed", raw, err)
		}
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	netrc := write("netrc", "machine other login x password y\nmachine host.example login me password fromnetrc\ndefault login anon password guest\n")
	pwfile := write("pw", "frompwfile\n")
	userfile := write("users", "alice:apw\nme:mepw\n")
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == relay.PasswordEnv {
				return v
			}
			return ""
		}
	}
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tc := range []struct {
		name       string
		url        string
		opts       relay.Options
		user, pass string
	}{
		{"url wins", "ftp://me:fromurl@host.example/", relay.Options{PasswordFile: pwfile, Getenv: env("fromenv"), NetrcFile: netrc}, "me", "fromurl"},
		{"password file", "ftp://me@host.example/", relay.Options{PasswordFile: pwfile, Getenv: env("fromenv"), NetrcFile: netrc}, "me", "frompwfile"},
		{"user:password lines", "ftp://me@host.example/", relay.Options{PasswordFile: userfile}, "me", "mepw"},
		{"environment", "ftp://me@host.example/", relay.Options{Getenv: env("fromenv"), NetrcFile: netrc}, "me", "fromenv"},
		{"netrc", "ftp://me@host.example/", relay.Options{Getenv: env(""), NetrcFile: netrc}, "me", "fromnetrc"},
		{"netrc names the user", "ftp://host.example/", relay.Options{Getenv: env(""), NetrcFile: netrc}, "me", "fromnetrc"},
		{"netrc default", "ftp://unknown.example/", relay.Options{Getenv: env(""), NetrcFile: netrc}, "anon", "guest"},
		{"nothing: default user", "ftp://h2/", relay.Options{Getenv: env(""), NetrcFile: write("empty", "")}, "anonymous", ""},
	} {
		user, pass, err := tc.opts.Credentials(parse(tc.url), "anonymous")
		if err != nil || user != tc.user || pass != tc.pass {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q)", tc.name, user, pass, err, tc.user, tc.pass)
		}
	}
	o := relay.Options{PasswordFile: userfile}
	if _, _, err := o.Credentials(parse("ftp://bob@host/"), ""); err == nil || !strings.Contains(err.Error(), `no line for user "bob"`) {
		t.Errorf("user missing from a user:password file: %v", err)
	}
	o = relay.Options{PasswordFile: filepath.Join(dir, "absent")}
	if _, _, err := o.Credentials(parse("ftp://bob@host/"), ""); err == nil || !strings.Contains(err.Error(), "password file") {
		t.Errorf("missing password file: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		opts relay.TLSOptions
		want string
	}{
		{relay.TLSOptions{PinSHA256: "abc"}, `certificate pin "abc"`},
		{relay.TLSOptions{MaxVersion: "1.4"}, `ssl version "1.4": expected one of`},
		{relay.TLSOptions{CertFile: "/nonexistent.pem"}, "needs both a certificate file and a key file"},
		{relay.TLSOptions{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}, "loading client certificate"},
		{relay.TLSOptions{CAFile: "/nonexistent.pem"}, "reading CA file"},
	} {
		_, err := tc.opts.Config("host")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Config(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

// A pinned certificate is accepted without a CA; any other is refused with
// ErrTLS; and without a pin a self-signed certificate is refused.
func TestPinning(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") }))
	defer srv.Close()
	fp := relay.CertFingerprint(srv.Certificate().Raw)
	get := func(opts relay.TLSOptions) error {
		cfg, err := opts.Config("127.0.0.1")
		if err != nil {
			return err
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return relay.ClassifyNetError(err)
		}
		resp.Body.Close()
		return nil
	}
	if err := get(relay.TLSOptions{PinSHA256: fp}); err != nil {
		t.Errorf("pinned certificate refused: %v", err)
	}
	if err := get(relay.TLSOptions{PinSHA256: strings.ToUpper(fp[:2]) + ":" + fp[2:]}); err != nil {
		t.Errorf("pin with upper case and a colon refused: %v", err)
	}
	wrong := strings.Repeat("ab", 32)
	if err := get(relay.TLSOptions{PinSHA256: wrong}); !errors.Is(err, relay.ErrTLS) || !strings.Contains(err.Error(), fp) {
		t.Errorf("wrong pin: %v, want ErrTLS showing the server's fingerprint", err)
	}
	if err := get(relay.TLSOptions{}); !errors.Is(err, relay.ErrTLS) {
		t.Errorf("self-signed certificate without a pin: %v, want ErrTLS", err)
	}
	if err := get(relay.TLSOptions{InsecureSkipVerify: true}); err != nil {
		t.Errorf("verification off: %v", err)
	}
}

func TestClassifyNetError(t *testing.T) {
	_, err := net.Dial("tcp", "127.0.0.1:1")
	if c := relay.ClassifyNetError(err); !errors.Is(c, relay.ErrUnreachable) || relay.IsPermanent(c) {
		t.Errorf("refused connection: %v, want a transient ErrUnreachable", c)
	}
	if c := relay.ClassifyNetError(context.Canceled); c != context.Canceled {
		t.Errorf("context error changed: %v", c)
	}
}

func TestCheckedReader(t *testing.T) {
	p := relay.BytesPayload([]byte("12345"))
	if b, err := io.ReadAll(relay.CheckedReader(p)); err != nil || string(b) != "12345" {
		t.Errorf("exact payload: %q, %v", b, err)
	}
	short := lying{relay.BytesPayload([]byte("123")), 5}
	if _, err := io.ReadAll(relay.CheckedReader(short)); !errors.Is(err, io.ErrUnexpectedEOF) || !relay.IsPermanent(err) {
		t.Errorf("short payload: %v, want a permanent ErrUnexpectedEOF", err)
	}
	long := lying{relay.BytesPayload([]byte("1234567")), 5}
	if _, err := io.ReadAll(relay.CheckedReader(long)); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("long payload: %v", err)
	}
}

type lying struct {
	relay.Payload
	n int64
}

func (l lying) Length() int64 { return l.n }
