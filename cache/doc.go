// Package cache is a node's crash-safe metadata store: for each path of the
// synced folder this node's view of its latest version (an Entry), the push
// queue, what was applied from each peer's log, and a few node-level facts.
// The plaintext files themselves live beside it; the cache only describes
// them. The sync engine and the mount build on it.
//
// # Transactions
//
// The store is one bbolt database file. Everything is read and written in
// transactions (Store.View, Store.Update): an Update commits all its changes
// (entries, queue, peer sequence numbers, metadata) with one fsync, or none
// of them, so the engine can apply a remote record — update entries, set the
// peer's sequence number, enqueue an ack — atomically. No operation of this
// package spans two transactions, so a crash (even kill -9 or power loss, as
// far as the disk honours fsync) leaves the state of the last committed
// Update. The database file is locked: a second Open of the same cache, from
// any process, fails with ErrInUse after Options.Timeout.
//
// # Layout (schema version 2)
//
// Buckets:
//
//	sys          "schema" → uint64; "queue-len" → uint64 (number of queue items)
//	meta         caller's key → caller's bytes (see MetaNodeID and friends)
//	entries      path key → entry (below)
//	queue        item ID (uint64) → queue item (below), in FIFO order
//	queue-paths  path → item ID of its queued item
//	peer-seq     node ID → uint64, last applied sequence number
//	peer-state   node ID → caller's bytes
//	chunks       chunk ID ‖ path key → offset, length (chunks.go)
//	path-chunks  path key → local stat, chunk IDs (chunks.go)
//	sent-chunks  chunk ID → where this node pushed it (chunks.go)
//
// Every uint64 above is 8 bytes, big-endian. An entry's key is its path with
// each '/' replaced by a NUL byte, which sorts a directory directly before
// its subtree and siblings by name; see Walk. Open creates a fresh cache,
// migrates an older schema in place in one transaction, and refuses a newer
// one with ErrSchemaTooNew.
//
// # Entry encoding
//
// An entry is stored in a compact binary form. Varints are
// encoding/binary's (uvarint unsigned, varint zig-zag signed); a "string"
// is a uvarint length followed by that many bytes.
//
//	byte     encoding version, 1
//	byte     kind: 1 file, 2 dir, 3 symlink
//	byte     flags: 0x01 deleted, 0x02 dirty, 0x04 hash follows,
//	         0x08 remote follows, 0x10 local stat follows; others must be 0
//	byte     access: bits 0-1 read, bits 2-3 write (0 unset, 1 allow,
//	         2 deny); bits 4-7 must be 0
//	uvarint  mode (fs.FileMode, at most 32 bits)
//	varint   size (not negative)
//	varint   mtime seconds since the Unix epoch
//	uvarint  mtime nanoseconds (below 10⁹)
//	uvarint  number of version vector nodes, then for each, by node ID
//	         ascending: string node ID (1 to 255 bytes), uvarint counter (> 0)
//	string   origin node ID
//	string   symlink target (empty unless kind is symlink)
//	[32]byte SHA-256 of the content, if flag 0x04 (absent means all zero)
//	string   remote bytes, if flag 0x08 (absent means nil; present and
//	         empty means empty and non-nil)
//	varint   local size, varint mtime ns, uvarint inode, varint ctime ns,
//	         if flag 0x10 (absent means the zero LocalStat)
//
// Nothing may follow. The path is not stored in the value; it is the key.
// ModTime comes back in UTC, without a monotonic clock reading. Anything
// that does not decode — a short record, an unknown version or flag, a
// length reaching past the end, trailing bytes — is reported as ErrCorrupt
// naming the path; decoding never panics.
//
// A queue item is: byte version 1, varint seconds and uvarint nanoseconds
// of the enqueue time, string path, then the payload to the end.
package cache
