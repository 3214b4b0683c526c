package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"time"
)

// Entry is the cache's record of one path: this node's view of its latest
// version.
type Entry struct {
	// Path names the entry (see ValidPath). Get and Walk set it from the
	// key; it is not stored twice.
	Path string
	Kind Kind
	// Deleted marks a tombstone: the path was deleted at Version. Tombstones
	// are kept so that the deletion propagates and wins over older versions;
	// Walk and Children return them like any entry.
	Deleted bool
	Version VersionVector
	// Hash is the SHA-256 of the plaintext content; zero for directories,
	// symlinks and tombstones, or when unknown.
	Hash    [32]byte
	Size    int64 // content size in bytes; must not be negative
	ModTime time.Time
	// Mode holds the permission bits and whatever type bits the engine
	// wants kept; it is stored as is.
	Mode   fs.FileMode
	Target string // a symlink's target; empty for other kinds
	Origin string // node ID that wrote this version
	Dirty  bool   // changed locally and not yet pushed
	Access Access
	// Remote is the sync engine's opaque description of where the content
	// lives on the relay. nil and empty are stored distinctly.
	Remote []byte
	Local  LocalStat
}

// validate checks the rules of Entry that Put enforces.
func (e *Entry) validate() error {
	if err := ValidPath(e.Path); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("entry %q: %s: %w", e.Path, fmt.Sprintf(format, a...), ErrInvalidEntry)
	}
	switch {
	case e.Kind < KindFile || e.Kind > KindSymlink:
		return bad("unknown kind %d", e.Kind)
	case e.Size < 0:
		return bad("negative size %d", e.Size)
	case e.Target != "" && e.Kind != KindSymlink:
		return bad("target %q on a %s", e.Target, e.Kind)
	case e.Access.Read > PermDeny || e.Access.Write > PermDeny:
		return bad("access flags %d/%d out of range", e.Access.Read, e.Access.Write)
	}
	for n := range e.Version {
		if err := validKey("node ID", n); err != nil {
			return fmt.Errorf("entry %q: version: %w: %w", e.Path, err, ErrInvalidEntry)
		}
	}
	return nil
}

// Entry encoding, version 1 (see the package documentation).
const (
	entryV1 byte = 1

	flagDeleted byte = 1 << 0
	flagDirty   byte = 1 << 1
	flagHash    byte = 1 << 2
	flagRemote  byte = 1 << 3
	flagLocal   byte = 1 << 4
	flagsKnown       = flagDeleted | flagDirty | flagHash | flagRemote | flagLocal
)

// encodeEntry returns the stored form of a validated entry.
func encodeEntry(e *Entry) []byte {
	var flags byte
	if e.Deleted {
		flags |= flagDeleted
	}
	if e.Dirty {
		flags |= flagDirty
	}
	if e.Hash != ([32]byte{}) {
		flags |= flagHash
	}
	if e.Remote != nil {
		flags |= flagRemote
	}
	if e.Local != (LocalStat{}) {
		flags |= flagLocal
	}
	b := make([]byte, 0, 64+len(e.Origin)+len(e.Target)+len(e.Remote)+24*len(e.Version))
	b = append(b, entryV1, byte(e.Kind), flags, byte(e.Access.Read)|byte(e.Access.Write)<<2)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.ModTime.Unix())
	b = binary.AppendUvarint(b, uint64(e.ModTime.Nanosecond()))

	nodes := make([]string, 0, len(e.Version))
	for n, c := range e.Version {
		if c > 0 {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	b = binary.AppendUvarint(b, uint64(len(nodes)))
	for _, n := range nodes {
		b = appendString(b, n)
		b = binary.AppendUvarint(b, e.Version[n])
	}
	b = appendString(b, e.Origin)
	b = appendString(b, e.Target)
	if flags&flagHash != 0 {
		b = append(b, e.Hash[:]...)
	}
	if flags&flagRemote != 0 {
		b = binary.AppendUvarint(b, uint64(len(e.Remote)))
		b = append(b, e.Remote...)
	}
	if flags&flagLocal != 0 {
		b = binary.AppendVarint(b, e.Local.Size)
		b = binary.AppendVarint(b, e.Local.MTimeNs)
		b = binary.AppendUvarint(b, e.Local.Inode)
		b = binary.AppendVarint(b, e.Local.CTimeNs)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry parses the stored form of the entry at path. It never panics
// and never allocates more than a small multiple of len(b): every length is
// checked against the bytes left. Errors name the path and wrap ErrCorrupt.
// The result does not alias b.
func decodeEntry(path string, b []byte) (Entry, error) {
	e, flags, err := decodeHeader(path, b)
	if err != nil {
		return Entry{}, err
	}
	d := decoder{b: b[4:]}
	d.meta(&e)
	e.Version = d.version()
	e.Origin = d.string()
	e.Target = d.string()
	if e.Target != "" && e.Kind != KindSymlink && d.err == nil {
		d.fail("target on a %s", e.Kind)
	}
	if flags&flagHash != 0 {
		copy(e.Hash[:], d.bytes(32))
	}
	if flags&flagRemote != 0 {
		e.Remote = bytes.Clone(d.bytes(d.length()))
		if e.Remote == nil {
			e.Remote = []byte{}
		}
	}
	if flags&flagLocal != 0 {
		e.Local = LocalStat{Size: d.varint(), MTimeNs: d.varint(), Inode: d.uvarint(), CTimeNs: d.varint()}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Entry{}, corruptEntry(path, "%v", d.err)
	}
	return e, nil
}

// decodeHeader decodes the first four bytes of an entry: the encoding
// version, the kind, the flags and the access modifiers.
func decodeHeader(path string, b []byte) (Entry, byte, error) {
	e := Entry{Path: path}
	if len(b) < 4 {
		return Entry{}, 0, corruptEntry(path, "%d bytes, too short", len(b))
	}
	if b[0] != entryV1 {
		return Entry{}, 0, corruptEntry(path, "unknown encoding version %d", b[0])
	}
	e.Kind = Kind(b[1])
	if e.Kind < KindFile || e.Kind > KindSymlink {
		return Entry{}, 0, corruptEntry(path, "unknown kind %d", b[1])
	}
	flags := b[2]
	if flags&^flagsKnown != 0 {
		return Entry{}, 0, corruptEntry(path, "unknown flags %#x", flags)
	}
	e.Deleted = flags&flagDeleted != 0
	e.Dirty = flags&flagDirty != 0
	e.Access = Access{Read: Perm(b[3] & 3), Write: Perm(b[3] >> 2 & 3)}
	if b[3]>>4 != 0 || e.Access.Read > PermDeny || e.Access.Write > PermDeny {
		return Entry{}, 0, corruptEntry(path, "bad access byte %#x", b[3])
	}
	return e, flags, nil
}

// meta decodes an entry's mode, size and modification time into e.
func (d *decoder) meta(e *Entry) {
	mode := d.uvarint()
	if mode > math.MaxUint32 {
		d.fail("mode %#x out of range", mode)
	}
	e.Mode = fs.FileMode(mode)
	e.Size = d.varint()
	if e.Size < 0 && d.err == nil {
		d.fail("negative size %d", e.Size)
	}
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= 1e9 && d.err == nil {
		d.fail("nanoseconds %d out of range", nsec)
	}
	if d.err == nil {
		e.ModTime = time.Unix(sec, int64(nsec)).UTC()
	}
}

// version decodes a version vector: its node count, then each node ID, in
// ascending order, and its counter (not zero).
func (d *decoder) version() VersionVector {
	var v VersionVector
	n := d.uvarint()
	if n > uint64(len(d.b)) && d.err == nil { // each pair takes at least 2 bytes
		d.fail("version with %d nodes in %d bytes", n, len(d.b))
	}
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		node, c := d.string(), d.uvarint()
		switch {
		case d.err != nil:
		case node == "" || len(node) > MaxKeyLen:
			d.fail("version node ID of %d bytes", len(node))
		case i > 0 && node <= prev:
			d.fail("version nodes out of order at %q", node)
		case c == 0:
			d.fail("zero counter for node %q", node)
		default:
			if v == nil {
				v = make(VersionVector, n)
			}
			v[node] = c
		}
		prev = node
	}
	return v
}

func corruptEntry(path, format string, a ...any) error {
	return fmt.Errorf("entry %q: %s: %w", path, fmt.Sprintf(format, a...), ErrCorrupt)
}

// decoder reads varints and strings from b; after the first error every
// read returns zero values and err keeps that first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, a...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a length and checks that that many bytes are left.
func (d *decoder) length() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length %d beyond the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

// bytes returns the next n bytes, aliasing d.b.
func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	return string(d.bytes(d.length()))
}
