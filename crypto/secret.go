package crypto

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// SecretKind says how a repository's secret is given.
type SecretKind string

// The kinds of repository secret.
const (
	// SecretPassphrase: a passphrase stretched with Argon2id.
	SecretPassphrase SecretKind = "passphrase"
	// SecretKey: 32 random bytes from a key file (escalefs key generate).
	SecretKey SecretKind = "key"
	// SecretNone: no secret. Only possible with encryption off; records
	// then carry a checksum but no authentication.
	SecretNone SecretKind = "none"
)

// KeySize is the size of the master key and of every subkey.
const KeySize = 32

// Secret is what a user holds to open a repository. Its String, Format
// and LogValue never show the secret.
type Secret struct {
	kind SecretKind
	// material returns the passphrase or the key. It is held in a closure
	// because fmt and slog print a Secret in an unexported struct field
	// field by field, without calling its methods, and show a func only
	// as an address.
	m func() []byte
}

func newSecret(kind SecretKind, b []byte) Secret {
	return Secret{kind: kind, m: func() []byte { return b }}
}

// material returns the passphrase or the key.
func (s Secret) material() []byte {
	if s.m == nil {
		return nil
	}
	return s.m()
}

// Passphrase returns a passphrase secret.
func Passphrase(p string) Secret { return newSecret(SecretPassphrase, []byte(p)) }

// Key returns a key secret; key must be KeySize bytes.
func Key(key []byte) (Secret, error) {
	if len(key) != KeySize {
		return Secret{}, fmt.Errorf("a repository key is %d bytes, got %d", KeySize, len(key))
	}
	return newSecret(SecretKey, bytes.Clone(key)), nil
}

// NoSecret is the absent secret of a repository with encryption off.
func NoSecret() Secret { return Secret{kind: SecretNone} }

// Kind reports how the secret is given.
func (s Secret) Kind() SecretKind { return s.kind }

// String implements fmt.Stringer without revealing the secret.
func (s Secret) String() string { return "[" + string(s.kind) + " secret redacted]" }

// GoString implements fmt.GoStringer without revealing the secret.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter: every verb, %d and %x included, prints
// String.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// keyFilePrefix starts the key line of a key file.
const keyFilePrefix = "escalefs-key-1:"

// GenerateKey returns a new random key secret.
func GenerateKey() Secret {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return newSecret(SecretKey, k)
}

// MarshalKeyFile returns the text of a key file holding s.
func MarshalKeyFile(s Secret, now time.Time) ([]byte, error) {
	if s.kind != SecretKey {
		return nil, fmt.Errorf("only a key secret can be written to a key file, not a %s", s.kind)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# escalefs repository key, created %s.\n", now.UTC().Format(time.RFC3339))
	b.WriteString("# Anyone holding this file can read and forge the repository's data.\n")
	b.WriteString("# Copy it to each node of the repository (mode 0600) and nowhere else.\n")
	b.WriteString(keyFilePrefix + base64.RawURLEncoding.EncodeToString(s.material()) + "\n")
	return b.Bytes(), nil
}

// ParseKeyFile reads the key from the text of a key file. Lines starting
// with # and blank lines are ignored.
func ParseKeyFile(data []byte) (Secret, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var found []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		found = append(found, line)
	}
	if len(found) != 1 || !strings.HasPrefix(found[0], keyFilePrefix) {
		return Secret{}, fmt.Errorf("not an escalefs key file: expected one line %q followed by the key in base64", keyFilePrefix+"…")
	}
	// Only the one spelling MarshalKeyFile writes: the decoder alone
	// would skip a CR inside the key and accept non-zero trailing bits.
	enc := strings.TrimPrefix(found[0], keyFilePrefix)
	k, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(k) != KeySize || base64.RawURLEncoding.EncodeToString(k) != enc {
		return Secret{}, fmt.Errorf("not an escalefs key file: the key after %q must be %d bytes in unpadded base64url", keyFilePrefix, KeySize)
	}
	return newSecret(SecretKey, k), nil
}

// WriteKeyFile creates path (which must not exist) holding s, with mode 0600.
func WriteKeyFile(path string, s Secret, now time.Time) error {
	data, err := MarshalKeyFile(s, now)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return f.Close()
}

// ReadKeyFile reads a key file, refusing one readable by group or others.
func ReadKeyFile(path string) (Secret, error) {
	data, err := readPrivate(path, "key file")
	if err != nil {
		return Secret{}, err
	}
	s, err := ParseKeyFile(data)
	if err != nil {
		return Secret{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// ReadPassphraseFile reads a passphrase from the first line of path,
// refusing a file readable by group or others or an empty passphrase.
func ReadPassphraseFile(path string) (Secret, error) {
	data, err := readPrivate(path, "passphrase file")
	if err != nil {
		return Secret{}, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return Secret{}, fmt.Errorf("passphrase file %s: the first line is empty; it must hold the passphrase", path)
	}
	return newSecret(SecretPassphrase, line), nil
}

// ReadPassphrase reads a passphrase from r up to the first newline.
func ReadPassphrase(r io.Reader) (Secret, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return Secret{}, fmt.Errorf("reading passphrase: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return Secret{}, fmt.Errorf("the passphrase is empty")
	}
	return Passphrase(line), nil
}

// readPrivate reads a file that must not be readable by group or others.
func readPrivate(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s %s has mode %04o; run chmod 600 %s", ErrInsecureFile, what, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	return data, nil
}
