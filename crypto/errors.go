package crypto

import "errors"

// Errors returned (wrapped, with details) by this package. Each says what
// was wrong; none carries key material.
var (
	// ErrWrongSecret: the passphrase or key file does not unlock the
	// repository.
	ErrWrongSecret = errors.New("wrong passphrase or key")
	// ErrConfigCorrupt: escale.json is truncated, malformed or altered.
	ErrConfigCorrupt = errors.New("escale.json is corrupt")
	// ErrRecordCorrupt: a record failed authentication or is malformed:
	// forged, altered, replayed, reordered or moved to another node's log.
	ErrRecordCorrupt = errors.New("record failed authentication")
	// ErrBlobTruncated: a blob is shorter than its record says.
	ErrBlobTruncated = errors.New("blob is truncated")
	// ErrBlobCorrupt: a blob's content does not match its record or fails
	// authentication: altered, chunks swapped, or not from this repository.
	ErrBlobCorrupt = errors.New("blob is corrupt")
	// ErrInsecureFile: a secret file is readable by group or others.
	ErrInsecureFile = errors.New("secret file is readable by others")
)
