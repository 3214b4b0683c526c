package testserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// FTPServer is an FTP server started on 127.0.0.1 for one test binary or
// test. All its state lives in a TempDir and it is stopped on cleanup.
type FTPServer struct {
	// Kind is "pure-ftpd", "vsftpd" or "proftpd".
	Kind string
	// Addr is host:port of the control connection.
	Addr string
	// Root is the directory on disk that is User's FTP root ("/").
	Root string
	// Dir is the writable directory below the FTP root where test relays
	// go, slash-separated and without slashes around it ("" for the root
	// itself; "pub" for vsftpd's anonymous user).
	Dir string
	// User and Password log in. vsftpd's anonymous user takes any password;
	// it is set to the shared test Password so that leak checks still work.
	User, Password string
	// TLS tells whether the server offers explicit FTPS (AUTH TLS). When it
	// does, Cert is the server's self-signed certificate.
	TLS  bool
	Cert Cert
	// Process is the running server.
	Process *Process
	// restart starts the server again as it was started (pure-ftpd).
	restart func(t testing.TB) *Process
}

// Restart starts a stopped server again, on the same address with the same
// users and files: the relay comes back after an outage.
func (s *FTPServer) Restart(t testing.TB) {
	t.Helper()
	if s.restart == nil {
		t.Fatalf("%s cannot be restarted by the test harness", s.Kind)
	}
	s.Process.Stop()
	s.Process = s.restart(t)
}

// NewRelayDir returns the URL of a fresh, not yet existing directory below
// s.Dir for scheme ("ftp" or "ftps"), with the user but without the
// password, and the directory on disk it maps to. Each call gives a new
// random directory, so that every test gets an empty relay.
func (s *FTPServer) NewRelayDir(t testing.TB, scheme string) (*url.URL, string) {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "relay-" + hex.EncodeToString(b[:])
	rel := path.Join(s.Dir, name)
	u := &url.URL{Scheme: scheme, User: url.User(s.User), Host: s.Addr, Path: "/" + rel}
	return u, filepath.Join(s.Root, filepath.FromSlash(rel))
}

// Log returns what the server printed, for failure messages.
func (s *FTPServer) Log() string {
	return s.Process.Output()
}

// cryptPassword hashes pw as SHA-512 crypt. pure-pw's default (argon2id)
// costs about three seconds per login; this costs milliseconds.
func cryptPassword(t testing.TB, pw string) string {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		Unavailable(t, "openssl is not installed")
	}
	out, err := exec.Command(openssl, "passwd", "-6", pw).Output()
	if err != nil {
		t.Fatalf("openssl passwd: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func writeTemplate(t testing.TB, file string, tmpl *template.Template, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("config template %s: %v", tmpl.Name(), err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// passivePorts is the size of each server's passive port range: the
// conformance suite opens a few relays of four connections each, and
// ports linger after use.
const passivePorts = 40

// StartPureFTPd starts pure-ftpd with a virtual user (puredb) whose root is
// Root, offering explicit FTPS with a self-signed certificate (TLS optional,
// any version). extra are more pure-ftpd options, e.g. "-n", "1000:1" for
// a quota of 1000 files and 1 MB.
func StartPureFTPd(t testing.TB, extra ...string) *FTPServer {
	t.Helper()
	root := filepath.Join(TempDir(t), "root")
	mkdirs(t, root)
	return StartPureFTPdAt(t, root, extra...)
}

// StartPureFTPdAt is StartPureFTPd with root, an existing directory, as
// the user's root: a small file system, for one.
func StartPureFTPdAt(t testing.TB, root string, extra ...string) *FTPServer {
	t.Helper()
	bin := LookBinary(t, "pure-ftpd")
	pw := LookBinary(t, "pure-pw")
	dir := TempDir(t)
	Chown(t, root, "nobody:nogroup")
	s := &FTPServer{Kind: "pure-ftpd", Root: root, User: User, Password: Password, TLS: true, Cert: NewCert(t, dir)}
	// The "/./" ending of the home directory chroots the user there.
	line := fmt.Sprintf("%s:%s:65534:65534::%s/./::::::::::::\n", User, cryptPassword(t, Password), root)
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	pdb := filepath.Join(dir, "pureftpd.pdb")
	if out, err := exec.Command(pw, "mkdb", pdb, "-f", passwd).CombinedOutput(); err != nil {
		t.Fatalf("pure-pw mkdb: %v: %s", err, out)
	}
	port := FreePort(t)
	lo := FreePortRange(t, passivePorts)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{
		"-S", fmt.Sprintf("127.0.0.1,%d", port),
		"-l", "puredb:" + pdb,
		"-E",         // no anonymous logins
		"-A",         // chroot everyone
		"-H",         // no reverse DNS
		"-f", "none", // no syslog
		"-p", fmt.Sprintf("%d:%d", lo, lo+passivePorts-1),
		"-P", "127.0.0.1",
		"-Y", "1", // TLS optional
		"-2", s.Cert.CombinedFile,
	}
	args = append(args, extra...)
	s.restart = func(t testing.TB) *Process { return Start(t, port, bin, args...) }
	s.Process = s.restart(t)
	return s
}

var vsftpdConf = template.Must(template.New("vsftpd.conf").Parse(`listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={{.Port}}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
anon_root={{.Root}}
ftp_username=daemon
no_anon_password=YES
pasv_min_port={{.PasvLo}}
pasv_max_port={{.PasvHi}}
pasv_address=127.0.0.1
secure_chroot_dir={{.Empty}}
seccomp_sandbox=NO
mdtm_write=YES
max_per_ip=0
max_clients=0
xferlog_enable=YES
vsftpd_log_file={{.Log}}
`))

// StartVsftpd starts vsftpd with a writable anonymous area: log in as
// "anonymous" with any password and write below /pub (Dir). It needs no
// change outside its TempDir. It offers no TLS, no MLSD and no MLST, and
// keeps vsftpd's default of hiding dotfiles from LIST (force_dot_files=NO),
// so clients must ask for them with LIST -a.
func StartVsftpd(t testing.TB) *FTPServer {
	t.Helper()
	bin := LookBinary(t, "vsftpd")
	dir := TempDir(t)
	// vsftpd refuses a chroot that its (anonymous) user can write to, so
	// the root stays root's and only pub belongs to that user (daemon: a
	// user whose home directory exists; nobody's does not).
	root := filepath.Join(dir, "root")
	empty := filepath.Join(dir, "empty")
	mkdirs(t, filepath.Join(root, "pub"), empty)
	Chown(t, filepath.Join(root, "pub"), "daemon:daemon")
	port := FreePort(t)
	lo := FreePortRange(t, passivePorts)
	conf := filepath.Join(dir, "vsftpd.conf")
	writeTemplate(t, conf, vsftpdConf, map[string]any{
		"Port": port, "Root": root, "PasvLo": lo, "PasvHi": lo + passivePorts - 1,
		"Empty": empty, "Log": filepath.Join(dir, "xfer.log"),
	})
	s := &FTPServer{Kind: "vsftpd", Addr: fmt.Sprintf("127.0.0.1:%d", port), Root: root, Dir: "pub",
		User: "anonymous", Password: Password}
	s.Process = Start(t, port, bin, conf)
	return s
}

var vsftpdUserConf = template.Must(template.New("vsftpd.conf").Parse(`listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={{.Port}}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
guest_enable=YES
guest_username=daemon
virtual_use_local_privs=YES
local_root={{.Root}}
chroot_local_user=YES
allow_writeable_chroot=YES
pam_service_name={{.PAMService}}
local_umask=022
pasv_min_port={{.PasvLo}}
pasv_max_port={{.PasvHi}}
pasv_address=127.0.0.1
secure_chroot_dir={{.Empty}}
seccomp_sandbox=NO
mdtm_write=YES
max_per_ip=0
max_clients=0
ssl_enable=YES
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=YES
ssl_ciphers=HIGH
rsa_cert_file={{.CertFile}}
rsa_private_key_file={{.KeyFile}}
xferlog_enable=YES
vsftpd_log_file={{.Log}}
`))

// StartVsftpdUser starts vsftpd with a virtual user (PAM pam_pwdfile) whose
// root is Root, offering explicit FTPS that works with TLS 1.2 at most and
// requires data connections to resume the control connection's TLS session
// (require_ssl_reuse=YES, vsftpd's default). It needs one file outside its
// TempDir: a PAM service in /etc/pam.d, removed on cleanup, so it needs
// root and libpam-pwdfile.
func StartVsftpdUser(t testing.TB) *FTPServer {
	t.Helper()
	bin := LookBinary(t, "vsftpd")
	found := false
	for _, d := range []string{"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security", "/lib/security", "/usr/lib/security"} {
		if _, err := os.Stat(filepath.Join(d, "pam_pwdfile.so")); err == nil {
			found = true
		}
	}
	if !found {
		Unavailable(t, "pam_pwdfile.so (libpam-pwdfile) is not installed")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "vsftpd with a password needs root, to add a PAM service")
	}
	dir := TempDir(t)
	root := filepath.Join(dir, "root")
	empty := filepath.Join(dir, "empty")
	mkdirs(t, root, empty)
	Chown(t, root, "daemon:daemon")
	s := &FTPServer{Kind: "vsftpd", Root: root, User: User, Password: Password, TLS: true,
		Cert: NewCert(t, dir)}
	users := filepath.Join(dir, "users.pwd")
	if err := os.WriteFile(users, []byte(User+":"+cryptPassword(t, Password)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Linux-PAM lower-cases service names: an upper-case letter would
	// make every login fail with "530 Login incorrect".
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	service := "escalefs-test-" + hex.EncodeToString(b[:])
	pamFile := filepath.Join("/etc/pam.d", service)
	pam := fmt.Sprintf("auth required pam_pwdfile.so pwdfile=%s\naccount required pam_permit.so\n", users)
	if err := os.WriteFile(pamFile, []byte(pam), 0o644); err != nil {
		Unavailable(t, "cannot add a PAM service for vsftpd: %v", err)
	}
	t.Cleanup(func() { os.Remove(pamFile) })
	port := FreePort(t)
	lo := FreePortRange(t, passivePorts)
	conf := filepath.Join(dir, "vsftpd.conf")
	writeTemplate(t, conf, vsftpdUserConf, map[string]any{
		"Port": port, "Root": root, "PasvLo": lo, "PasvHi": lo + passivePorts - 1, "Empty": empty,
		"PAMService": service, "CertFile": s.Cert.CertFile, "KeyFile": s.Cert.KeyFile,
		"Log": filepath.Join(dir, "xfer.log"),
	})
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.Process = Start(t, port, bin, conf)
	return s
}

var proftpdConf = template.Must(template.New("proftpd.conf").Parse(`ServerName "relaytest"
ServerType standalone
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
Port {{.Port}}
PassivePorts {{.PasvLo}} {{.PasvHi}}
MaxInstances 100
User nobody
Group nogroup
Umask 022
UseReverseDNS off
WtmpLog off
PidFile {{.Run}}/proftpd.pid
ScoreboardFile {{.Run}}/proftpd.scoreboard
DelayTable none
SystemLog {{.Run}}/system.log
TransferLog {{.Run}}/xfer.log
ModulePath {{.Modules}}
LoadModule mod_tls.c
AuthOrder mod_auth_file.c
AuthUserFile {{.Passwd}}
AuthPAM off
RequireValidShell off
DefaultRoot ~
AllowOverwrite on
AllowStoreRestart on
AllowRetrieveRestart on
HiddenStores on
DeleteAbortedStores on
ListOptions "-a"
SetEnv TZ UTC
<IfModule mod_tls.c>
  TLSEngine on
  TLSProtocol TLSv1.2
  TLSRSACertificateFile {{.CertFile}}
  TLSRSACertificateKeyFile {{.KeyFile}}
  TLSRequired off
  TLSOptions NoSessionReuseRequired
  TLSLog {{.Run}}/tls.log
</IfModule>
`))

// StartProFTPd starts proftpd with a user from an AuthUserFile whose root is
// Root, with HiddenStores on (uploads go to ".in.NAME." and are renamed at
// the end) and explicit FTPS limited to TLS 1.2: with TLS 1.3, uploads from
// Go clients fail with "426 Transfer aborted".
func StartProFTPd(t testing.TB) *FTPServer {
	t.Helper()
	bin := LookBinary(t, "proftpd")
	modules := filepath.Join(filepath.Dir(filepath.Dir(bin)), "lib", "proftpd")
	if _, err := os.Stat(filepath.Join(modules, "mod_tls.so")); err != nil {
		Unavailable(t, "proftpd's mod_tls.so is not installed in %s", modules)
	}
	dir := TempDir(t)
	root := filepath.Join(dir, "root")
	run := filepath.Join(dir, "run")
	mkdirs(t, root, run)
	Chown(t, root, "nobody:nogroup")
	s := &FTPServer{Kind: "proftpd", Root: root, User: User, Password: Password, TLS: true,
		Cert: NewCert(t, dir)}
	passwd := filepath.Join(dir, "passwd")
	line := fmt.Sprintf("%s:%s:65534:65534::%s:/bin/false\n", User, cryptPassword(t, Password), root)
	if err := os.WriteFile(passwd, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	lo := FreePortRange(t, passivePorts)
	conf := filepath.Join(dir, "proftpd.conf")
	writeTemplate(t, conf, proftpdConf, map[string]any{
		"Port": port, "PasvLo": lo, "PasvHi": lo + passivePorts - 1, "Run": run, "Modules": modules,
		"Passwd": passwd, "CertFile": s.Cert.CertFile, "KeyFile": s.Cert.KeyFile,
	})
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.Process = Start(t, port, bin, "-n", "-q", "-c", conf)
	return s
}
