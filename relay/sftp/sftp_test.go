package sftp_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
	"github.com/escalefs/escalefs/relay/sftp"
)

// noEnv hides the developer's ssh-agent and password variables.
func noEnv(string) string { return "" }

// keyOpts log in with the server's client key only.
func keyOpts(s *testserver.SSHServer) relay.Options {
	return relay.Options{Getenv: noEnv, NetrcFile: os.DevNull,
		SSH: relay.SSHOptions{KeyFile: s.KeyFile, KnownHostsFile: s.KnownHosts}}
}

func open(t *testing.T, u *url.URL, opts relay.Options) (relay.Relay, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := sftp.Open(ctx, u, opts)
	if err == nil {
		t.Cleanup(func() { r.Close() })
	}
	return r, err
}

func conformance(s *testserver.SSHServer, opts relay.Options, secret string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		relaytest.Run(t, relaytest.Config{
			Secret: secret,
			New: func(t *testing.T) relaytest.Fixture {
				u, disk := s.NewRelayDir(t)
				r, err := open(t, u, opts)
				if err != nil {
					t.Fatalf("open %s: %v\nserver output:\n%s", u, err, s.Process.Output())
				}
				return relaytest.Fixture{Relay: r, Raw: func(t testing.TB) []string { return testserver.ListFiles(t, disk) }}
			},
		})
	}
}

// serveAgent runs an in-process ssh-agent holding key on a socket in a
// temporary directory and returns the socket's path.
func serveAgent(t *testing.T, key any) string {
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(kr, c); c.Close() }()
		}
	}()
	return sock
}

func TestSSHD(t *testing.T) {
	t.Parallel()
	s := testserver.StartSSHD(t)
	t.Run("Key", conformance(s, keyOpts(s), ""))
	t.Run("OneConnection", func(t *testing.T) {
		opts := keyOpts(s)
		opts.MaxConns = 1
		conformance(s, opts, "")(t)
	})
	t.Run("Agent", func(t *testing.T) {
		sock := serveAgent(t, s.Key)
		opts := relay.Options{NetrcFile: os.DevNull, Getenv: func(k string) string {
			if k == sftp.AgentEnv {
				return sock
			}
			return ""
		}, SSH: relay.SSHOptions{KnownHostsFile: s.KnownHosts}}
		conformance(s, opts, "")(t)
	})
	t.Run("PassphraseKeyInAgent", func(t *testing.T) {
		file, key, _ := testserver.NewKey(t, t.TempDir(), "id_locked", "sesame")
		u, disk := s.NewRelayDir(t)
		// The server does not know this key: add it first.
		pub, _ := os.ReadFile(file + ".pub")
		addAuthorized(t, s, pub)
		sock := serveAgent(t, key)
		r, err := open(t, u, relay.Options{NetrcFile: os.DevNull, Getenv: func(k string) string {
			if k == sftp.AgentEnv {
				return sock
			}
			return ""
		}, SSH: relay.SSHOptions{KeyFile: file, KnownHostsFile: s.KnownHosts}})
		if err != nil {
			t.Fatalf("a passphrase-protected key held by the agent: %v", err)
		}
		relaytest.MustPut(t, r, "x", []byte("via agent"))
		if _, err := os.Stat(filepath.Join(disk, "x")); err != nil {
			t.Error(err)
		}
	})
	t.Run("PassphraseKey", func(t *testing.T) {
		file, _, _ := testserver.NewKey(t, t.TempDir(), "id_locked", "sesame")
		u, _ := s.NewRelayDir(t)
		_, err := open(t, u, relay.Options{Getenv: noEnv, NetrcFile: os.DevNull,
			SSH: relay.SSHOptions{KeyFile: file, KnownHostsFile: s.KnownHosts}})
		t.Logf("passphrase-protected key: %v", err)
		if err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), "ssh-add") {
			t.Errorf("passphrase-protected key without an agent: %v; want an error saying so and suggesting ssh-add", err)
		}
	})
	t.Run("Password", func(t *testing.T) {
		if s.Password == "" {
			t.Skip("password logins need sshd to run as root")
		}
		conformance(s, relay.Options{Getenv: noEnv, NetrcFile: os.DevNull, Password: s.Password,
			SSH: relay.SSHOptions{KnownHostsFile: s.KnownHosts}}, s.Password)(t)
	})
	t.Run("WrongCredentials", func(t *testing.T) {
		other, _, _ := testserver.NewKey(t, t.TempDir(), "id_other", "")
		u, _ := s.NewRelayDir(t)
		const wrong = "wrong-Secret-42"
		_, err := open(t, u, relay.Options{Getenv: noEnv, NetrcFile: os.DevNull, Password: wrong,
			SSH: relay.SSHOptions{KeyFile: other, KnownHostsFile: s.KnownHosts}})
		t.Logf("wrong credentials: %v", err)
		if !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
			t.Fatalf("wrong key and password: %v; want a permanent relay.ErrAuth", err)
		}
		msg := err.Error()
		if strings.Contains(msg, wrong) {
			t.Errorf("error shows the password: %s", msg)
		}
		if !strings.Contains(msg, s.User) || !strings.Contains(msg, other) || !strings.Contains(msg, "password") {
			t.Errorf("error %q should name the user, the key file and the password attempt", msg)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		port := testserver.FreePort(t)
		u := &url.URL{Scheme: "sftp", User: url.User(s.User), Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/x"}
		_, err := open(t, u, keyOpts(s))
		t.Logf("closed port: %v", err)
		if !errors.Is(err, relay.ErrUnreachable) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
			t.Errorf("closed port: %v; want relay.ErrUnreachable naming the address", err)
		}
	})
	t.Run("HostKeys", func(t *testing.T) { testHostKeys(t, s) })
	t.Run("Quota", func(t *testing.T) {
		u, _ := s.NewRelayDir(t)
		r, err := open(t, u, keyOpts(s))
		if err != nil {
			t.Fatal(err)
		}
		usage, err := r.(relay.Quotaer).Quota(context.Background())
		if err != nil || usage.Total <= 0 || usage.Used < 0 || usage.Used > usage.Total {
			t.Errorf("quota: %+v, %v", usage, err)
		}
	})
	t.Run("RemoveTemp", func(t *testing.T) {
		u, disk := s.NewRelayDir(t)
		r, err := open(t, u, keyOpts(s))
		if err != nil {
			t.Fatal(err)
		}
		relaytest.MustPut(t, r, "d/keep", []byte("k"))
		stale := filepath.Join(disk, "d", relay.TempPrefix+"0011223344556677")
		if err := os.WriteFile(stale, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := r.(relay.TempRemover).RemoveTemp(context.Background(), "", time.Now().Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("RemoveTemp: %d, %v; want 1", n, err)
		}
		if got := testserver.ListFiles(t, disk); len(got) != 1 || got[0] != "d/keep" {
			t.Errorf("left on disk: %v", got)
		}
	})
	t.Run("BrokenConnection", func(t *testing.T) {
		// A pooled connection that the server dropped is replaced: the
		// call fails with a transient error, and the next one works.
		u, _ := s.NewRelayDir(t)
		opts := keyOpts(s)
		opts.MaxConns = 1
		r, err := open(t, u, opts)
		if err != nil {
			t.Fatal(err)
		}
		relaytest.MustPut(t, r, "a", []byte("1"))
		sftp.DropConnections(r)
		_, err = r.Stat(context.Background(), "a")
		if err != nil && relay.IsPermanent(err) {
			t.Fatalf("stat on a dropped connection: %v; want success or a transient error", err)
		}
		if _, err := r.Stat(context.Background(), "a"); err != nil {
			t.Fatalf("stat after reconnecting: %v", err)
		}
	})
}

// addAuthorized appends a public key to the server's authorized_keys.
func addAuthorized(t *testing.T, s *testserver.SSHServer, pub []byte) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pub); err != nil {
		t.Fatal(err)
	}
}

func testHostKeys(t *testing.T, s *testserver.SSHServer) {
	fp := ssh.FingerprintSHA256(s.HostKey)
	try := func(t *testing.T, o relay.SSHOptions) error {
		u, _ := s.NewRelayDir(t)
		o.KeyFile = s.KeyFile
		_, err := open(t, u, relay.Options{Getenv: noEnv, NetrcFile: os.DevNull, SSH: o})
		t.Logf("open with %+v: %v", o, err)
		return err
	}
	t.Run("Unknown", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, nil, 0o644)
		err := try(t, relay.SSHOptions{KnownHostsFile: empty})
		if !errors.Is(err, sftp.ErrHostKey) || !relay.IsPermanent(err) {
			t.Fatalf("unknown host key: %v; want a permanent sftp.ErrHostKey", err)
		}
		for _, want := range []string{"unknown", fp, "ssh-keyscan -p " + strconv.Itoa(s.Port) + " 127.0.0.1 >> " + empty, "--host-key-sha256"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("Changed", func(t *testing.T) {
		_, _, other := testserver.NewKey(t, t.TempDir(), "other", "")
		kh := filepath.Join(t.TempDir(), "known_hosts")
		line := "[127.0.0.1]:" + strconv.Itoa(s.Port) + " " + string(ssh.MarshalAuthorizedKey(other))
		os.WriteFile(kh, []byte(line), 0o644)
		err := try(t, relay.SSHOptions{KnownHostsFile: kh})
		if !errors.Is(err, sftp.ErrHostKey) {
			t.Fatalf("changed host key: %v; want sftp.ErrHostKey", err)
		}
		for _, want := range []string{"CHANGED", fp, ssh.FingerprintSHA256(other), kh + ":1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("Known", func(t *testing.T) {
		if err := try(t, relay.SSHOptions{KnownHostsFile: s.KnownHosts}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Pinned", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, nil, 0o644)
		if err := try(t, relay.SSHOptions{KnownHostsFile: empty, HostKeySHA256: fp}); err != nil {
			t.Fatalf("pinned fingerprint %s: %v", fp, err)
		}
		// Without the prefix, with base64 padding.
		if err := try(t, relay.SSHOptions{KnownHostsFile: empty, HostKeySHA256: strings.TrimPrefix(fp, "SHA256:") + "="}); err != nil {
			t.Fatalf("pinned fingerprint without prefix: %v", err)
		}
	})
	t.Run("WrongPin", func(t *testing.T) {
		_, _, other := testserver.NewKey(t, t.TempDir(), "other", "")
		pin := ssh.FingerprintSHA256(other)
		err := try(t, relay.SSHOptions{KnownHostsFile: s.KnownHosts, HostKeySHA256: pin})
		if !errors.Is(err, sftp.ErrHostKey) || !strings.Contains(err.Error(), pin) || !strings.Contains(err.Error(), fp) {
			t.Errorf("wrong pin: %v; want sftp.ErrHostKey naming both fingerprints", err)
		}
	})
	t.Run("BadPin", func(t *testing.T) {
		err := try(t, relay.SSHOptions{HostKeySHA256: "SHA256:nonsense"})
		if err == nil || !strings.Contains(err.Error(), "fingerprint") {
			t.Errorf("malformed pin: %v", err)
		}
	})
}
