package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache/meta"
	"github.com/escalefs/escalefs/crypto"
)

// The wire forms. Member order here is the order in which they are
// written (docs/format.md §11); omitempty members are written only when
// set.

type wireLog struct {
	Version  int               `json:"version"`
	NodeName string            `json:"node_name"`
	Mode     string            `json:"mode,omitempty"`
	Time     *int64            `json:"time,omitempty"`
	Changes  []wireChange      `json:"changes"`
	Acks     map[string]uint64 `json:"acks"`
	Requests []wireRequest     `json:"requests"`
}

type wireSnapshot struct {
	Version  int               `json:"version"`
	NodeName string            `json:"node_name"`
	UpTo     uint64            `json:"up_to"`
	Entries  []wireChange      `json:"entries"`
	Acks     map[string]uint64 `json:"acks"`
}

type wireChange struct {
	Op      string            `json:"op"`
	Path    string            `json:"path"`
	From    string            `json:"from,omitempty"`
	Version map[string]uint64 `json:"version"`
	Size    int64             `json:"size,omitempty"`
	MTime   *int64            `json:"mtime,omitempty"`
	Mode    uint32            `json:"mode,omitempty"`
	Hash    string            `json:"hash,omitempty"`
	Target  string            `json:"target,omitempty"`
	Access  string            `json:"access,omitempty"`
	Pack    *wirePack         `json:"pack,omitempty"`
	Parts   []wireBlob        `json:"parts,omitempty"`
	Chunks  *wireChunks       `json:"chunks,omitempty"`
}

type wireChunks struct {
	Blobs []wireBlob  `json:"blobs"`
	List  []wireChunk `json:"list"`
}

type wireChunk struct {
	ID     string `json:"id"`
	Length int64  `json:"length"`
	Blob   *int   `json:"blob,omitempty"` // absent: in no blob
	Offset int64  `json:"offset,omitempty"`
}

type wirePack struct {
	Blob   wireBlob `json:"blob"`
	Offset int64    `json:"offset"`
	Length int64    `json:"length"`
}

type wireBlob struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // absent: a chunk blob without its hash
}

type wireRequest struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// EncodeLog returns the plaintext of l. It refuses (with ErrMalformed)
// anything DecodeLog would refuse. Setuid and setgid bits are dropped from
// modes; nil slices and maps are written empty.
func EncodeLog(l Log) ([]byte, error) {
	if err := checkVersion("log", l.Version); err != nil {
		return nil, err
	}
	if why := checkText(l.NodeName, MaxNodeNameLen); why != "" {
		return nil, malformed("log: node name: %s", why)
	}
	if !validTime(l.Time) {
		return nil, malformed("log: time out of the range of int64 nanoseconds")
	}
	if len(l.Changes) > maxChanges {
		return nil, malformed("log: %d changes, more than %d", len(l.Changes), maxChanges)
	}
	if len(l.Requests) > MaxRequests {
		return nil, malformed("log: %d requests, more than %d", len(l.Requests), MaxRequests)
	}
	if why := checkMode(l.Mode); why != "" {
		return nil, malformed("log: mode: %s", why)
	}
	w := wireLog{
		Version:  l.Version,
		NodeName: l.NodeName,
		Mode:     string(l.Mode),
		Time:     timeOut(l.Time),
		Changes:  make([]wireChange, len(l.Changes)),
		Requests: make([]wireRequest, len(l.Requests)),
	}
	var err error
	if w.Acks, err = acksOut("log", l.Acks); err != nil {
		return nil, err
	}
	for i, c := range l.Changes {
		c.Mode &^= setidBits
		why := c.check()
		if why == "" {
			why = c.checkIn(l.Version)
		}
		if why != "" {
			return nil, malformed("change %d %q: %s", i, c.Path, why)
		}
		w.Changes[i] = changeOut(c)
	}
	for i, r := range l.Requests {
		if why := checkRequest(r); why != "" {
			return nil, malformed("request %d %q: %s", i, r.Path, why)
		}
		w.Requests[i] = wireRequest{Path: r.Path, Hash: hex.EncodeToString(r.Hash[:])}
	}
	return marshal(w)
}

// DecodeLog parses and validates the plaintext of a log record. Errors
// wrap ErrMalformed and name the offending change or request by index and
// path. The result does not alias b.
func DecodeLog(b []byte) (Log, error) {
	var w wireLog
	if err := unmarshal("log", logShape, b, &w); err != nil {
		return Log{}, err
	}
	if err := checkVersion("log", w.Version); err != nil {
		return Log{}, err
	}
	if why := checkText(w.NodeName, MaxNodeNameLen); why != "" {
		return Log{}, malformed("log: node name: %s", why)
	}
	if len(w.Changes) > maxChanges {
		return Log{}, malformed("log: %d changes, more than %d", len(w.Changes), maxChanges)
	}
	if len(w.Requests) > MaxRequests {
		return Log{}, malformed("log: %d requests, more than %d", len(w.Requests), MaxRequests)
	}
	if why := checkMode(Mode(w.Mode)); why != "" {
		return Log{}, malformed("log: mode: %s", why)
	}
	l := Log{Version: w.Version, NodeName: w.NodeName, Mode: Mode(w.Mode), Time: timeIn(w.Time)}
	var err error
	if l.Acks, err = acksIn("log", w.Acks); err != nil {
		return Log{}, err
	}
	if len(w.Changes) > 0 {
		l.Changes = make([]Change, len(w.Changes))
	}
	for i, wc := range w.Changes {
		c, why := changeIn(wc)
		if why == "" {
			why = c.check()
		}
		if why == "" {
			why = c.checkIn(w.Version)
		}
		if why != "" {
			return Log{}, malformed("change %d %q: %s", i, wc.Path, why)
		}
		l.Changes[i] = c
	}
	if len(w.Requests) > 0 {
		l.Requests = make([]Request, len(w.Requests))
	}
	for i, wr := range w.Requests {
		r := Request{Path: wr.Path}
		why := hashIn(&r.Hash, wr.Hash)
		if why == "" {
			why = checkRequest(r)
		}
		if why != "" {
			return Log{}, malformed("request %d %q: %s", i, wr.Path, why)
		}
		l.Requests[i] = r
	}
	return l, nil
}

// snapshotOps are the ops a snapshot entry may have.
func checkEntryOp(op Op) string {
	switch op {
	case OpPut, OpMkdir, OpSymlink, OpDelete:
		return ""
	}
	return fmt.Sprintf("op %q in a snapshot (only put, mkdir, symlink and delete)", op)
}

// EncodeSnapshot returns the plaintext of s, with the checks of
// DecodeSnapshot (entries are also refused when two name the same path).
func EncodeSnapshot(s Snapshot) ([]byte, error) {
	if err := checkVersion("snapshot", s.Version); err != nil {
		return nil, err
	}
	if why := checkText(s.NodeName, MaxNodeNameLen); why != "" {
		return nil, malformed("snapshot: node name: %s", why)
	}
	if len(s.Entries) > maxChanges {
		return nil, malformed("snapshot: %d entries, more than %d", len(s.Entries), maxChanges)
	}
	w := wireSnapshot{
		Version:  s.Version,
		NodeName: s.NodeName,
		UpTo:     s.UpTo,
		Entries:  make([]wireChange, len(s.Entries)),
	}
	var err error
	if w.Acks, err = acksOut("snapshot", s.Acks); err != nil {
		return nil, err
	}
	seen := make(map[string]struct{}, len(s.Entries))
	for i, c := range s.Entries {
		c.Mode &^= setidBits
		why := checkEntryOp(c.Op)
		if why == "" {
			why = c.checkEntry()
		}
		if why == "" {
			why = c.checkIn(s.Version)
		}
		if _, dup := seen[c.Path]; why == "" && dup {
			why = "path listed twice"
		}
		if why != "" {
			return nil, malformed("entry %d %q: %s", i, c.Path, why)
		}
		seen[c.Path] = struct{}{}
		w.Entries[i] = changeOut(c)
	}
	return marshal(w)
}

// DecodeSnapshot parses and validates the plaintext of a snapshot record.
// Errors wrap ErrMalformed and name the offending entry by index and path.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	var w wireSnapshot
	if err := unmarshal("snapshot", snapshotShape, b, &w); err != nil {
		return Snapshot{}, err
	}
	if err := checkVersion("snapshot", w.Version); err != nil {
		return Snapshot{}, err
	}
	if why := checkText(w.NodeName, MaxNodeNameLen); why != "" {
		return Snapshot{}, malformed("snapshot: node name: %s", why)
	}
	if len(w.Entries) > maxChanges {
		return Snapshot{}, malformed("snapshot: %d entries, more than %d", len(w.Entries), maxChanges)
	}
	s := Snapshot{Version: w.Version, NodeName: w.NodeName, UpTo: w.UpTo}
	var err error
	if s.Acks, err = acksIn("snapshot", w.Acks); err != nil {
		return Snapshot{}, err
	}
	if len(w.Entries) > 0 {
		s.Entries = make([]Change, len(w.Entries))
	}
	seen := make(map[string]struct{}, len(w.Entries))
	for i, wc := range w.Entries {
		c, why := changeIn(wc)
		if why == "" {
			why = checkEntryOp(c.Op)
		}
		if why == "" {
			why = c.checkEntry()
		}
		if _, dup := seen[c.Path]; why == "" && dup {
			why = "path listed twice"
		}
		if why == "" {
			why = c.checkIn(w.Version)
		}
		if why != "" {
			return Snapshot{}, malformed("entry %d %q: %s", i, wc.Path, why)
		}
		seen[c.Path] = struct{}{}
		s.Entries[i] = c
	}
	return s, nil
}

func checkVersion(what string, v int) error {
	switch {
	case v > FormatVersion:
		return malformed("%s: format version %d is newer than this escalefs (%d): upgrade escalefs", what, v, FormatVersion)
	case v < MinFormatVersion:
		return malformed("%s: format version %d, expected %d to %d", what, v, MinFormatVersion, FormatVersion)
	}
	return nil
}

func checkRequest(r Request) string {
	if why := checkPath(r.Path); why != "" {
		return "path: " + why
	}
	if r.Hash == [32]byte{} {
		return "missing hash"
	}
	return ""
}

func timeOut(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ns := t.UnixNano()
	return &ns
}

func timeIn(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}

func acksOut(what string, acks map[crypto.NodeID]uint64) (map[string]uint64, error) {
	if len(acks) > MaxAcks {
		return nil, malformed("%s: acks of %d nodes, more than %d", what, len(acks), MaxAcks)
	}
	m := make(map[string]uint64, len(acks))
	for n, seq := range acks {
		m[n.String()] = seq
	}
	return m, nil
}

func acksIn(what string, w map[string]uint64) (map[crypto.NodeID]uint64, error) {
	if len(w) > MaxAcks {
		return nil, malformed("%s: acks of %d nodes, more than %d", what, len(w), MaxAcks)
	}
	m := make(map[crypto.NodeID]uint64, len(w))
	for s, seq := range w {
		if why := checkNodeHex(s); why != "" {
			return nil, malformed("%s: acks: %s", what, why)
		}
		n, _ := crypto.ParseNodeID(s)
		m[n] = seq
	}
	return m, nil
}

func changeOut(c Change) wireChange {
	w := wireChange{
		Op:      string(c.Op),
		Path:    c.Path,
		From:    c.From,
		Version: maps.Clone(map[string]uint64(c.Version)),
		Size:    c.Size,
		MTime:   timeOut(c.ModTime),
		Mode:    c.Mode,
		Target:  c.Target,
		Access:  c.Access.String(),
	}
	if c.Hash != [32]byte{} {
		w.Hash = hex.EncodeToString(c.Hash[:])
	}
	if p := c.Pack; p != nil {
		w.Pack = &wirePack{Blob: blobOut(p.Blob), Offset: p.Offset, Length: p.Length}
	}
	if c.Parts != nil {
		w.Parts = make([]wireBlob, len(c.Parts))
		for i, r := range c.Parts {
			w.Parts[i] = blobOut(r)
		}
	}
	if l := c.Chunks; l != nil {
		w.Chunks = &wireChunks{Blobs: make([]wireBlob, len(l.Blobs)), List: make([]wireChunk, len(l.Chunks))}
		for i, r := range l.Blobs {
			w.Chunks.Blobs[i] = blobOut(r)
		}
		for i, k := range l.Chunks {
			wk := wireChunk{ID: hex.EncodeToString(k.ID[:]), Length: k.Length, Offset: k.Offset}
			if k.Blob != NoBlob {
				wk.Blob = &k.Blob
			}
			w.Chunks.List[i] = wk
		}
	}
	return w
}

func blobOut(r crypto.BlobRef) wireBlob {
	w := wireBlob{ID: r.ID.String(), Size: r.Size}
	if r.SHA256 != [32]byte{} {
		w.SHA256 = hex.EncodeToString(r.SHA256[:])
	}
	return w
}

// changeIn converts the wire form; the result is then checked by check.
func changeIn(w wireChange) (Change, string) {
	c := Change{
		Op:      Op(w.Op),
		Path:    w.Path,
		From:    w.From,
		Size:    w.Size,
		ModTime: timeIn(w.MTime),
		Mode:    w.Mode,
		Target:  w.Target,
	}
	if len(w.Version) > MaxVersionNodes {
		return c, fmt.Sprintf("version of %d nodes, more than %d", len(w.Version), MaxVersionNodes)
	}
	if len(w.Version) > 0 {
		c.Version = meta.VersionVector(w.Version)
	}
	if c.Mode&^PermMask == 0 {
		c.Mode &^= setidBits
	}
	if w.Hash != "" {
		if why := hashIn(&c.Hash, w.Hash); why != "" {
			return c, why
		}
	}
	var ok bool
	if c.Access, ok = accessIn(w.Access); !ok {
		return c, fmt.Sprintf("bad access modifiers %q", w.Access)
	}
	if w.Pack != nil {
		c.Pack = &PackRef{Offset: w.Pack.Offset, Length: w.Pack.Length}
		if why := blobIn(&c.Pack.Blob, w.Pack.Blob); why != "" {
			return c, "pack: " + why
		}
	}
	if len(w.Parts) > 0 {
		if len(w.Parts) > MaxParts {
			return c, fmt.Sprintf("%d parts, more than %d", len(w.Parts), MaxParts)
		}
		c.Parts = make([]crypto.BlobRef, len(w.Parts))
		for i, wb := range w.Parts {
			if why := blobIn(&c.Parts[i], wb); why != "" {
				return c, fmt.Sprintf("part %d: %s", i, why)
			}
		}
	}
	if wc := w.Chunks; wc != nil {
		if len(wc.List) > MaxParts || len(wc.Blobs) > MaxParts {
			return c, fmt.Sprintf("chunks: %d chunks in %d blobs, more than %d", len(wc.List), len(wc.Blobs), MaxParts)
		}
		l := &ChunkList{Blobs: make([]crypto.BlobRef, len(wc.Blobs)), Chunks: make([]ChunkRef, len(wc.List))}
		for i, wb := range wc.Blobs {
			if why := blobIn(&l.Blobs[i], wb); why != "" {
				return c, fmt.Sprintf("chunks: blob %d: %s", i, why)
			}
		}
		for i, wk := range wc.List {
			k := ChunkRef{Length: wk.Length, Blob: NoBlob, Offset: wk.Offset}
			if why := hashIn((*[32]byte)(&k.ID), wk.ID); why != "" {
				return c, fmt.Sprintf("chunks: chunk %d: ID: %s", i, why)
			}
			if wk.Blob != nil {
				if *wk.Blob < 0 {
					return c, fmt.Sprintf("chunks: chunk %d: blob %d", i, *wk.Blob)
				}
				k.Blob = *wk.Blob
			}
			l.Chunks[i] = k
		}
		c.Chunks = l
	}
	return c, ""
}

func blobIn(r *crypto.BlobRef, w wireBlob) string {
	if len(w.ID) != 32 || strings.ToLower(w.ID) != w.ID {
		return fmt.Sprintf("blob ID %q: expected 32 lower-case hex digits", w.ID)
	}
	id, err := crypto.ParseBlobID(w.ID)
	if err != nil {
		return err.Error()
	}
	r.ID, r.Size = id, w.Size
	if w.SHA256 == "" {
		return "" // a chunk blob without its hash; elsewhere refused as missing
	}
	if why := hashIn(&r.SHA256, w.SHA256); why != "" {
		return fmt.Sprintf("blob %s: %s", w.ID, why)
	}
	return ""
}

// hashIn parses 64 lower-case hex digits into h.
func hashIn(h *[32]byte, s string) string {
	if len(s) != 64 || strings.ToLower(s) != s {
		return fmt.Sprintf("hash %q: expected 64 lower-case hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return fmt.Sprintf("hash %q: expected 64 lower-case hex digits", s)
	}
	return ""
}

// accessIn parses Escale's notation as meta.Access.String writes it.
func accessIn(s string) (meta.Access, bool) {
	var a meta.Access
	rest := s
	for _, f := range []struct {
		c byte
		p *meta.Perm
	}{{'r', &a.Read}, {'w', &a.Write}} {
		if len(rest) >= 2 && rest[0] == f.c {
			switch rest[1] {
			case '+':
				*f.p = meta.PermAllow
			case '-':
				*f.p = meta.PermDeny
			default:
				return a, false
			}
			rest = rest[2:]
		}
	}
	return a, rest == ""
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, malformed("%v", err)
	}
	if buf.Len() > crypto.MaxRecordSize {
		return nil, malformed("plaintext of %d bytes exceeds the %d-byte record limit", buf.Len(), crypto.MaxRecordSize)
	}
	return buf.Bytes(), nil
}

// RecordPadding is the step that sealed records' plaintexts are padded to.
const RecordPadding = 256

// Pad appends spaces to an encoded record, up to the next multiple of
// RecordPadding bytes (but not past crypto.MaxRecordSize): readers take a
// JSON object followed by whitespace, and the relay can no longer read the
// exact length of a record's paths off its size.
func Pad(b []byte) []byte {
	n := (len(b) + RecordPadding - 1) / RecordPadding * RecordPadding
	if n > crypto.MaxRecordSize {
		n = crypto.MaxRecordSize
	}
	for len(b) < n {
		b = append(b, ' ')
	}
	return b
}
