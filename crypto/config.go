package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ConfigName is the name of the public configuration object on a relay.
const ConfigName = "escale.json"

// FormatVersion is the version of the on-relay format this package writes
// and the highest it reads.
const FormatVersion = 1

// Encryption says whether blob contents are encrypted.
type Encryption string

// Blob encryption modes.
const (
	// EncryptionAge: blobs are age files for the repository's X25519
	// recipient.
	EncryptionAge Encryption = "age"
	// EncryptionOff: blobs are stored in the clear, for trusted relays.
	EncryptionOff Encryption = "off"
)

// RepoID identifies a repository; it salts every subkey.
type RepoID [16]byte

// String returns the ID in hex.
func (r RepoID) String() string { return hex.EncodeToString(r[:]) }

// KDFParams are the Argon2id parameters of a passphrase repository.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultKDF follows RFC 9106's second recommended option: 3 passes over
// 64 MiB with 4 lanes — about a third of a second on one core of a current
// machine, once per start.
func DefaultKDF() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4} }

// Bounds on parameters read from a relay: a hostile relay must not be able
// to make a node allocate gigabytes or spin for hours, nor weaken the KDF.
const (
	minKDFMemoryKiB = 8 << 10
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFTime      = 10
	maxKDFThreads   = 16
	minSaltLen      = 16
	maxSaltLen      = 64
	maxConfigSize   = 16 << 10
)

// Config is the content of escale.json: public, and authenticated by a MAC
// under a key derived from the secret.
type Config struct {
	Version    int
	Repository RepoID
	Encryption Encryption
	Secret     SecretKind
	KDF        KDFParams // passphrase repositories only
	Salt       []byte    // passphrase repositories only
	KeyCheck   []byte    // SHA-256-sized; absent without a secret
	MAC        []byte    // absent without a secret
}

// jsonConfig is escale.json's JSON shape.
type jsonConfig struct {
	Format     string   `json:"format"`
	Version    int      `json:"version"`
	Repository string   `json:"repository"`
	Encryption string   `json:"encryption"`
	Secret     string   `json:"secret"`
	KDF        *jsonKDF `json:"kdf,omitempty"`
	KeyCheck   string   `json:"key_check,omitempty"`
	MAC        string   `json:"mac,omitempty"`
}

type jsonKDF struct {
	Algorithm string `json:"algorithm"`
	Salt      string `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// NewConfig creates the configuration of a new repository protected by
// secret, and returns it with the repository's keys. rnd supplies the
// repository ID and salt (crypto/rand.Reader outside tests).
func NewConfig(rnd io.Reader, secret Secret, enc Encryption, kdf KDFParams) (*Config, *Keys, error) {
	if enc != EncryptionAge && enc != EncryptionOff {
		return nil, nil, fmt.Errorf("encryption %q: expected %q or %q", enc, EncryptionAge, EncryptionOff)
	}
	if secret.kind == SecretPassphrase && len(secret.material()) == 0 {
		return nil, nil, errors.New("the passphrase is empty")
	}
	c := &Config{Version: FormatVersion, Encryption: enc, Secret: secret.kind}
	if _, err := io.ReadFull(rnd, c.Repository[:]); err != nil {
		return nil, nil, fmt.Errorf("generating the repository ID: %w", err)
	}
	switch secret.kind {
	case SecretNone:
		if enc != EncryptionOff {
			return nil, nil, errors.New("encryption needs a passphrase or a key file")
		}
		return c, nil, nil
	case SecretPassphrase:
		if err := checkKDF(kdf); err != nil {
			return nil, nil, err
		}
		c.KDF = kdf
		c.Salt = make([]byte, 32)
		if _, err := io.ReadFull(rnd, c.Salt); err != nil {
			return nil, nil, fmt.Errorf("generating the salt: %w", err)
		}
	case SecretKey:
	default:
		return nil, nil, fmt.Errorf("unknown secret kind %q", secret.kind)
	}
	master := c.masterKey(secret)
	c.KeyCheck = deriveKey(master, c.Repository, purposeKeyCheck)
	c.MAC = c.mac(master)
	keys, err := deriveKeys(master, c.Repository, c.Encryption)
	if err != nil {
		return nil, nil, err
	}
	return c, keys, nil
}

// masterKey turns the secret into the 32-byte master key.
func (c *Config) masterKey(s Secret) []byte {
	if s.kind == SecretPassphrase {
		// Argon2id's memory (64 MiB by default) goes back to the system
		// at once: the node derives once per start and runs for days.
		defer debug.FreeOSMemory()
		return argon2.IDKey(s.material(), c.Salt, c.KDF.Time, c.KDF.MemoryKiB, c.KDF.Threads, KeySize)
	}
	return s.material()
}

// macInput is the canonical text the MAC covers: every field but the MAC,
// one "name=value" line each, in a fixed order (docs/format.md).
func (c *Config) macInput() []byte {
	var b bytes.Buffer
	b.WriteString("escalefs/1 escale.json\n")
	fmt.Fprintf(&b, "format=escalefs\nversion=%d\nrepository=%s\nencryption=%s\nsecret=%s\n",
		c.Version, c.Repository, c.Encryption, c.Secret)
	if c.Secret == SecretPassphrase {
		fmt.Fprintf(&b, "kdf.algorithm=argon2id\nkdf.salt=%s\nkdf.time=%d\nkdf.memory_kib=%d\nkdf.threads=%d\n",
			base64.StdEncoding.EncodeToString(c.Salt), c.KDF.Time, c.KDF.MemoryKiB, c.KDF.Threads)
	}
	fmt.Fprintf(&b, "key_check=%s\n", base64.StdEncoding.EncodeToString(c.KeyCheck))
	return b.Bytes()
}

func (c *Config) mac(master []byte) []byte {
	m := hmac.New(sha256.New, deriveKey(master, c.Repository, purposeConfigMAC))
	m.Write(c.macInput())
	return m.Sum(nil)
}

// Marshal returns the bytes of escale.json.
func (c *Config) Marshal() []byte {
	j := jsonConfig{
		Format:     "escalefs",
		Version:    c.Version,
		Repository: c.Repository.String(),
		Encryption: string(c.Encryption),
		Secret:     string(c.Secret),
	}
	if c.Secret == SecretPassphrase {
		j.KDF = &jsonKDF{Algorithm: "argon2id", Salt: base64.StdEncoding.EncodeToString(c.Salt),
			Time: c.KDF.Time, MemoryKiB: c.KDF.MemoryKiB, Threads: c.KDF.Threads}
	}
	if c.Secret != SecretNone {
		j.KeyCheck = base64.StdEncoding.EncodeToString(c.KeyCheck)
		j.MAC = base64.StdEncoding.EncodeToString(c.MAC)
	}
	out, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	return append(out, '\n')
}

// ParseConfig parses escale.json. It checks the structure and bounds but
// not the MAC, which needs the secret (see Unlock). Errors wrap
// ErrConfigCorrupt and say what is wrong.
func ParseConfig(data []byte) (*Config, error) {
	j, err := decodeConfigJSON(data)
	if err != nil {
		return nil, err
	}
	c := &Config{Version: j.Version, Encryption: Encryption(j.Encryption), Secret: SecretKind(j.Secret)}
	id, err := hex.DecodeString(j.Repository)
	if err != nil || len(id) != len(c.Repository) {
		return nil, badConfig(`"repository" must be %d hex digits`, 2*len(c.Repository))
	}
	copy(c.Repository[:], id)
	if c.Encryption != EncryptionAge && c.Encryption != EncryptionOff {
		return nil, badConfig(`"encryption" is %q, expected "age" or "off"`, j.Encryption)
	}
	if c.Secret == SecretNone {
		if c.Encryption != EncryptionOff || j.KDF != nil || j.KeyCheck != "" || j.MAC != "" {
			return nil, badConfig(`"secret": "none" allows only "encryption": "off" and no kdf, key_check or mac`)
		}
		return c, nil
	}
	if err := c.parseKDF(j); err != nil {
		return nil, err
	}
	if c.KeyCheck, err = base64.StdEncoding.DecodeString(j.KeyCheck); err != nil || len(c.KeyCheck) != KeySize {
		return nil, badConfig(`"key_check" must be %d bytes in base64`, KeySize)
	}
	if c.MAC, err = base64.StdEncoding.DecodeString(j.MAC); err != nil || len(c.MAC) != sha256.Size {
		return nil, badConfig(`"mac" must be %d bytes in base64`, sha256.Size)
	}
	return c, nil
}

// badConfig is an error of an escale.json that breaks the format.
func badConfig(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfigCorrupt}, args...)...)
}

// decodeConfigJSON decodes escale.json's one object, with its known
// members only, and checks its format and version.
func decodeConfigJSON(data []byte) (jsonConfig, error) {
	var j jsonConfig
	if len(data) > maxConfigSize {
		return j, badConfig("%d bytes, more than the %d an escale.json may have", len(data), maxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return j, badConfig("truncated: the JSON ends early")
		}
		return j, badConfig("not valid JSON: %v", err)
	}
	// Not dec.More, which is false before a stray ']' or '}'.
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return j, badConfig("data after the JSON object")
	}
	if j.Format != "escalefs" {
		return j, badConfig(`"format" is %q, expected "escalefs"`, j.Format)
	}
	if j.Version < 1 {
		return j, badConfig(`"version" is %d, expected %d`, j.Version, FormatVersion)
	}
	if j.Version > FormatVersion {
		return j, fmt.Errorf("%w: format version %d is newer than this escalefs reads (%d); upgrade escalefs",
			ErrConfigCorrupt, j.Version, FormatVersion)
	}
	return j, nil
}

// parseKDF reads the key derivation of a repository with a secret: none
// for a key, Argon2id with its parameters and salt for a passphrase.
func (c *Config) parseKDF(j jsonConfig) error {
	switch c.Secret {
	case SecretKey:
		if j.KDF != nil {
			return badConfig(`a "key" repository has no "kdf"`)
		}
		return nil
	case SecretPassphrase:
	default:
		return badConfig(`"secret" is %q, expected "passphrase", "key" or "none"`, j.Secret)
	}
	if j.KDF == nil {
		return badConfig(`a "passphrase" repository needs "kdf"`)
	}
	if j.KDF.Algorithm != "argon2id" {
		return badConfig(`"kdf.algorithm" is %q, expected "argon2id"`, j.KDF.Algorithm)
	}
	c.KDF = KDFParams{Time: j.KDF.Time, MemoryKiB: j.KDF.MemoryKiB, Threads: j.KDF.Threads}
	if err := checkKDF(c.KDF); err != nil {
		return badConfig("%v", err)
	}
	var err error
	if c.Salt, err = base64.StdEncoding.DecodeString(j.KDF.Salt); err != nil || len(c.Salt) < minSaltLen || len(c.Salt) > maxSaltLen {
		return badConfig(`"kdf.salt" must be %d to %d bytes in base64`, minSaltLen, maxSaltLen)
	}
	return nil
}

func checkKDF(p KDFParams) error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("kdf time %d: expected 1 to %d", p.Time, maxKDFTime)
	case p.MemoryKiB < minKDFMemoryKiB || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("kdf memory %d KiB: expected %d to %d", p.MemoryKiB, minKDFMemoryKiB, maxKDFMemoryKiB)
	case p.Threads < 1 || p.Threads > maxKDFThreads:
		return fmt.Errorf("kdf threads %d: expected 1 to %d", p.Threads, maxKDFThreads)
	}
	return nil
}

// Unlock checks secret against the configuration and returns the
// repository's keys. A wrong passphrase or key gives an error wrapping
// ErrWrongSecret; a configuration altered since it was written (but not in
// the fields that derive the key) one wrapping ErrConfigCorrupt. A
// repository without a secret gives nil keys.
func (c *Config) Unlock(secret Secret) (*Keys, error) {
	if c.Secret != secret.kind {
		return nil, fmt.Errorf("%w: this repository is protected by %s, but %s was given", ErrWrongSecret, describe(c.Secret), describe(secret.kind))
	}
	if c.Secret == SecretNone {
		return nil, nil
	}
	if c.Secret == SecretPassphrase {
		// A Config built by hand, not by ParseConfig, is checked too: the
		// bounds keep a hostile relay from making Argon2id take gigabytes.
		if err := checkKDF(c.KDF); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfigCorrupt, err)
		}
	}
	master := c.masterKey(secret)
	if subtle.ConstantTimeCompare(deriveKey(master, c.Repository, purposeKeyCheck), c.KeyCheck) != 1 {
		if c.Secret == SecretPassphrase {
			return nil, fmt.Errorf("%w: wrong passphrase for repository %s (or its kdf salt or parameters were altered)", ErrWrongSecret, c.Repository)
		}
		return nil, fmt.Errorf("%w: this key file is not the key of repository %s", ErrWrongSecret, c.Repository)
	}
	if !hmac.Equal(c.mac(master), c.MAC) {
		return nil, fmt.Errorf("%w: its authentication code does not match: it was altered after it was written", ErrConfigCorrupt)
	}
	return deriveKeys(master, c.Repository, c.Encryption)
}

func describe(k SecretKind) string {
	switch k {
	case SecretPassphrase:
		return "a passphrase"
	case SecretKey:
		return "a key file"
	case SecretNone:
		return "nothing (no secret)"
	}
	return "a secret of unknown kind " + strconv.Quote(string(k))
}

// NewRepoID returns a random repository ID.
func NewRepoID() RepoID {
	var r RepoID
	if _, err := rand.Read(r[:]); err != nil {
		panic(err)
	}
	return r
}

// ParseRepoID parses a repository ID in hex.
func ParseRepoID(s string) (RepoID, error) {
	var r RepoID
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(r) {
		return r, fmt.Errorf("repository ID %q: expected %d hex digits", s, 2*len(r))
	}
	copy(r[:], b)
	return r, nil
}
