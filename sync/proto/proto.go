package proto

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/escalefs/escalefs/cache/meta"
	"github.com/escalefs/escalefs/crypto"
)

// ErrMalformed is wrapped by every error of decoding, encoding or
// validating a plaintext that breaks the format.
var ErrMalformed = errors.New("malformed record plaintext")

// Versions of the plaintext format. This package reads every version from
// MinFormatVersion to FormatVersion, and writes the lowest that can say
// what a record holds (VersionFor), so that nodes of an older escalefs go
// on reading what does not need the newer format. A plaintext with a larger
// version is refused as newer than this escalefs.
const (
	MinFormatVersion = 1
	// ChunksVersion is the first version with content as chunks
	// (Change.Chunks).
	ChunksVersion = 2
	// UnhashedChunkBlobsVersion is the first version in which a chunk
	// blob may come without the SHA-256 of its bytes: its chunks are
	// checked by their IDs.
	UnhashedChunkBlobsVersion = 3
	// ChunkedHashVersion is the first version in which a chunked file's
	// Hash may be the content hash of its chunk list
	// (ChunkList.ContentHash) instead of the SHA-256 of its bytes.
	ChunkedHashVersion = 4
	FormatVersion      = ChunkedHashVersion
)

// VersionFor is the format version of a record holding changes: the
// lowest that can hold them.
func VersionFor(changes []Change) int {
	v := MinFormatVersion
	for _, c := range changes {
		v = max(v, c.version())
	}
	return v
}

// version is the lowest format version that can hold c.
func (c Change) version() int {
	switch {
	case c.Chunks == nil:
		return MinFormatVersion
	case c.ChunkedHash():
		return ChunkedHashVersion
	case c.Chunks.unhashed():
		return UnhashedChunkBlobsVersion
	}
	return ChunksVersion
}

// unhashed reports whether a blob of l comes without its SHA-256.
func (l *ChunkList) unhashed() bool {
	for _, b := range l.Blobs {
		if b.SHA256 == [32]byte{} {
			return true
		}
	}
	return false
}

// checkIn returns why c cannot be in a record of format version v, or "".
func (c Change) checkIn(v int) string {
	switch {
	case c.Chunks != nil && v < ChunksVersion:
		return fmt.Sprintf("chunks in a record of format version %d (they need %d)", v, ChunksVersion)
	case c.Chunks != nil && v < UnhashedChunkBlobsVersion && c.Chunks.unhashed():
		return fmt.Sprintf("a chunk blob without its hash in a record of format version %d (that needs %d)", v, UnhashedChunkBlobsVersion)
	case v < ChunkedHashVersion && c.ChunkedHash():
		return fmt.Sprintf("the hash of a chunk list in a record of format version %d (that needs %d)", v, ChunkedHashVersion)
	}
	return ""
}

// Bounds on what a plaintext may hold. A record is at most
// crypto.MaxRecordSize bytes anyway; these keep single fields sane.
const (
	MaxChanges      = 1_000_000 // changes in a Log, entries in a Snapshot
	MaxRequests     = 1_000_000 // requests in a Log
	MaxPathLen      = 4096      // bytes of a path, rename source or symlink target
	MaxVersionNodes = 10_000    // nodes in one version vector
	MaxAcks         = 10_000    // nodes in Acks
	MaxParts        = 1_000_000 // blobs of one file; chunks of one file
	MaxChunkSize    = 8 << 20   // bytes of one chunk (sync/chunks.MaxSize)
	MaxNodeNameLen  = 1024      // bytes of NodeName
)

// Op is what a change does.
type Op string

// The operations of a change.
const (
	OpPut     Op = "put"     // create or replace a file's content
	OpDelete  Op = "delete"  // delete a file or symlink (a tombstone in a snapshot)
	OpMkdir   Op = "mkdir"   // create a directory
	OpRmdir   Op = "rmdir"   // delete an empty directory
	OpRename  Op = "rename"  // move From to Path
	OpMeta    Op = "meta"    // change mode, mtime or access modifiers only
	OpSymlink Op = "symlink" // create or replace a symlink to Target
)

// PermMask is the part of a mode a change carries: Unix permission bits,
// sticky, setuid and setgid. Setuid and setgid are stripped by Encode and
// Decode (they are never propagated), so Mode holds at most 0o1777 after
// either.
const (
	PermMask     = 0o7777
	setidBits    = 0o6000
	maxTimeNanos = math.MaxInt64
)

// PackRef locates a small file inside a pack blob: the file's plaintext is
// bytes [Offset, Offset+Length) of the pack's plaintext.
type PackRef struct {
	Blob   crypto.BlobRef
	Offset int64 // ≥ 0
	Length int64 // > 0, equal to the change's Size; Offset+Length does not overflow
}

// Change is one change of one path, as a log records it; a snapshot uses
// the same type for its entries.
//
// Which fields an op may carry (a field not listed must be zero):
//
//	put      Path, Version, Hash (required); Size, ModTime, Mode, Access;
//	         Pack, Parts or Chunks (exactly one when Size > 0, none when 0)
//	delete   Path, Version; ModTime
//	rmdir    Path, Version; ModTime
//	mkdir    Path, Version; ModTime, Mode, Access
//	meta     Path, Version; ModTime, Mode, Access
//	symlink  Path, Version, Target (required); ModTime, Access
//	rename   Path, From (required, another path not above Path), Version; ModTime
type Change struct {
	Op   Op
	Path string
	From string // rename source
	// Version is the path's version after the change: node ID (32
	// lower-case hex digits) → counter. It is never empty and holds no
	// zero counter (meta.VersionVector.Clone drops them).
	Version meta.VersionVector
	Size    int64     // content size in bytes (puts)
	ModTime time.Time // nanosecond precision; the zero Time means none
	Mode    uint32    // Unix permission bits (PermMask), no file type bits
	Hash    [32]byte  // SHA-256 of the plaintext content (puts)
	Target  string    // symlink target
	Access  meta.Access
	Pack    *PackRef         // content stored in a pack blob
	Parts   []crypto.BlobRef // content stored as whole blobs, concatenated in order
	Chunks  *ChunkList       // content as content-defined chunks
}

// ChunkList is a file's content as content-defined chunks (sync/chunks),
// in order: each in a chunk blob of Blobs, or in no blob when every node
// that pulls was known to hold it already (a puller takes it from its own
// files).
type ChunkList struct {
	Blobs  []crypto.BlobRef // the chunk blobs the chunks are in
	Chunks []ChunkRef
}

// BlobRefs returns the blobs c names for its content: its pack, its parts
// or its chunk blobs.
func (c Change) BlobRefs() []crypto.BlobRef {
	var out []crypto.BlobRef
	if c.Pack != nil {
		out = append(out, c.Pack.Blob)
	}
	out = append(out, c.Parts...)
	if c.Chunks != nil {
		out = append(out, c.Chunks.Blobs...)
	}
	return out
}

// NoBlob is the Blob of a chunk that is in no blob.
const NoBlob = -1

// ChunkRef is one chunk of a file: Length bytes, which are bytes
// [Offset, Offset+Length) of the plaintext of the chunk blob Blobs[Blob],
// or, when Blob is NoBlob (Offset 0), on no blob.
type ChunkRef struct {
	ID     crypto.ChunkID
	Length int64
	Blob   int
	Offset int64
}

// Request asks the other nodes for content this node lacks (it joined
// late, or the blob was collected): a holder of Path at Hash re-pushes it.
type Request struct {
	Path string
	Hash [32]byte // SHA-256 of the plaintext wanted; never zero
}

// Log is the plaintext of a record of kind "log".
type Log struct {
	Version  int    // MinFormatVersion to FormatVersion: VersionFor(Changes)
	NodeName string // the writer's human-readable name (sealed, never on the relay in clear)
	// Mode is the writer's synchronization mode; the empty Mode means
	// ModeShared. Nodes in ModeUpload do not pull, so they hold no
	// collection back.
	Mode    Mode
	Time    time.Time // the writer's clock when writing; informational only
	Changes []Change
	// Acks holds, per peer, the highest sequence number of that peer's log
	// that the writer has applied. Decode never returns nil.
	Acks     map[crypto.NodeID]uint64
	Requests []Request
}

// Mode is a node's synchronization mode, as its log records announce it.
type Mode string

// The synchronization modes.
const (
	ModeShared       Mode = "shared"       // push and pull
	ModeUpload       Mode = "upload"       // push only
	ModeDownload     Mode = "download"     // pull only
	ModeConservative Mode = "conservative" // push; pull only over files that came from peers untouched
)

// Pulls reports whether a node in mode m applies its peers' changes.
func (m Mode) Pulls() bool { return m != ModeUpload }

// checkMode returns why m is not a known mode (the empty mode is
// ModeShared), or "".
func checkMode(m Mode) string {
	switch m {
	case "", ModeShared, ModeUpload, ModeDownload, ModeConservative:
		return ""
	}
	return fmt.Sprintf("%q is not one of shared, upload, download, conservative", string(m))
}

// ParseMode parses a mode name as a user writes it (Escale's names
// included: "push only" and "pull only" are upload and download).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "shared", "share":
		return ModeShared, nil
	case "upload", "push-only", "push only", "push":
		return ModeUpload, nil
	case "download", "pull-only", "pull only", "pull":
		return ModeDownload, nil
	case "conservative", "protective":
		return ModeConservative, nil
	}
	return "", fmt.Errorf("mode %q: expected shared, upload, download or conservative", s)
}

// Snapshot is the plaintext of a record of kind "snapshot": the writer's
// full view after applying its log up to record UpTo. Entries are puts,
// mkdirs, symlinks and deletes (tombstones), at most one per path.
type Snapshot struct {
	Version  int // MinFormatVersion to FormatVersion: VersionFor(Entries)
	NodeName string
	UpTo     uint64 // the last sequence number of the writer's log it covers
	Entries  []Change
	Acks     map[crypto.NodeID]uint64 // as in Log; Decode never returns nil
}

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// checkPath reports why p cannot be a path in a record, or "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("longer than %d bytes", MaxPathLen)
	case !utf8.ValidString(p):
		return "not valid UTF-8"
	case p[0] == '/':
		return "absolute"
	}
	if why := checkChars(p); why != "" {
		return why
	}
	for c := range strings.SplitSeq(p, "/") {
		if c == ".." {
			return `contains a ".." component`
		}
	}
	if err := meta.ValidPath(p); err != nil {
		return strings.TrimSuffix(strings.TrimPrefix(err.Error(), fmt.Sprintf("path %q: ", p)), ": "+meta.ErrInvalidPath.Error())
	}
	return ""
}

// checkChars reports a NUL, control character or backslash in s.
func checkChars(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return "contains a NUL byte"
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("contains control character %#02x", c)
		case c == '\\':
			return "contains a backslash"
		}
	}
	return ""
}

// checkText reports why s cannot be a free-form string (node name, symlink
// target) of at most max bytes, or "".
func checkText(s string, max int) string {
	switch {
	case len(s) > max:
		return fmt.Sprintf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Sprintf("contains control character %#02x", c)
		}
	}
	return ""
}

// checkNodeHex reports why s is not a node ID in lower-case hex, or "".
func checkNodeHex(s string) string {
	if len(s) != 2*len(crypto.NodeID{}) {
		return fmt.Sprintf("node ID %q: expected %d hex digits", s, 2*len(crypto.NodeID{}))
	}
	if _, err := hex.DecodeString(s); err != nil || strings.ToLower(s) != s {
		return fmt.Sprintf("node ID %q: expected lower-case hex", s)
	}
	return ""
}

func validTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	return !t.Before(time.Unix(0, math.MinInt64)) && !t.After(time.Unix(0, maxTimeNanos))
}

// Validate checks c against the rules of its op (see Change). The error
// wraps ErrMalformed and names the path.
func (c Change) Validate() error {
	if why := c.check(); why != "" {
		return malformed("change %q (%s): %s", c.Path, c.Op, why)
	}
	return nil
}

// checkEntry returns why c is invalid as a snapshot entry, or "". It is
// check, except that a put may name no content although its size is not 0:
// the blobs of a file pushed long ago are collected, and a reader that lacks
// the content asks for it again.
func (c Change) checkEntry() string {
	if c.Op == OpPut && c.Pack == nil && len(c.Parts) == 0 && c.Chunks == nil {
		c.Size = 0
	}
	return c.check()
}

// check returns why c is invalid, or "".
func (c Change) check() string {
	for _, check := range []func() string{c.checkOpPath, c.checkVersion, c.checkValues, c.checkFields, c.checkOp} {
		if why := check(); why != "" {
			return why
		}
	}
	return ""
}

// checkOpPath checks the path and the op.
func (c Change) checkOpPath() string {
	if why := checkPath(c.Path); why != "" {
		return "path: " + why
	}
	switch c.Op {
	case OpPut, OpDelete, OpMkdir, OpRmdir, OpRename, OpMeta, OpSymlink:
		return ""
	}
	return fmt.Sprintf("unknown op %q", c.Op)
}

// checkValues checks the time, the mode and the access modifiers.
func (c Change) checkValues() string {
	if !validTime(c.ModTime) {
		return "mtime out of the range of int64 nanoseconds"
	}
	if c.Mode&^PermMask != 0 {
		return fmt.Sprintf("mode %#o has bits outside %#o", c.Mode, PermMask)
	}
	if c.Access.Read > meta.PermDeny || c.Access.Write > meta.PermDeny {
		return fmt.Sprintf("access modifiers %d/%d out of range", c.Access.Read, c.Access.Write)
	}
	return ""
}

func (c Change) checkVersion() string {
	if len(c.Version) == 0 {
		return "missing version"
	}
	if len(c.Version) > MaxVersionNodes {
		return fmt.Sprintf("version of %d nodes, more than %d", len(c.Version), MaxVersionNodes)
	}
	for n, v := range c.Version {
		if why := checkNodeHex(n); why != "" {
			return "version: " + why
		}
		if v == 0 {
			return fmt.Sprintf("version: zero counter for node %s", n)
		}
	}
	return ""
}

// checkFields refuses the fields c's op does not carry (beyond Path,
// Version and ModTime).
func (c Change) checkFields() string {
	var from, size, mode, hash, target, access, content bool
	switch c.Op {
	case OpPut:
		size, mode, hash, access, content = true, true, true, true, true
	case OpMkdir, OpMeta:
		mode, access = true, true
	case OpSymlink:
		target, access = true, true
	case OpRename:
		from = true
	}
	switch {
	case !from && c.From != "":
		return "unexpected from"
	case !size && c.Size != 0:
		return "unexpected size"
	case !mode && c.Mode != 0:
		return "unexpected mode"
	case !hash && c.Hash != [32]byte{}:
		return "unexpected hash"
	case !target && c.Target != "":
		return "unexpected target"
	case !access && c.Access != meta.Access{}:
		return "unexpected access modifiers"
	case !content && c.Pack != nil:
		return "unexpected pack"
	case !content && len(c.Parts) > 0:
		return "unexpected parts"
	case !content && c.Chunks != nil:
		return "unexpected chunks"
	}
	return ""
}

// checkOp checks what c's op requires: a rename's source, a symlink's
// target, a put's content.
func (c Change) checkOp() string {
	switch c.Op {
	case OpRename:
		if c.From == "" {
			return "rename without from"
		}
		if why := checkPath(c.From); why != "" {
			return fmt.Sprintf("from %q: %s", c.From, why)
		}
		if c.From == c.Path {
			return "rename onto itself"
		}
		if strings.HasPrefix(c.Path, c.From+"/") {
			return fmt.Sprintf("rename of %q into itself", c.From)
		}
	case OpSymlink:
		if c.Target == "" {
			return "symlink without target"
		}
		if why := checkText(c.Target, MaxPathLen); why != "" {
			return "target: " + why
		}
	case OpPut:
		return c.checkContent()
	}
	return ""
}

func (c Change) checkContent() string {
	switch {
	case c.Size < 0:
		return fmt.Sprintf("negative size %d", c.Size)
	case c.Hash == [32]byte{}:
		return "put without hash"
	case btoi(c.Pack != nil)+btoi(len(c.Parts) > 0)+btoi(c.Chunks != nil) > 1:
		return "put with more than one of pack, parts and chunks"
	case c.Size == 0 && (c.Pack != nil || len(c.Parts) > 0 || c.Chunks != nil):
		return "empty file with content"
	case c.Size > 0 && c.Pack == nil && len(c.Parts) == 0 && c.Chunks == nil:
		return fmt.Sprintf("put of %d bytes without pack, parts or chunks", c.Size)
	}
	if c.Chunks != nil {
		if why := c.Chunks.check(c.Size); why != "" {
			return "chunks: " + why
		}
	}
	if p := c.Pack; p != nil {
		switch {
		case p.Offset < 0:
			return fmt.Sprintf("pack: negative offset %d", p.Offset)
		case p.Length <= 0:
			return fmt.Sprintf("pack: length %d not positive", p.Length)
		case p.Offset > math.MaxInt64-p.Length:
			return fmt.Sprintf("pack: offset %d + length %d overflows", p.Offset, p.Length)
		case p.Length != c.Size:
			return fmt.Sprintf("pack: length %d differs from size %d", p.Length, c.Size)
		}
		if why := checkBlobRef(p.Blob); why != "" {
			return "pack: " + why
		}
	}
	if len(c.Parts) > MaxParts {
		return fmt.Sprintf("%d parts, more than %d", len(c.Parts), MaxParts)
	}
	for i, r := range c.Parts {
		if why := checkBlobRef(r); why != "" {
			return fmt.Sprintf("part %d: %s", i, why)
		}
	}
	return ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// check returns why l cannot be the content of size bytes, or "".
func (l *ChunkList) check(size int64) string {
	switch {
	case len(l.Chunks) == 0:
		return "no chunk"
	case len(l.Chunks) > MaxParts:
		return fmt.Sprintf("%d chunks, more than %d", len(l.Chunks), MaxParts)
	case len(l.Blobs) > len(l.Chunks):
		return fmt.Sprintf("%d blobs for %d chunks", len(l.Blobs), len(l.Chunks))
	}
	for i, r := range l.Blobs {
		if why := checkSize(r); why != "" {
			return fmt.Sprintf("blob %d: %s", i, why)
		}
	}
	used := make([]bool, len(l.Blobs))
	var total int64
	for i, k := range l.Chunks {
		switch {
		case k.Length <= 0 || k.Length > MaxChunkSize:
			return fmt.Sprintf("chunk %d: length %d outside 1…%d", i, k.Length, MaxChunkSize)
		case k.Blob == NoBlob && k.Offset != 0:
			return fmt.Sprintf("chunk %d: offset %d in no blob", i, k.Offset)
		case k.Blob != NoBlob && (k.Blob < 0 || k.Blob >= len(l.Blobs)):
			return fmt.Sprintf("chunk %d: blob %d of %d", i, k.Blob, len(l.Blobs))
		case k.Offset < 0 || k.Offset > math.MaxInt64-k.Length:
			return fmt.Sprintf("chunk %d: offset %d out of range", i, k.Offset)
		case total > size-k.Length:
			return fmt.Sprintf("chunks longer than the size %d", size)
		}
		if k.Blob != NoBlob {
			used[k.Blob] = true
		}
		total += k.Length
	}
	if total != size {
		return fmt.Sprintf("chunks of %d bytes for a size of %d", total, size)
	}
	if i := slices.Index(used, false); i >= 0 {
		return fmt.Sprintf("blob %d holds no chunk of the file", i)
	}
	return ""
}

// checkBlobRef checks a blob read whole, which its hash checks.
func checkBlobRef(r crypto.BlobRef) string {
	if r.SHA256 == [32]byte{} {
		return fmt.Sprintf("blob %s: missing hash", r.ID)
	}
	return checkSize(r)
}

// checkSize checks a blob's size, all a chunk blob needs (its hash is
// optional, checkIn).
func checkSize(r crypto.BlobRef) string {
	if r.Size <= 0 {
		return fmt.Sprintf("blob %s: size %d not positive", r.ID, r.Size)
	}
	return ""
}

// maxChanges is MaxChanges, lowered by tests so that the bound can be
// tested without building a million changes.
var maxChanges = MaxChanges

// ContentHash is the content hash of a file made of l's chunks
// (crypto.ChunkedSum). A change whose Hash is it needs no other hash of
// the content: each chunk is checked by its ID.
func (l *ChunkList) ContentHash() [32]byte {
	s := crypto.NewChunkedSum()
	for _, k := range l.Chunks {
		s.Add(k.ID, k.Length)
	}
	return s.Sum()
}

// ChunkedHash reports whether c's Hash is the content hash of its chunks
// (ChunkList.ContentHash) rather than the SHA-256 of its bytes.
func (c Change) ChunkedHash() bool {
	return c.Chunks != nil && c.Hash == c.Chunks.ContentHash()
}
