package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
)

// defaultRelayTimeout is how long a relay has to answer unless --timeout
// says otherwise.
const defaultRelayTimeout = 30 * time.Second

// relayFlags are the options that say how to reach a relay. Every command
// that talks to a relay takes them.
type relayFlags struct {
	passwordFile    string
	netrcFile       string
	credentialsFile string
	s3Endpoint      string
	s3Region        string
	verifySSL       bool
	pinSHA256       string
	caFile          string
	certFile        string
	keyFile         string
	sshKey          string
	knownHosts      string
	hostKeySHA256   string
	sslVersion      string
	maxConns        int
	bwLimit         bwLimit
	timeout         time.Duration
	// password comes from the configuration file only: a flag would
	// show it in ps.
	password string
}

func (f *relayFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the relay password (or user:password lines); also $"+relay.PasswordEnv+" or ~/.netrc")
	fs.StringVar(&f.netrcFile, "netrc", "", "netrc file to read the relay password from (default ~/.netrc)")
	fs.StringVar(&f.credentialsFile, "credentials", "", "Google Drive credentials: OAuth token file or service-account JSON; for s3, an AWS credentials file")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3 service `URL` for stores other than Amazon's, e.g. http://127.0.0.1:9000 (s3 relays)")
	fs.StringVar(&f.s3Region, "s3-region", "", "S3 region (s3 relays; default $AWS_REGION, or the bucket's)")
	fs.BoolVar(&f.verifySSL, "verify-ssl", true, "verify the server's TLS certificate (ftps, https)")
	fs.StringVar(&f.pinSHA256, "pin-sha256", "", "trust exactly the server certificate with this SHA-256 fingerprint")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of certificates to trust instead of the system's")
	fs.StringVar(&f.certFile, "certificate", "", "PEM client certificate for TLS")
	fs.StringVar(&f.keyFile, "certificate-key", "", "PEM key of the TLS client certificate")
	fs.StringVar(&f.sshKey, "ssh-key", "", "SSH private key file for sftp (tried after ssh-agent's keys)")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for sftp host keys (default ~/.ssh/known_hosts)")
	fs.StringVar(&f.hostKeySHA256, "host-key-sha256", "", "trust exactly the SSH host key with this fingerprint (SHA256:… as ssh-keygen -l prints)")
	fs.StringVar(&f.sslVersion, "ssl-version", "", "highest TLS version to use: 1.0, 1.1, 1.2 or 1.3")
	fs.IntVar(&f.maxConns, "max-connections", 0, "connections to the relay at most (default 4)")
	fs.Var(&f.bwLimit, "bwlimit", "bytes per second to and from the relay at most, e.g. 10MB, or UP:DOWN such as 5MB:20MB (default no limit)")
	fs.DurationVar(&f.timeout, "timeout", defaultRelayTimeout, "how long to wait for the relay to answer")
}

// bwLimit is --bwlimit: the sending and receiving limits, parsed when set.
type bwLimit struct {
	text     string
	up, down int64
}

func (b *bwLimit) String() string { return b.text }

func (b *bwLimit) Set(s string) error {
	up, down, err := units.ParseBwLimit(s)
	if err != nil {
		return fmt.Errorf("%v; %s", err, units.BwLimitForm)
	}
	b.text, b.up, b.down = s, up, down
	return nil
}

func (b *bwLimit) Type() string { return "RATE" }

func (f *relayFlags) options(g *globals) relay.Options {
	return relay.Options{
		Logger:          g.logger(),
		Password:        f.password,
		PasswordFile:    f.passwordFile,
		NetrcFile:       f.netrcFile,
		CredentialsFile: f.credentialsFile,
		S3Endpoint:      f.s3Endpoint,
		S3Region:        f.s3Region,
		TLS: relay.TLSOptions{
			InsecureSkipVerify: !f.verifySSL,
			PinSHA256:          f.pinSHA256,
			CAFile:             f.caFile,
			CertFile:           f.certFile,
			KeyFile:            f.keyFile,
			MaxVersion:         f.sslVersion,
		},
		SSH: relay.SSHOptions{
			KeyFile:        f.sshKey,
			KnownHostsFile: f.knownHosts,
			HostKeySHA256:  f.hostKeySHA256,
		},
		MaxConns:  f.maxConns,
		UpLimit:   f.bwLimit.up,
		DownLimit: f.bwLimit.down,
		Timeout:   f.timeout,
	}
}

// configValues are the options given, as configuration keys (which are
// the flag names), for escalefs init to write into a table. Options left
// at their defaults are left out.
func (f *relayFlags) configValues() map[string]any {
	v := map[string]any{}
	files := map[string]string{
		"password-file": f.passwordFile, "netrc": f.netrcFile, "credentials": f.credentialsFile,
		"ca-file": f.caFile, "certificate": f.certFile, "certificate-key": f.keyFile,
		"ssh-key": f.sshKey, "known-hosts": f.knownHosts,
	}
	for k, s := range files {
		if s != "" {
			v[k] = resolvePath(expandHome(s))
		}
	}
	strs := map[string]string{
		"s3-endpoint": f.s3Endpoint, "s3-region": f.s3Region, "pin-sha256": f.pinSHA256,
		"host-key-sha256": f.hostKeySHA256, "ssl-version": f.sslVersion,
	}
	for k, s := range strs {
		if s != "" {
			v[k] = s
		}
	}
	if !f.verifySSL {
		v["verify-ssl"] = false
	}
	if f.maxConns != 0 {
		v["max-connections"] = f.maxConns
	}
	if f.bwLimit.up != 0 || f.bwLimit.down != 0 {
		v["bwlimit"] = f.bwLimit.text
	}
	if f.timeout != defaultRelayTimeout {
		v["timeout"] = f.timeout.String()
	}
	return v
}
