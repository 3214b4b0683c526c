// Package proto defines the plaintexts that nodes exchange inside sealed
// records (crypto.RecordSealer): a node's log records (kind "log") and its
// snapshots (kind "snapshot"). docs/format.md §11 specifies them field by
// field.
//
// # Encoding
//
// Plaintexts are JSON: one object, compact, with the members in a fixed
// order, written by EncodeLog and EncodeSnapshot and read back by
// DecodeLog and DecodeSnapshot. JSON was chosen over a binary encoding
// because the format is then easy to specify and to implement elsewhere,
// and a record can be inspected with ordinary tools once opened; its cost
// (larger records, slower parsing) is small next to the content it
// describes, and records are sealed, so nothing leaks through their
// readability. Hashes and IDs are lower-case hex strings, times integer
// nanoseconds since the Unix epoch, version vectors and acknowledgements
// objects from node ID (hex) to integer.
//
// Because a record comes from a peer through a hostile relay, decoding is
// strict. The input must be valid UTF-8 holding exactly one JSON object.
// Before encoding/json sees it, a scanner checks it against the shape of
// the format: no object may repeat a member, member names must be written
// exactly as specified (encoding/json's case-insensitive matching is never
// reached), null is refused, and so is any unknown member, naming where
// (e.g. "changes[3].pack: unknown field"). Every field is then validated:
// paths, hashes, blob references, counts and which fields an operation may
// carry. Every error wraps ErrMalformed and, for a change, names its index
// and path. Encoding applies the same checks, so a node never writes what
// another would refuse. Decoded times are in UTC.
//
// Paths in records are narrower than cache paths (cache.ValidPath): they
// must also be valid UTF-8, at most MaxPathLen bytes, and free of control
// characters and backslashes, so that they mean the same on every system a
// peer may run on.
package proto
