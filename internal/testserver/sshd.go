package testserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSHUser is the system account that password logins use when the tests
// run as root. It is created on first use (without a home directory or a
// login shell) and kept.
const SSHUser = "escalefs-test"

// SSHServer is an OpenSSH server started by StartSSHD, offering SFTP
// (internal-sftp) on 127.0.0.1.
type SSHServer struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// Port is the listening port.
	Port int
	// User is the account to log in as: SSHUser as root, the current
	// user otherwise.
	User string
	// Password is User's password, or "" when password logins cannot
	// work (sshd does not run as root).
	Password string
	// KeyFile is an unencrypted private key that the server accepts.
	KeyFile string
	// Key is KeyFile's key.
	Key ed25519.PrivateKey
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// KnownHosts is a known_hosts file that holds HostKey for Addr.
	KnownHosts string
	// Dir holds the configuration, keys and relay directories.
	Dir string
	// Process is the running sshd.
	Process *Process
}

// NewRelayDir returns the sftp:// URL (with User, without password) and the
// on-disk path of a fresh directory that User may write. The directory does
// not exist yet; opening a relay on the URL creates it.
func (s *SSHServer) NewRelayDir(t testing.TB) (*url.URL, string) {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	parent := filepath.Join(s.Dir, "relays")
	disk := filepath.Join(parent, "t-"+hex.EncodeToString(b[:]))
	return &url.URL{Scheme: "sftp", User: url.User(s.User), Host: s.Addr, Path: disk}, disk
}

// NewKey writes a fresh ed25519 key pair into dir, the private key
// encrypted with passphrase unless it is empty, and returns the private
// key file, the key and its public key.
func NewKey(t testing.TB, dir, name, passphrase string) (string, ed25519.PrivateKey, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, name)
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, name, []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".pub", ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, priv, sp
}

const sshdConf = `ListenAddress 127.0.0.1:%d
HostKey %s
PidFile none
UsePAM no
StrictModes no
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication %s
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers %s
Subsystem sftp internal-sftp
MaxStartups 200
MaxSessions 50
LogLevel VERBOSE
`

// StartSSHD starts Debian's OpenSSH server (/usr/sbin/sshd) on a free port
// of 127.0.0.1 with a fresh ed25519 host key and a client key it accepts.
// As root it logs in SSHUser, with the key or with Password; otherwise it
// logs in only the current user and only with the key (password checks
// need root). It stops when the test ends.
func StartSSHD(t testing.TB) *SSHServer {
	t.Helper()
	bin := LookBinary(t, "sshd")
	dir := TempDir(t)
	s := &SSHServer{Dir: dir, Port: FreePort(t)}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	hostFile, _, hostPub := NewKey(t, dir, "ssh_host_ed25519_key", "")
	s.HostKey = hostPub
	s.KeyFile, s.Key, _ = NewKey(t, dir, "id_ed25519", "")
	pub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, ssh.MarshalAuthorizedKey(hostPub))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	relays := filepath.Join(dir, "relays")
	if err := os.Mkdir(relays, 0o755); err != nil {
		t.Fatal(err)
	}
	passwordAuth := "no"
	if os.Geteuid() == 0 {
		s.User, s.Password = SSHUser, Password
		ensureSSHUser(t)
		Chown(t, relays, SSHUser)
		passwordAuth = "yes"
		// The privilege separation directory, which the package's
		// service unit creates.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		s.User = u.Username
	}
	conf := filepath.Join(dir, "sshd_config")
	text := fmt.Sprintf(sshdConf, s.Port, hostFile, authorized, passwordAuth, s.User)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Process = Start(t, s.Port, bin, "-D", "-e", "-f", conf)
	return s
}

// ensureSSHUser creates SSHUser if needed and sets its password, under a
// lock shared by concurrent test processes.
func ensureSSHUser(t testing.TB) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "escalefs-test-user.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := user.Lookup(SSHUser); err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", SSHUser).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd %s: %v: %s", SSHUser, err, strings.TrimSpace(string(out)))
		}
	}
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(SSHUser + ":" + Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd %s: %v: %s", SSHUser, err, strings.TrimSpace(string(out)))
	}
}
