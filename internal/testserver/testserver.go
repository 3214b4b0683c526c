// Package testserver starts real relay servers (pure-ftpd, vsftpd, proftpd,
// Apache, nginx) on 127.0.0.1 for tests, each with a temporary root, a test
// user and a self-signed certificate, and stops them when the test ends.
//
// A server that is not installed makes the test skip on a developer's
// machine and fail when CI=true, so that CI never passes by skipping.
// scripts/install-test-deps.sh installs everything.
package testserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// User and Password are the credentials of every test server's user.
const (
	User     = "tuser"
	Password = "pass-123"
)

// ExtraDirEnv names a directory into which packages that conflict with the
// installed FTP server were unpacked (vsftpd, proftpd); binaries are looked
// up under $ExtraDirEnv/usr/sbin besides PATH and /usr/sbin.
const ExtraDirEnv = "ESCALEFS_TESTBIN"

// DefaultExtraDir is used when ExtraDirEnv is unset.
const DefaultExtraDir = "/opt/escalefs-testbin"

// InCI reports whether the tests run under CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test on a developer machine and fails it under CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: a missing test server is a failure; run scripts/install-test-deps.sh)", msg)
	}
	t.Skipf("%s; run scripts/install-test-deps.sh to install it", msg)
}

// ExtraDir returns the directory of unpacked extra packages.
func ExtraDir() string {
	if d := os.Getenv(ExtraDirEnv); d != "" {
		return d
	}
	return DefaultExtraDir
}

// LookBinary finds a server binary in PATH, /usr/sbin or the extra
// directory, or calls Unavailable.
func LookBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", filepath.Join(ExtraDir(), "usr/sbin")} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	Unavailable(t, "%s is not installed", name)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreePortRange returns the first of n consecutive ports that were free a
// moment ago (for passive FTP data connections).
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + int(randUint(20000))
		ok := true
		var ls []net.Listener
		for i := 0; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func randUint(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// TempDir returns a new directory that unprivileged server workers can
// traverse (mktemp-style 0700 directories are not).
func TempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "escalefs-srv-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Cert is a self-signed certificate for localhost and 127.0.0.1.
type Cert struct {
	CertFile, KeyFile string // PEM files
	CombinedFile      string // certificate followed by key (pure-ftpd)
	Fingerprint       string // hex SHA-256 of the DER certificate
}

// NewCert writes a fresh self-signed certificate into dir.
func NewCert(t testing.TB, dir string) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(randUint(1 << 62)),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	c := Cert{
		CertFile:     filepath.Join(dir, "cert.pem"),
		KeyFile:      filepath.Join(dir, "key.pem"),
		CombinedFile: filepath.Join(dir, "combined.pem"),
		Fingerprint:  relay.CertFingerprint(der),
	}
	for f, b := range map[string][]byte{c.CertFile: certPEM, c.KeyFile: keyPEM, c.CombinedFile: append(append([]byte{}, certPEM...), keyPEM...)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Process is a server started in the foreground by Start.
type Process struct {
	cmd  *exec.Cmd
	log  SyncBuffer
	done chan struct{}
}

// SyncBuffer is a bytes.Buffer that is safe for concurrent use, for
// collecting the output of servers and loggers in tests.
type SyncBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs a server command, waits until it accepts TCP on 127.0.0.1:port
// and registers its termination with t.Cleanup. The server's output is shown
// when it fails to start.
func Start(t testing.TB, port int, name string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.log
	p.cmd.Stderr = &p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on port %d: %v\n%s", name, port, p.cmd.ProcessState, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on port %d within 15s\n%s", name, port, p.log.String())
		}
	}
}

// Stop sends SIGTERM to the server's process group and waits for it,
// escalating to SIGKILL after five seconds. It is idempotent.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (p *Process) Kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Output returns what the server printed so far.
func (p *Process) Output() string { return p.log.String() }

// ListFiles returns every regular file under root as slash-separated names
// relative to root, temporary files included. Suites use it to check that
// nothing is left behind on the server's disk.
func ListFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// Chown gives path to the named system user (servers drop privileges).
func Chown(t testing.TB, path, user string) {
	t.Helper()
	out, err := exec.Command("chown", "-R", user, path).CombinedOutput()
	if err != nil {
		t.Fatalf("chown %s %s: %v: %s", user, path, err, strings.TrimSpace(string(out)))
	}
}
