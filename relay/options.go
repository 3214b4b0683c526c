package relay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PasswordEnv is the environment variable that may hold the relay password.
const PasswordEnv = "ESCALEFS_PASSWORD"

// Options configure how a backend connects. The zero value is usable.
type Options struct {
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger

	// Password, if set, is used when the URL holds none.
	Password string
	// PasswordFile names a file holding the password (first line), or
	// lines "user:password" as Escale's credential files did.
	PasswordFile string
	// Getenv looks up environment variables (PasswordEnv); nil means os.Getenv.
	Getenv func(string) string
	// NetrcFile is the netrc file consulted last; "" means ~/.netrc.
	NetrcFile string

	// TLS configures ftps:// and https:// connections.
	TLS TLSOptions
	// SSH configures sftp:// connections.
	SSH SSHOptions

	// CredentialsFile is a backend-specific credential file, e.g. the
	// Google Drive OAuth token or service-account JSON.
	CredentialsFile string

	// S3Endpoint is the S3 service to use instead of Amazon's, as a URL
	// (http://host:port for plain HTTP) or host[:port] (HTTPS).
	S3Endpoint string
	// S3Region is the S3 region; "" means the store's default.
	S3Region string

	// MaxConns caps the connections a pooled backend keeps (0: default).
	MaxConns int
	// UpLimit and DownLimit cap the bytes per second sent to and received
	// from the relay, over all connections (0: no limit).
	UpLimit, DownLimit int64
	// Timeout bounds connecting and each network wait (0: 30s).
	Timeout time.Duration
}

// SSHOptions configure SSH client keys and host key checks (sftp://).
type SSHOptions struct {
	// KeyFile is a private key file to log in with (after the keys of
	// ssh-agent); "" means OpenSSH's default identity files ($HOME/.ssh/id_*).
	KeyFile string
	// KnownHostsFile lists the trusted host keys; "" means
	// ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts).
	KnownHostsFile string
	// HostKeySHA256 accepts exactly the host key with this fingerprint
	// ("SHA256:" and base64, as ssh-keygen -l prints it) instead of
	// consulting known_hosts.
	HostKeySHA256 string
}

// Log returns the logger, or one that discards everything.
func (o *Options) Log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// ConnTimeout returns Timeout or its default.
func (o *Options) ConnTimeout() time.Duration {
	if o.Timeout <= 0 {
		return 30 * time.Second
	}
	return o.Timeout
}

// TLSOptions configure certificate checks and client certificates.
type TLSOptions struct {
	// InsecureSkipVerify turns certificate verification off (verify-ssl = false).
	InsecureSkipVerify bool
	// PinSHA256 accepts exactly the server certificate whose DER encoding
	// has this SHA-256 digest (hex, with or without colons, or base64),
	// whoever signed it. It is how a self-signed certificate is trusted.
	PinSHA256 string
	// CAFile is a PEM file of certificates to trust instead of the system's.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key.
	CertFile, KeyFile string
	// MinVersion and MaxVersion restrict the protocol: "1.0" … "1.3"
	// ("" leaves Go's default).
	MinVersion, MaxVersion string
}

// Config builds a tls.Config for serverName. Errors name the bad option.
func (t TLSOptions) Config(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: t.InsecureSkipVerify}
	var err error
	if cfg.MinVersion, err = tlsVersion("ssl minimum version", t.MinVersion); err != nil {
		return nil, err
	}
	if cfg.MaxVersion, err = tlsVersion("ssl version", t.MaxVersion); err != nil {
		return nil, err
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("a client certificate needs both a certificate file and a key file")
		}
		c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s with key %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	if t.PinSHA256 != "" {
		pin, err := parsePin(t.PinSHA256)
		if err != nil {
			return nil, err
		}
		cfg.InsecureSkipVerify = true // replaced by the pin check below
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: server sent no certificate", ErrTLS)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], pin) {
				return fmt.Errorf("%w: server certificate SHA-256 %s does not match the pinned %s",
					ErrTLS, hex.EncodeToString(got[:]), hex.EncodeToString(pin))
			}
			return nil
		}
	}
	return cfg, nil
}

// CertFingerprint returns the hex SHA-256 of a DER certificate, the form
// PinSHA256 accepts.
func CertFingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

func parsePin(s string) ([]byte, error) {
	clean := strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(s), "sha256:"), ":", "")
	if b, err := hex.DecodeString(clean); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	return nil, fmt.Errorf("certificate pin %q: expected a SHA-256 digest in hex (64 digits) or base64", s)
}

func tlsVersion(what, v string) (uint16, error) {
	switch strings.TrimPrefix(strings.ToLower(v), "tlsv") {
	case "":
		return 0, nil
	case "1", "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%s %q: expected one of 1.0, 1.1, 1.2, 1.3", what, v)
}

// Credentials returns the user name and password for u. The password comes
// from the first of: the URL, Options.Password, Options.PasswordFile, the
// PasswordEnv environment variable, the netrc file. A missing password is
// not an error (anonymous FTP needs none); an unreadable password file is.
// defaultUser is used when neither the URL nor netrc names a user.
func (o *Options) Credentials(u *url.URL, defaultUser string) (user, pass string, err error) {
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			return user, p, nil
		}
	}
	if o.Password != "" {
		return orDefault(user, defaultUser), o.Password, nil
	}
	if o.PasswordFile != "" {
		p, err := o.passwordFromFile(user)
		if err != nil {
			return "", "", err
		}
		return orDefault(user, defaultUser), p, nil
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if p := getenv(PasswordEnv); p != "" {
		return orDefault(user, defaultUser), p, nil
	}
	nu, np, err := o.fromNetrc(u.Hostname(), user)
	if err != nil {
		return "", "", err
	}
	if np != "" || nu != "" {
		return orDefault(nu, defaultUser), np, nil
	}
	return orDefault(user, defaultUser), "", nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (o *Options) passwordFromFile(user string) (string, error) {
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("reading password file: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	if user != "" && len(lines) > 1 {
		for _, l := range lines {
			if u, p, ok := strings.Cut(strings.TrimRight(l, "\r"), ":"); ok && u == user {
				return p, nil
			}
		}
		return "", fmt.Errorf("password file %s: no line for user %q (expected \"user:password\" lines or a single password line)", o.PasswordFile, user)
	}
	return strings.TrimRight(lines[0], "\r"), nil
}

// fromNetrc finds the login and password of host in the netrc file. When
// user is set, only an entry with that login matches.
func (o *Options) fromNetrc(host, user string) (string, string, error) {
	file := o.NetrcFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", nil
		}
		file = filepath.Join(home, ".netrc")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) && o.NetrcFile == "" {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("reading netrc: %w", err)
	}
	var def, match *netrcEntry
	for _, e := range parseNetrc(b) {
		switch {
		case e.machine == "" && def == nil:
			def = &e
		case e.machine == host && (user == "" || e.login == user) && match == nil:
			match = &e
		}
	}
	if match == nil && def != nil && (user == "" || def.login == user) {
		match = def
	}
	if match == nil {
		return "", "", nil
	}
	return match.login, match.password, nil
}

type netrcEntry struct{ machine, login, password string }

// parseNetrc reads the tokens of a netrc file. "default" gives an entry with
// an empty machine; macdef bodies are skipped.
func parseNetrc(b []byte) []netrcEntry {
	var out []netrcEntry
	var cur *netrcEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Split(bufio.ScanLines)
	inMacro := false
	for sc.Scan() {
		line := sc.Text()
		if inMacro {
			if strings.TrimSpace(line) == "" {
				inMacro = false
			}
			continue
		}
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			if strings.HasPrefix(f[i], "#") {
				break
			}
			next := func() string {
				if i+1 < len(f) {
					i++
					return f[i]
				}
				return ""
			}
			switch f[i] {
			case "machine":
				out = append(out, netrcEntry{machine: next()})
				cur = &out[len(out)-1]
			case "default":
				out = append(out, netrcEntry{})
				cur = &out[len(out)-1]
			case "login":
				if cur != nil {
					cur.login = next()
				}
			case "password":
				if cur != nil {
					cur.password = next()
				}
			case "account":
				next()
			case "macdef":
				inMacro = true
				i = len(f)
			}
		}
	}
	return out
}
