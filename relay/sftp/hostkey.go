package sftp

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/escalefs/escalefs/relay"
)

// ErrHostKey is wrapped by every host key refusal: an unknown, changed,
// revoked or unpinned host key. It is permanent.
var ErrHostKey = errors.New("SSH host key verification failed")

// HostKeyError is a host key that was not trusted.
type HostKeyError struct {
	Addr string        // host:port as dialled
	Key  ssh.PublicKey // the key the server presented
	// Known are the keys known_hosts holds for the host (a changed key),
	// or nil (an unknown host).
	Known []knownhosts.KnownKey
	// Pin is the pinned fingerprint that Key did not match, if any.
	Pin string
	// Revoked is set when known_hosts marks Key @revoked.
	Revoked bool
	// Files are the known_hosts files consulted.
	Files []string
}

// Unwrap returns ErrHostKey.
func (e *HostKeyError) Unwrap() error { return ErrHostKey }

// Error explains what was refused and how to accept the key, if that is
// what the user wants.
func (e *HostKeyError) Error() string {
	got := keyText(e.Key)
	host, port, _ := net.SplitHostPort(e.Addr)
	scan := "ssh-keyscan " + host
	if port != "22" {
		scan = "ssh-keyscan -p " + port + " " + host
	}
	files := strings.Join(e.Files, ", ")
	if files == "" {
		files = "no known_hosts file exists"
	}
	switch {
	case e.Pin != "":
		return fmt.Sprintf("%v: %s presented the host key %s, not the pinned %s", ErrHostKey, e.Addr, got, e.Pin)
	case e.Revoked:
		return fmt.Sprintf("%v: %s presented the host key %s, which known_hosts marks as revoked", ErrHostKey, e.Addr, got)
	case len(e.Known) == 0:
		target := "~/.ssh/known_hosts"
		if len(e.Files) > 0 {
			target = e.Files[0]
		}
		return fmt.Sprintf("%v: the host key of %s is unknown (%s; consulted: %s). "+
			"If that is the server's key (on the server, ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub prints its fingerprint), "+
			"accept it with \"%s >> %s\" or pin it with --host-key-sha256 %s",
			ErrHostKey, e.Addr, got, files, keyFileType(e.Key), scan, target, ssh.FingerprintSHA256(e.Key))
	}
	var known []string
	for _, k := range e.Known {
		known = append(known, fmt.Sprintf("%s (%s:%d)", keyText(k.Key), k.Filename, k.Line))
	}
	return fmt.Sprintf("%v: WARNING: THE HOST KEY OF %s HAS CHANGED: known_hosts has %s, the server presented %s. "+
		"Someone may be intercepting the connection, or the server's key was replaced. "+
		"If the change is expected, remove the old key (ssh-keygen -R '%s') and add the new one (%s)",
		ErrHostKey, e.Addr, strings.Join(known, " and "), got, knownhosts.Normalize(e.Addr), scan)
}

// keyText names a key by type and fingerprint, as ssh-keygen -l does.
func keyText(k ssh.PublicKey) string {
	if k == nil {
		return "(none)"
	}
	t := strings.ToUpper(strings.TrimPrefix(k.Type(), "ssh-"))
	if strings.HasPrefix(k.Type(), "ecdsa-") {
		t = "ECDSA"
	}
	return t + " key " + ssh.FingerprintSHA256(k)
}

func keyFileType(k ssh.PublicKey) string {
	switch {
	case strings.HasPrefix(k.Type(), "ecdsa-"):
		return "ecdsa"
	case k.Type() == ssh.KeyAlgoRSA:
		return "rsa"
	}
	return "ed25519"
}

// parseFingerprint normalises a pinned host key fingerprint to the form
// ssh.FingerprintSHA256 prints: "SHA256:" and unpadded base64.
func parseFingerprint(s string) (string, error) {
	b64 := strings.TrimRight(strings.TrimPrefix(strings.TrimSpace(s), "SHA256:"), "=")
	b, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("host key fingerprint %q: expected SHA256: and 43 base64 characters, as ssh-keygen -lf KEY.pub prints", s)
	}
	return "SHA256:" + b64, nil
}

// hostKeyCheck returns the host key callback for addr and the host key
// algorithms to ask for: those of the keys known_hosts holds for the host,
// so that a server with several keys presents the one that is known.
func hostKeyCheck(o relay.SSHOptions, home, addr string) (ssh.HostKeyCallback, []string, error) {
	if o.HostKeySHA256 != "" {
		pin, err := parseFingerprint(o.HostKeySHA256)
		if err != nil {
			return nil, nil, err
		}
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if ssh.FingerprintSHA256(key) != pin {
				return &HostKeyError{Addr: addr, Key: key, Pin: pin}
			}
			return nil
		}, nil, nil
	}
	var files []string
	if o.KnownHostsFile != "" {
		if _, err := os.Stat(o.KnownHostsFile); err != nil {
			return nil, nil, fmt.Errorf("known_hosts file: %w", err)
		}
		files = []string{o.KnownHostsFile}
	} else {
		var cands []string
		if home != "" {
			cands = append(cands, filepath.Join(home, ".ssh", "known_hosts"))
		}
		cands = append(cands, "/etc/ssh/ssh_known_hosts")
		for _, f := range cands {
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			}
		}
	}
	var db ssh.HostKeyCallback
	if len(files) > 0 {
		var err error
		if db, err = knownhosts.New(files...); err != nil {
			return nil, nil, fmt.Errorf("reading known_hosts: %w", err)
		}
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if db == nil {
			return &HostKeyError{Addr: addr, Key: key}
		}
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return &HostKeyError{Addr: addr, Key: key, Revoked: true, Files: files}
		case errors.As(err, &ke):
			return &HostKeyError{Addr: addr, Key: key, Known: ke.Want, Files: files}
		}
		return err
	}
	return cb, knownAlgorithms(db, addr), nil
}

// knownAlgorithms asks the known_hosts database which key types it holds
// for addr, by presenting a key it cannot hold.
func knownAlgorithms(db ssh.HostKeyCallback, addr string) []string {
	if db == nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(db(addr, &net.TCPAddr{}, probe), &ke) {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		algos := []string{k.Key.Type()}
		if k.Key.Type() == ssh.KeyAlgoRSA {
			algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, a := range algos {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}
