package ftp_test

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/ftp"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// open opens a relay in a fresh directory of s, with the password in the
// URL (which Location must not show).
func open(t *testing.T, s *testserver.FTPServer, scheme string, opts relay.Options) (relay.Relay, string) {
	t.Helper()
	u, disk := s.NewRelayDir(t, scheme)
	u.User = url.UserPassword(s.User, s.Password)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := ftp.Open(ctx, u, opts)
	if err != nil {
		t.Fatalf("open %s: %v\nserver output:\n%s", u.Redacted(), err, s.Log())
	}
	t.Cleanup(func() { r.Close() })
	return r, disk
}

// conformance runs the relay suite against s, each test in a fresh
// directory.
func conformance(s *testserver.FTPServer, scheme string, opts relay.Options) func(t *testing.T) {
	return func(t *testing.T) {
		relaytest.Run(t, relaytest.Config{
			Secret: s.Password,
			New: func(t *testing.T) relaytest.Fixture {
				r, disk := open(t, s, scheme, opts)
				return relaytest.Fixture{Relay: r, Raw: func(t testing.TB) []string { return testserver.ListFiles(t, disk) }}
			},
		})
	}
}

func TestPureFTPd(t *testing.T) {
	t.Parallel()
	s := testserver.StartPureFTPd(t)
	t.Run("FTP", conformance(s, "ftp", relay.Options{}))
	t.Run("FTPS", conformance(s, "ftps", relay.Options{TLS: relay.TLSOptions{PinSHA256: s.Cert.Fingerprint}}))
	// One connection: nothing may hold a connection while waiting for
	// another (List calls fn between directories, Put cleans up after
	// releasing its connection).
	t.Run("FTPOneConnection", conformance(s, "ftp", relay.Options{MaxConns: 1}))
	// pure-ftpd is the one server tested that takes TLS 1.3 uploads from
	// Go; asking for 1.3 lifts the 1.2 cap. Over 1.3 it never answers a
	// download closed early (StopListing).
	t.Run("FTPSTLS13", conformance(s, "ftps", relay.Options{TLS: relay.TLSOptions{CAFile: s.Cert.CertFile, MinVersion: "1.3"}}))
	t.Run("WrongPassword", func(t *testing.T) { testWrongPassword(t, s, "ftp") })
	t.Run("WrongPasswordFTPS", func(t *testing.T) { testWrongPassword(t, s, "ftps") })
	t.Run("TLS", func(t *testing.T) { testTLS(t, s) })
}

func TestVsftpd(t *testing.T) {
	t.Parallel()
	s := testserver.StartVsftpd(t)
	t.Run("FTP", conformance(s, "ftp", relay.Options{}))
	t.Run("FTPSWithoutTLS", func(t *testing.T) {
		u, _ := s.NewRelayDir(t, "ftps")
		_, err := ftp.Open(context.Background(), u, relay.Options{Password: s.Password, TLS: relay.TLSOptions{InsecureSkipVerify: true}})
		t.Logf("ftps to a server without TLS: %v", err)
		if !errors.Is(err, relay.ErrTLS) || !strings.Contains(err.Error(), "AUTH TLS") {
			t.Errorf("ftps to a server without TLS: %v; want relay.ErrTLS saying that AUTH TLS was refused", err)
		}
	})
}

func TestVsftpdUser(t *testing.T) {
	t.Parallel()
	s := testserver.StartVsftpdUser(t)
	// vsftpd requires data connections to resume the control
	// connection's TLS session, and fails TLS 1.3 uploads.
	t.Run("FTPS", conformance(s, "ftps", relay.Options{TLS: relay.TLSOptions{CAFile: s.Cert.CertFile}}))
	t.Run("WrongPassword", func(t *testing.T) { testWrongPassword(t, s, "ftps") })
}

func TestProFTPd(t *testing.T) {
	t.Parallel()
	s := testserver.StartProFTPd(t)
	t.Run("FTP", conformance(s, "ftp", relay.Options{}))
	t.Run("FTPS", conformance(s, "ftps", relay.Options{TLS: relay.TLSOptions{CAFile: s.Cert.CertFile}}))
	t.Run("WrongPassword", func(t *testing.T) { testWrongPassword(t, s, "ftp") })
	t.Run("TLS", func(t *testing.T) { testTLS(t, s) })
}

func testWrongPassword(t *testing.T, s *testserver.FTPServer, scheme string) {
	const wrong = "wrong-Secret-42"
	u, _ := s.NewRelayDir(t, scheme)
	u.User = url.UserPassword(s.User, wrong)
	_, err := ftp.Open(context.Background(), u, relay.Options{TLS: relay.TLSOptions{CAFile: s.Cert.CertFile}})
	if !errors.Is(err, relay.ErrAuth) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("open with a wrong password: %v; want relay.ErrAuth", err)
	}
	msg := err.Error()
	t.Logf("wrong password: %v", err)
	if strings.Contains(msg, wrong) {
		t.Errorf("error shows the password: %s", msg)
	}
	if !strings.Contains(msg, "authentication failed") || !strings.Contains(msg, s.User) || !strings.Contains(msg, "530") {
		t.Errorf("error %q should say that authentication as %q failed and quote the server's 530 reply", msg, s.User)
	}
	if !relay.IsPermanent(err) {
		t.Errorf("a wrong password is not permanent: %v", err)
	}
}

// testTLS checks certificate verification against a server with a
// self-signed certificate.
func testTLS(t *testing.T, s *testserver.FTPServer) {
	try := func(opts relay.TLSOptions) error {
		u, _ := s.NewRelayDir(t, "ftps")
		r, err := ftp.Open(context.Background(), u, relay.Options{Password: s.Password, TLS: opts})
		t.Logf("open with %+v: %v", opts, err)
		if err == nil {
			defer r.Close()
			relaytest.MustPut(t, r, "x", []byte("over TLS"))
			if got := relaytest.MustGet(t, r, "x"); string(got) != "over TLS" {
				t.Errorf("read back %q", got)
			}
		}
		return err
	}
	t.Run("Untrusted", func(t *testing.T) {
		err := try(relay.TLSOptions{})
		if !errors.Is(err, relay.ErrTLS) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), s.Cert.Fingerprint) {
			t.Errorf("self-signed certificate without a pin: %v; want relay.ErrTLS naming the certificate and its fingerprint", err)
		}
	})
	t.Run("WrongPin", func(t *testing.T) {
		err := try(relay.TLSOptions{PinSHA256: strings.Repeat("ab", 32)})
		if !errors.Is(err, relay.ErrTLS) || !strings.Contains(err.Error(), "pinned") {
			t.Errorf("wrong pin: %v; want relay.ErrTLS about the pin", err)
		}
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		if err := try(relay.TLSOptions{InsecureSkipVerify: true}); err != nil {
			t.Errorf("verify-ssl=false: %v", err)
		}
	})
	t.Run("CAFile", func(t *testing.T) {
		if err := try(relay.TLSOptions{CAFile: s.Cert.CertFile}); err != nil {
			t.Errorf("CA file holding the server's certificate: %v", err)
		}
	})
	t.Run("Pin", func(t *testing.T) {
		if err := try(relay.TLSOptions{PinSHA256: s.Cert.Fingerprint}); err != nil {
			t.Errorf("pinned certificate: %v", err)
		}
	})
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	port := testserver.FreePort(t) // closed again: connections are refused
	u := &url.URL{Scheme: "ftp", User: url.UserPassword("u", "p-secret"), Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/x"}
	_, err := ftp.Open(context.Background(), u, relay.Options{})
	t.Logf("closed port: %v", err)
	if !errors.Is(err, relay.ErrUnreachable) {
		t.Fatalf("open of a closed port: %v; want relay.ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "p-secret") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q should name the host and not show the password", err)
	}
	if relay.IsPermanent(err) {
		t.Errorf("an unreachable host should be transient: %v", err)
	}
}

func TestBadURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"ftp:///dir", "no host"},
		{"ftp://user:hunter2@/dir", "no host"},
		{"ftp:host/dir", "no // after the scheme"},
		{"ftp://host:99999/dir", "port"},
		{"ftp://host/dir?passive=1", "query"},
		{"ftp://host/a%0Ab", "control character"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		_, err = ftp.Open(context.Background(), u, relay.Options{})
		t.Logf("%s: %v", tc.url, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %s: %v; want an error saying %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("open %s: error shows the password: %v", tc.url, err)
		}
	}
}

func TestBackend(t *testing.T) {
	t.Parallel()
	b := ftp.Backend()
	if len(b.Schemes) != 2 || b.Schemes[0] != "ftp" || b.Schemes[1] != "ftps" || b.Open == nil || !strings.Contains(b.Usage, "ftps://") {
		t.Errorf("backend = %+v", b)
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	s := testserver.StartPureFTPd(t, "-n", "1000:1") // 1 MB
	r, disk := open(t, s, "ftp", relay.Options{})
	relaytest.MustPut(t, r, "small", make([]byte, 1000))
	err := r.Put(context.Background(), "big", relay.BytesPayload(make([]byte, 3<<20)))
	t.Logf("put over quota: %v", err)
	if !errors.Is(err, relay.ErrQuota) {
		t.Fatalf("put over the quota: %v; want relay.ErrQuota", err)
	}
	if got := relaytest.ListNames(t, r, ""); len(got) != 1 || got[0] != "small" {
		t.Errorf("after a put over the quota: list = %q, want [small]", got)
	}
	if raw := testserver.ListFiles(t, disk); len(raw) != 1 {
		t.Errorf("after a put over the quota, the server holds %q", raw)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	s := testserver.StartPureFTPd(t)
	r, disk := open(t, s, "ftp", relay.Options{})
	relaytest.MustPut(t, r, "d/old", []byte("old"))
	for _, d := range []string{disk, filepath.Join(disk, "d")} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, name := range []string{"new", "d/new", "d/old", "e/new"} {
		err := r.Put(ctx, name, relay.BytesPayload([]byte("x")))
		t.Logf("put %s into a read-only directory: %v", name, err)
		if !errors.Is(err, fs.ErrPermission) || relay.IsPermanent(err) == false {
			t.Errorf("put %q into a read-only directory: %v; want a permanent fs.ErrPermission", name, err)
		}
	}
	if err := r.Delete(ctx, "d/old"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("delete in a read-only directory: %v; want fs.ErrPermission", err)
	}
	if err := r.(relay.Renamer).Rename(ctx, "d/old", "d/new"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("rename in a read-only directory: %v; want fs.ErrPermission", err)
	}
	if got := relaytest.MustGet(t, r, "d/old"); string(got) != "old" {
		t.Errorf("d/old = %q", got)
	}
}
