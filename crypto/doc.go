// Package crypto holds everything escalefs does to protect what it stores on
// a relay, which it treats as an attacker that may read, delete, replay,
// reorder, truncate or forge any object: the repository secret (from a
// passphrase or a key file), the public escale.json that lets nodes check
// that secret, the subkeys derived from it, sealed records, encrypted blobs
// and opaque object identifiers. It does no I/O of its own beyond reading
// the files it is pointed at, so it can be tested without a relay or a
// kernel. docs/format.md specifies every byte it writes.
package crypto
