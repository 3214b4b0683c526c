package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"

	"filippo.io/age"
)

// Subkey purposes, the HKDF info strings (prefixed with "escalefs/1 ").
const (
	purposeKeyCheck  = "key-check"
	purposeConfigMAC = "config-mac"
	purposeRecords   = "records"
	purposeAge       = "age-identity"
	purposeNames     = "names"
)

// deriveKey derives the subkey for purpose from the master key with
// HKDF-SHA256, salted with the repository ID.
func deriveKey(master []byte, repo RepoID, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, repo[:], "escalefs/1 "+purpose, KeySize)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce
	}
	return k
}

// Keys are the subkeys of an unlocked repository. Its String and LogValue
// never reveal them. A nil *Keys is valid for a repository without a
// secret: records then carry only a checksum and blobs are not encrypted.
type Keys struct {
	repo       RepoID
	encryption Encryption
	// The subkeys are behind pointers, which fmt prints as addresses in
	// the cases that bypass Format (a *Keys in an unexported field).
	records   *[KeySize]byte // XChaCha20-Poly1305 key
	names     *[KeySize]byte // HMAC key for opaque names
	chunkIDs  *[KeySize]byte // HMAC key for chunk IDs
	chunker   *[KeySize]byte // seed of the chunker's gear table
	identity  *age.X25519Identity
	recipient *age.X25519Recipient
}

// deriveKeys derives every subkey from the master key.
func deriveKeys(master []byte, repo RepoID, enc Encryption) (*Keys, error) {
	k := &Keys{
		repo:       repo,
		encryption: enc,
		records:    (*[KeySize]byte)(deriveKey(master, repo, purposeRecords)),
		names:      (*[KeySize]byte)(deriveKey(master, repo, purposeNames)),
		chunkIDs:   (*[KeySize]byte)(deriveKey(master, repo, purposeChunkIDs)),
		chunker:    (*[KeySize]byte)(deriveKey(master, repo, purposeChunker)),
	}
	id, err := age.ParseX25519Identity(ageIdentityString(deriveKey(master, repo, purposeAge)))
	if err != nil {
		return nil, fmt.Errorf("deriving the age identity: %w", err)
	}
	k.identity = id
	k.recipient = id.Recipient()
	return k, nil
}

// Repository returns the ID of the repository the keys belong to.
func (k *Keys) Repository() RepoID { return k.repo }

// Encryption reports whether blob contents are encrypted.
func (k *Keys) Encryption() Encryption { return k.encryption }

// AgeIdentity returns the repository's age identity ("AGE-SECRET-KEY-1…"),
// with which the stock age tool decrypts any blob: age -d -i FILE. It is as
// secret as the repository key.
func (k *Keys) AgeIdentity() string {
	if k == nil || k.identity == nil {
		return ""
	}
	return k.identity.String()
}

// AgeRecipient returns the public half of the age identity ("age1…").
func (k *Keys) AgeRecipient() string {
	if k == nil || k.recipient == nil {
		return ""
	}
	return k.recipient.String()
}

// String implements fmt.Stringer without revealing any key.
func (k *Keys) String() string { return "[repository keys redacted]" }

// GoString implements fmt.GoStringer without revealing any key.
func (k *Keys) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb, %d and %x included, prints
// String.
func (k *Keys) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer without revealing any key.
func (k *Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// LogValue implements slog.LogValuer without revealing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ageIdentityString encodes a 32-byte X25519 scalar as an age identity:
// Bech32 with the human-readable part "age-secret-key-", upper-cased.
func ageIdentityString(scalar []byte) string {
	return toUpper(bech32Encode("age-secret-key-", scalar))
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
