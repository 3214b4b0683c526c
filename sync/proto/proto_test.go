package proto_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache/meta"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/log.golden")

const (
	nodeA = "0123456789abcdef0123456789abcdef"
	nodeB = "fedcba9876543210fedcba9876543210"
)

func node(t testing.TB, s string) crypto.NodeID {
	t.Helper()
	n, err := crypto.ParseNodeID(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func blob(seed byte, size int64) crypto.BlobRef {
	var r crypto.BlobRef
	for i := range r.ID {
		r.ID[i] = seed + byte(i)
	}
	r.Size = size
	r.SHA256 = sha256.Sum256([]byte{seed})
	return r
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

var (
	mtime = time.Date(2026, 11, 24, 19, 3, 50, 123456789, time.UTC)
	vv    = meta.VersionVector{nodeA: 3, nodeB: 1}
)

// sampleChanges has every op and every field.
func sampleChanges() []proto.Change {
	return []proto.Change{
		{Op: proto.OpPut, Path: "docs/small.txt", Version: vv, Size: 5, ModTime: mtime, Mode: 0o644,
			Hash: hashOf("hello"), Access: meta.Access{Read: meta.PermAllow, Write: meta.PermDeny},
			Pack: &proto.PackRef{Blob: blob(1, 4096), Offset: 100, Length: 5}},
		{Op: proto.OpPut, Path: "big.iso", Version: meta.VersionVector{nodeA: 1}, Size: 3 << 30, ModTime: time.Unix(0, 1).UTC(),
			Mode: 0o1600, Hash: hashOf("big"), Parts: []crypto.BlobRef{blob(2, 1<<30), blob(3, 1<<30), blob(4, 1<<30+200)}},
		{Op: proto.OpPut, Path: "medium.bin", Version: vv, Size: 70000, Mode: 0o600, Hash: hashOf("m"),
			Parts: []crypto.BlobRef{blob(5, 70200)}},
		{Op: proto.OpPut, Path: "empty", Version: vv, Hash: hashOf(""), ModTime: time.Unix(0, 0).UTC()},
		{Op: proto.OpDelete, Path: "gone.txt", Version: vv, ModTime: mtime},
		{Op: proto.OpMkdir, Path: "docs", Version: vv, Mode: 0o755, Access: meta.Access{Write: meta.PermAllow}},
		{Op: proto.OpRmdir, Path: "old/dir", Version: vv},
		{Op: proto.OpRename, Path: "new name.txt", From: "docs/old name.txt", Version: vv},
		{Op: proto.OpMeta, Path: "docs/small.txt", Version: vv, Mode: 0o400, ModTime: time.Unix(-5, 999).UTC(),
			Access: meta.Access{Read: meta.PermDeny}},
		{Op: proto.OpSymlink, Path: "link", Version: vv, Target: "../elsewhere/ü \"quoted\" <&>", Access: meta.Access{Read: meta.PermAllow}},
		{Op: proto.OpPut, Path: "ünïcödé/日本.txt", Version: vv, Size: 1, Hash: hashOf("x"),
			Pack: &proto.PackRef{Blob: blob(6, 300), Offset: 0, Length: 1}},
		// Chunks: two in one blob, one held by every puller, one in a
		// second blob.
		{Op: proto.OpPut, Path: "disk.img", Version: vv, Size: 3<<20 + 100, Mode: 0o600, Hash: hashOf("img"),
			Chunks: &proto.ChunkList{
				Blobs: []crypto.BlobRef{blob(7, 2<<20+500), blob(8, 1<<20+200)},
				Chunks: []proto.ChunkRef{
					{ID: crypto.ChunkID(hashOf("c1")), Length: 1 << 20, Blob: 0, Offset: 0},
					{ID: crypto.ChunkID(hashOf("c2")), Length: 100, Blob: proto.NoBlob},
					{ID: crypto.ChunkID(hashOf("c3")), Length: 1 << 20, Blob: 0, Offset: 1 << 20},
					{ID: crypto.ChunkID(hashOf("c4")), Length: 1 << 20, Blob: 1, Offset: 0},
				},
			}},
	}
}

func sampleLog(t testing.TB) proto.Log {
	return proto.Log{
		Version:  proto.ChunksVersion, // it holds chunks, in blobs with their hashes
		NodeName: "laptop <alice>",
		Time:     mtime,
		Changes:  sampleChanges(),
		Acks:     map[crypto.NodeID]uint64{node(t, nodeB): 41, node(t, nodeA): 0},
		Requests: []proto.Request{{Path: "lost/file", Hash: hashOf("lost")}},
	}
}

func TestLogRoundTrip(t *testing.T) {
	full := sampleLog(t)
	for _, tc := range []struct {
		name string
		in   proto.Log
		want proto.Log // the decoded form, when it differs from in
	}{
		{name: "full", in: full},
		{name: "nil acks", in: proto.Log{Version: 1}, want: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}}},
		{name: "empty acks", in: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}}},
		{name: "empty slices", in: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}, Changes: []proto.Change{}, Requests: []proto.Request{}},
			want: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}}},
		{name: "setuid stripped", in: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}, Changes: []proto.Change{
			{Op: proto.OpMeta, Path: "a", Version: vv, Mode: 0o6755}}},
			want: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}, Changes: []proto.Change{
				{Op: proto.OpMeta, Path: "a", Version: vv, Mode: 0o755}}}},
		{name: "time far", in: proto.Log{Version: 1, Acks: map[crypto.NodeID]uint64{}, Time: time.Unix(0, 1<<62).UTC()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.EncodeLog(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := proto.DecodeLog(b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			want := tc.want
			if want.Version == 0 {
				want = tc.in
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
			b2, err := proto.EncodeLog(got)
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs (%v):\n%s\n%s", err, b, b2)
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	var entries []proto.Change
	for _, c := range sampleChanges() {
		switch c.Op {
		case proto.OpPut, proto.OpMkdir, proto.OpSymlink, proto.OpDelete:
			entries = append(entries, c)
		}
	}
	for _, s := range []proto.Snapshot{
		{Version: proto.ChunksVersion, NodeName: "n", UpTo: 1<<64 - 1, Entries: entries, Acks: map[crypto.NodeID]uint64{node(t, nodeA): 7}},
		{Version: 1, Acks: map[crypto.NodeID]uint64{}},
	} {
		b, err := proto.EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := proto.DecodeSnapshot(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("decoded\n%+v\nwant\n%+v", got, s)
		}
	}
}

func TestGolden(t *testing.T) {
	b, err := proto.EncodeLog(sampleLog(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "log.golden")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("encoding changed (go test ./sync/proto/ -run TestGolden -update if intended):\ngot  %s\nwant %s", b, want)
	}
	l, err := proto.DecodeLog(want)
	if err != nil || !reflect.DeepEqual(l, sampleLog(t)) {
		t.Errorf("golden decodes to %+v, %v", l, err)
	}
}

// Malformed inputs, as JSON, built from a valid change by textual edits.
const (
	h64   = `"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"`
	ver   = `"version":{"` + nodeA + `":1}`
	blobJ = `{"id":"000102030405060708090a0b0c0d0e0f","size":10,"sha256":` + h64 + `}`
)

func logWith(changes ...string) string {
	return `{"version":1,"node_name":"n","changes":[` + strings.Join(changes, ",") + `],"acks":{},"requests":[]}`
}

func TestDecodeMalformed(t *testing.T) {
	put := func(extra string) string {
		return `{"op":"put","path":"a",` + ver + `,"size":5,"hash":` + h64 + extra + `}`
	}
	big := strings.Repeat("a/", 2100) + "a"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown op", logWith(`{"op":"chown","path":"a",` + ver + `}`), `change 0 "a": unknown op "chown"`},
		{"unknown field", logWith(`{"op":"mkdir","path":"a",` + ver + `,"colour":1}`), `changes[0]: unknown field "colour"`},
		{"unknown pack field", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":0,"length":5,"x":1}`)), `changes[0].pack: unknown field "x"`},
		{"escaped field name", logWith(`{"op":"mkdir","\u0070ath":"a",` + ver + `}`), `unknown field "\\u0070ath"`},
		{"repeated version node", logWith(`{"op":"mkdir","path":"a","version":{"` + nodeA + `":1,"` + nodeA + `":2}}`), `changes[0].version: member "` + nodeA + `" repeated`},
		{"object in version", logWith(`{"op":"mkdir","path":"a","version":{"` + nodeA + `":{}}}`), `changes[0].version.` + nodeA + `: unexpected object`},
		{"object for path", logWith(`{"op":"mkdir","path":{},` + ver + `}`), `changes[0].path: unexpected object`},
		{"unknown top field", `{"version":1,"node_name":"n","changes":[],"acks":{},"requests":[],"x":1}`, `unknown field "x"`},
		{"case folded field", `{"Version":1,"node_name":"n","changes":[],"acks":{},"requests":[]}`, `unknown field "Version"`},
		{"repeated member", `{"version":1,"version":1,"node_name":"n","changes":[],"acks":{},"requests":[]}`, `member "version" repeated`},
		{"null", `{"version":1,"node_name":null,"changes":[],"acks":{},"requests":[]}`, `null`},
		{"newer version", `{"version":5,"node_name":"n","changes":[],"acks":{},"requests":[]}`, `newer than this escalefs`},
		{"version zero", `{"node_name":"n","changes":[],"acks":{},"requests":[]}`, `format version 0`},
		{"not an object", `[]`, `not a JSON object`},
		{"two values", logWith() + `{}`, `after top-level value`},
		{"trailing garbage", logWith() + `x`, `invalid character`},
		{"empty", ``, `unexpected end of JSON input`},
		{"invalid utf-8", "{\"version\":1,\"node_name\":\"\xff\"}", `not valid UTF-8`},
		{"absolute path", logWith(`{"op":"mkdir","path":"/etc",` + ver + `}`), `change 0 "/etc": path: absolute`},
		{"dotdot path", logWith(`{"op":"mkdir","path":"a/../../etc",` + ver + `}`), `change 0 "a/../../etc": path: contains a ".." component`},
		{"nul path", logWith(`{"op":"mkdir","path":"a\u0000b",` + ver + `}`), `path: contains a NUL byte`},
		{"control path", logWith(`{"op":"mkdir","path":"a\nb",` + ver + `}`), `path: contains control character 0x0a`},
		{"backslash path", logWith(`{"op":"mkdir","path":"a\\b",` + ver + `}`), `change 0 "a\\b": path: contains a backslash`},
		{"empty path", logWith(`{"op":"mkdir","path":"",` + ver + `}`), `change 0 "": path: empty`},
		{"trailing slash", logWith(`{"op":"mkdir","path":"a/",` + ver + `}`), `change 0 "a/": path: trailing slash`},
		{"dot component", logWith(`{"op":"mkdir","path":"a/./b",` + ver + `}`), `path: "." component`},
		{"empty component", logWith(`{"op":"mkdir","path":"a//b",` + ver + `}`), `path: empty component`},
		{"long path", logWith(`{"op":"mkdir","path":"` + big + `",` + ver + `}`), `path: longer than 4096 bytes`},
		{"second change bad", logWith(`{"op":"mkdir","path":"ok",`+ver+`}`, `{"op":"mkdir","path":"/x",`+ver+`}`), `change 1 "/x"`},
		{"rename without from", logWith(`{"op":"rename","path":"b",` + ver + `}`), `change 0 "b": rename without from`},
		{"rename bad from", logWith(`{"op":"rename","path":"b","from":"../a",` + ver + `}`), `from "../a": contains a ".." component`},
		{"rename into itself", logWith(`{"op":"rename","path":"a/b","from":"a",` + ver + `}`), `rename of "a" into itself`},
		{"from on put", logWith(put(`,"from":"b","pack":{"blob":` + blobJ + `,"offset":0,"length":5}`)), `unexpected from`},
		{"size on mkdir", logWith(`{"op":"mkdir","path":"a",` + ver + `,"size":3}`), `unexpected size`},
		{"hash on delete", logWith(`{"op":"delete","path":"a",` + ver + `,"hash":` + h64 + `}`), `unexpected hash`},
		{"target on put", logWith(put(`,"target":"x","parts":[` + blobJ + `]`)), `unexpected target`},
		{"mode on delete", logWith(`{"op":"delete","path":"a",` + ver + `,"mode":420}`), `unexpected mode`},
		{"access on rename", logWith(`{"op":"rename","path":"a","from":"b",` + ver + `,"access":"r-"}`), `unexpected access`},
		{"pack on meta", logWith(`{"op":"meta","path":"a",` + ver + `,"pack":{"blob":` + blobJ + `,"offset":0,"length":5}}`), `unexpected pack`},
		{"symlink without target", logWith(`{"op":"symlink","path":"a",` + ver + `}`), `symlink without target`},
		{"put both", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":0,"length":5},"parts":[` + blobJ + `]`)), `put with more than one of pack, parts and chunks`},
		{"put no content", logWith(put(``)), `put of 5 bytes without pack, parts or chunks`},
		{"chunks and pack", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":0,"length":5},"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":5}]}`)), `put with more than one of pack, parts and chunks`},
		{"no chunk", logWith(put(`,"chunks":{"blobs":[],"list":[]}`)), `chunks: no chunk`},
		{"chunks short", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":4}]}`)), `chunks of 4 bytes for a size of 5`},
		{"chunks long", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":3},{"id":` + h64 + `,"length":3}]}`)), `chunks longer than the size 5`},
		{"chunk blob out of range", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":5,"blob":0}]}`)), `chunk 0: blob 0 of 0`},
		{"chunk negative blob", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":5,"blob":-1}]}`)), `chunk 0: blob -1`},
		{"chunk offset without blob", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":5,"offset":7}]}`)), `offset 7 in no blob`},
		{"chunk blob unused", logWith(put(`,"chunks":{"blobs":[` + blobJ + `],"list":[{"id":` + h64 + `,"length":5}]}`)), `blob 0 holds no chunk`},
		{"chunk too long", logWith(`{"op":"put","path":"a",` + ver + `,"size":9000000,"hash":` + h64 + `,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":9000000}]}}`), `length 9000000 outside 1…8388608`},
		{"chunk bad id", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":"xyz","length":5}]}`)), `chunk 0: ID: hash "xyz"`},
		{"chunks on mkdir", logWith(`{"op":"mkdir","path":"a",` + ver + `,"chunks":{"blobs":[],"list":[]}}`), `unexpected chunks`},
		{"chunks in version 1", logWith(put(`,"chunks":{"blobs":[],"list":[{"id":` + h64 + `,"length":5}]}`)), `chunks in a record of format version 1 (they need 2)`},
		{"version 0", `{"version":0,"node_name":"n","changes":[],"acks":{},"requests":[]}`, `format version 0, expected 1 to 4`},
		{"put no hash", logWith(`{"op":"put","path":"a",` + ver + `}`), `put without hash`},
		{"empty put with content", logWith(`{"op":"put","path":"a",` + ver + `,"hash":` + h64 + `,"parts":[` + blobJ + `]}`), `empty file with content`},
		{"negative size", logWith(`{"op":"put","path":"a",` + ver + `,"size":-1,"hash":` + h64 + `}`), `negative size -1`},
		{"negative offset", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":-1,"length":5}`)), `pack: negative offset -1`},
		{"offset overflow", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":9223372036854775807,"length":5}`)), `overflows`},
		{"pack length differs", logWith(put(`,"pack":{"blob":` + blobJ + `,"offset":0,"length":4}`)), `length 4 differs from size 5`},
		{"zero-size part", logWith(put(`,"parts":[` + strings.Replace(blobJ, `"size":10`, `"size":0`, 1) + `]`)), `part 0: blob 000102030405060708090a0b0c0d0e0f: size 0 not positive`},
		{"bad blob hex", logWith(put(`,"parts":[` + strings.Replace(blobJ, `0001`, `zz01`, 1) + `]`)), `part 0: blob ID "zz0102`},
		{"upper-case blob hex", logWith(put(`,"parts":[` + strings.Replace(blobJ, `0a0b`, `0A0B`, 1) + `]`)), `lower-case hex`},
		{"bad hash hex", logWith(`{"op":"put","path":"a",` + ver + `,"hash":"abc"}`), `hash "abc": expected 64 lower-case hex digits`},
		{"bad version node", logWith(`{"op":"mkdir","path":"a","version":{"abc":1}}`), `version: node ID "abc"`},
		{"zero counter", logWith(`{"op":"mkdir","path":"a","version":{"` + nodeA + `":0}}`), `zero counter`},
		{"missing version", logWith(`{"op":"mkdir","path":"a"}`), `missing version`},
		{"mode bits", logWith(`{"op":"mkdir","path":"a",` + ver + `,"mode":65535}`), `mode 0177777 has bits outside`},
		{"bad access", logWith(`{"op":"mkdir","path":"a",` + ver + `,"access":"w+r+"}`), `bad access modifiers "w+r+"`},
		{"float size", logWith(`{"op":"put","path":"a",` + ver + `,"size":5.5}`), `cannot unmarshal number 5.5`},
		{"bad ack node", `{"version":1,"node_name":"n","changes":[],"acks":{"00":1},"requests":[]}`, `acks: node ID "00"`},
		{"bad request", `{"version":1,"node_name":"n","changes":[],"acks":{},"requests":[{"path":"a/..","hash":` + h64 + `}]}`, `request 0 "a/..": path: contains a ".." component`},
		{"request no hash", `{"version":1,"node_name":"n","changes":[],"acks":{},"requests":[{"path":"a","hash":""}]}`, `request 0 "a": hash ""`},
		{"control in name", `{"version":1,"node_name":"a\u0007","changes":[],"acks":{},"requests":[]}`, `node name: contains control character 0x07`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proto.DecodeLog([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %s", tc.in)
			}
			if !errors.Is(err, proto.ErrMalformed) {
				t.Errorf("%v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeSnapshotMalformed(t *testing.T) {
	snap := func(entries ...string) string {
		return `{"version":1,"node_name":"n","up_to":3,"entries":[` + strings.Join(entries, ",") + `],"acks":{}}`
	}
	for _, tc := range []struct{ name, in, want string }{
		{"rename entry", snap(`{"op":"rename","path":"a","from":"b",` + ver + `}`), `entry 0 "a": op "rename" in a snapshot`},
		{"duplicate path", snap(`{"op":"mkdir","path":"a",`+ver+`}`, `{"op":"delete","path":"a",`+ver+`}`), `entry 1 "a": path listed twice`},
		{"newer", `{"version":7,"node_name":"n","up_to":3,"entries":[],"acks":{}}`, `newer than this escalefs`},
		{"log member", `{"version":1,"node_name":"n","up_to":3,"entries":[],"acks":{},"requests":[]}`, `unknown field "requests"`},
		{"negative up_to", `{"version":1,"node_name":"n","up_to":-3,"entries":[],"acks":{}}`, `cannot unmarshal`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proto.DecodeSnapshot([]byte(tc.in))
			if err == nil || !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestBounds(t *testing.T) {
	many := make(map[string]uint64, proto.MaxVersionNodes+1)
	for i := range proto.MaxVersionNodes + 1 {
		many[fmt.Sprintf("%032x", i)] = 1
	}
	c := proto.Change{Op: proto.OpMkdir, Path: "a", Version: many}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "more than 10000") {
		t.Errorf("oversized version vector: %v", err)
	}
	if _, err := proto.EncodeLog(proto.Log{Version: 1, Changes: []proto.Change{c}}); err == nil {
		t.Error("encoded an oversized version vector")
	}
	// The same through the decoder.
	var sb strings.Builder
	sb.WriteString(`{"op":"mkdir","path":"a","version":{`)
	first := true
	for n := range many {
		if !first {
			sb.WriteByte(',')
		}
		first = false
		sb.WriteString(`"` + n + `":1`)
	}
	sb.WriteString(`}}`)
	if _, err := proto.DecodeLog([]byte(logWith(sb.String()))); err == nil || !strings.Contains(err.Error(), "more than 10000") {
		t.Errorf("decoded an oversized version vector: %v", err)
	}

	defer proto.SetMaxChanges(3)()
	mk := `{"op":"mkdir","path":"a",` + ver + `}`
	if _, err := proto.DecodeLog([]byte(logWith(mk, mk, mk, mk))); err == nil || !strings.Contains(err.Error(), "4 changes, more than 3") {
		t.Errorf("too many changes: %v", err)
	}
	if _, err := proto.DecodeSnapshot([]byte(`{"version":1,"node_name":"","up_to":0,"entries":[{},{},{},{}],"acks":{}}`)); err == nil || !strings.Contains(err.Error(), "4 entries, more than 3") {
		t.Errorf("too many entries: %v", err)
	}
	if _, err := proto.EncodeLog(proto.Log{Version: 1, Changes: make([]proto.Change, 4)}); err == nil || !strings.Contains(err.Error(), "4 changes, more than 3") {
		t.Errorf("encoded too many changes: %v", err)
	}
	if _, err := proto.DecodeLog(make([]byte, crypto.MaxRecordSize+1)); err == nil || !strings.Contains(err.Error(), "record limit") {
		t.Errorf("oversized plaintext: %v", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    proto.Log
		want string
	}{
		{"version", proto.Log{Version: 5}, "version 5"},
		{"bad path", proto.Log{Version: 1, Changes: []proto.Change{{Op: proto.OpMkdir, Path: "../x", Version: vv}}}, `change 0 "../x"`},
		{"rename without from", proto.Log{Version: 1, Changes: []proto.Change{{Op: proto.OpRename, Path: "x", Version: vv}}}, "rename without from"},
		{"zero counter", proto.Log{Version: 1, Changes: []proto.Change{{Op: proto.OpMkdir, Path: "x", Version: meta.VersionVector{nodeA: 0}}}}, "zero counter"},
		{"bad request", proto.Log{Version: 1, Requests: []proto.Request{{Path: "x"}}}, `request 0 "x": missing hash`},
		{"time", proto.Log{Version: 1, Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, "time out of the range"},
		{"name", proto.Log{Version: 1, NodeName: "a\tb"}, "node name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proto.EncodeLog(tc.l)
			if err == nil || !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := proto.EncodeSnapshot(proto.Snapshot{Version: 1, Entries: []proto.Change{{Op: proto.OpMeta, Path: "a", Version: vv}}}); err == nil {
		t.Error("encoded a meta entry in a snapshot")
	}
}

func FuzzDecodeLog(f *testing.F) {
	if b, err := proto.EncodeLog(sampleLog(f)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(logWith(`{"op":"rename","path":"b","from":"a",` + ver + `}`)))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := proto.DecodeLog(b)
		if err != nil {
			if !errors.Is(err, proto.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := proto.EncodeLog(l)
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", l, err)
		}
		l2, err := proto.DecodeLog(enc)
		if err != nil {
			t.Fatalf("re-encoding %s does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip changed\n%+v\n%+v", l, l2)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(`{"version":1,"node_name":"n","up_to":3,"entries":[{"op":"mkdir","path":"a",` + ver + `,"mode":493}],"acks":{"` + nodeB + `":2}}`))
	f.Add([]byte(`{"version":1,"node_name":"","up_to":0,"entries":[{"op":"put","path":"a",` + ver + `,"size":5,"hash":` + h64 + `,"pack":{"blob":` + blobJ + `,"offset":7,"length":5}}],"acks":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := proto.DecodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, proto.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := proto.EncodeSnapshot(s)
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", s, err)
		}
		s2, err := proto.DecodeSnapshot(enc)
		if err != nil {
			t.Fatalf("re-encoding %s does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed\n%+v\n%+v", s, s2)
		}
	})
}

// bigLog is a log of n puts in packs, about 450 bytes each encoded.
func bigLog(b testing.TB, n int) proto.Log {
	l := proto.Log{Version: 1, NodeName: "bench", Time: mtime, Acks: map[crypto.NodeID]uint64{}}
	for i := range n {
		l.Changes = append(l.Changes, proto.Change{Op: proto.OpPut, Path: fmt.Sprintf("dir%d/file%d.txt", i/100, i),
			Version: vv, Size: 100, ModTime: mtime, Mode: 0o644, Hash: hashOf(fmt.Sprint(i)),
			Pack: &proto.PackRef{Blob: blob(byte(i), 1<<20), Offset: int64(i%1000) * 100, Length: 100}})
	}
	return l
}

func BenchmarkEncodeLog(b *testing.B) {
	l := bigLog(b, 10000)
	for b.Loop() {
		enc, err := proto.EncodeLog(l)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(enc)))
	}
}

func BenchmarkDecodeLog(b *testing.B) {
	enc, err := proto.EncodeLog(bigLog(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := proto.DecodeLog(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range sampleChanges() {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := proto.Change{Op: proto.OpPut, Path: "a/b", Version: vv, Size: 3, Hash: hashOf("abc"),
		Pack: &proto.PackRef{Blob: blob(1, 10), Length: 3}, Parts: []crypto.BlobRef{blob(2, 10)}}
	err := bad.Validate()
	if !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), `"a/b" (put): put with more than one of pack, parts and chunks`) {
		t.Errorf("Validate: %v", err)
	}
}

// TestEscaping checks the string escaping docs/format.md §11.1 specifies.
func TestEscaping(t *testing.T) {
	l := proto.Log{Version: 1, NodeName: "a\u2028b\u2029c \"q\" \\ <&> é", Acks: map[crypto.NodeID]uint64{}}
	b, err := proto.EncodeLog(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"node_name":"a\u2028b\u2029c \"q\" \\ <&> é","changes":[],"acks":{},"requests":[]}` + "\n"
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if got, err := proto.DecodeLog(b); err != nil || !reflect.DeepEqual(got, l) {
		t.Errorf("decoded %+v, %v", got, err)
	}
}

// TestVersionFor: a record is written in the lowest format version that
// holds it, so that nodes of an older escalefs read what needs no newer
// format.
func TestVersionFor(t *testing.T) {
	changes := sampleChanges()
	if v := proto.VersionFor(changes[:len(changes)-1]); v != proto.MinFormatVersion {
		t.Errorf("without chunks: version %d, want %d", v, proto.MinFormatVersion)
	}
	if v := proto.VersionFor(changes); v != proto.ChunksVersion {
		t.Errorf("with chunks: version %d, want %d", v, proto.ChunksVersion)
	}
	if _, err := proto.EncodeLog(proto.Log{Version: proto.MinFormatVersion, Changes: changes}); err == nil ||
		!strings.Contains(err.Error(), "chunks in a record of format version 1") {
		t.Errorf("a version 1 log with chunks: %v", err)
	}

	// A chunk blob without its hash needs version 3, which writes no
	// sha256 for it; version 2 refuses it, either way.
	before, err := proto.EncodeLog(proto.Log{Version: proto.ChunksVersion, Changes: changes, Acks: map[crypto.NodeID]uint64{}})
	if err != nil {
		t.Fatal(err)
	}
	last := &changes[len(changes)-1]
	list := *last.Chunks
	list.Blobs = slices.Clone(list.Blobs)
	list.Blobs[1].SHA256 = [32]byte{}
	last.Chunks = &list
	if v := proto.VersionFor(changes); v != proto.UnhashedChunkBlobsVersion {
		t.Errorf("with a chunk blob without its hash: version %d, want %d", v, proto.UnhashedChunkBlobsVersion)
	}
	lg := proto.Log{Version: proto.UnhashedChunkBlobsVersion, Changes: changes, Acks: map[crypto.NodeID]uint64{}}
	b, err := proto.EncodeLog(lg)
	if err != nil {
		t.Fatal(err)
	}
	if n, was := strings.Count(string(b), `"sha256"`), strings.Count(string(before), `"sha256"`); n != was-1 {
		t.Errorf("%d sha256 members, %d with every hash: want one fewer", n, was)
	}
	got, err := proto.DecodeLog(b)
	if err != nil || !reflect.DeepEqual(got.Changes, lg.Changes) {
		t.Errorf("version 3 round trip: %v", err)
	}
	if _, err := proto.EncodeLog(proto.Log{Version: proto.ChunksVersion, Changes: changes}); err == nil ||
		!strings.Contains(err.Error(), "without its hash in a record of format version 2") {
		t.Errorf("a version 2 log with a chunk blob without its hash: %v", err)
	}
	v2 := strings.Replace(string(b), `{"version":3,`, `{"version":2,`, 1)
	if _, err := proto.DecodeLog([]byte(v2)); !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), "without its hash") {
		t.Errorf("a version 2 log with a chunk blob without its hash decoded: %v", err)
	}
	// A pack or a part still needs its hash.
	noHash := strings.Replace(string(b), `,"sha256":"4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a"`, ``, 1)
	if noHash == string(b) {
		t.Fatal("test bug: the pack's hash is not in the record")
	}
	if _, err := proto.DecodeLog([]byte(noHash)); !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), "missing hash") {
		t.Errorf("a pack without its hash decoded: %v", err)
	}

	// A file hashed by its chunks needs version 4; version 3 refuses it.
	last.Hash = last.Chunks.ContentHash()
	if !last.ChunkedHash() || changes[0].ChunkedHash() {
		t.Error("ChunkedHash does not tell a chunk list's hash from another")
	}
	if v := proto.VersionFor(changes); v != proto.ChunkedHashVersion {
		t.Errorf("with a file hashed by its chunks: version %d, want %d", v, proto.ChunkedHashVersion)
	}
	lg4 := proto.Log{Version: proto.ChunkedHashVersion, Changes: changes, Acks: map[crypto.NodeID]uint64{}}
	b4, err := proto.EncodeLog(lg4)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := proto.DecodeLog(b4); err != nil || !reflect.DeepEqual(got.Changes, lg4.Changes) {
		t.Errorf("version 4 round trip: %v", err)
	}
	if _, err := proto.EncodeLog(proto.Log{Version: proto.UnhashedChunkBlobsVersion, Changes: changes}); err == nil ||
		!strings.Contains(err.Error(), "the hash of a chunk list in a record of format version 3") {
		t.Errorf("a version 3 log with a file hashed by its chunks: %v", err)
	}
	v3 := strings.Replace(string(b4), `{"version":4,`, `{"version":3,`, 1)
	if _, err := proto.DecodeLog([]byte(v3)); !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), "the hash of a chunk list") {
		t.Errorf("a version 3 log with a file hashed by its chunks decoded: %v", err)
	}
}

// TestBlobRefs: every blob a change names for its content, whichever way
// it is stored.
func TestBlobRefs(t *testing.T) {
	got := make(map[string]int)
	for _, c := range sampleChanges() {
		if _, seen := got[c.Path]; !seen { // docs/small.txt: its put, then a meta
			got[c.Path] = len(c.BlobRefs())
		}
	}
	want := map[string]int{"docs/small.txt": 1, "big.iso": 3, "medium.bin": 1, "empty": 0, "disk.img": 2, "gone.txt": 0}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("%s names %d blobs, want %d", p, got[p], n)
		}
	}
}
