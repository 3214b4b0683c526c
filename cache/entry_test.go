package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// fullEntry sets every field to a value other than its zero value.
func fullEntry() cache.Entry {
	return cache.Entry{
		Path:    "docs/report.txt",
		Kind:    cache.KindFile,
		Version: vv{"0123456789abcdef0123456789abcdef": 7, "n2": math.MaxUint64},
		Hash:    sha256.Sum256([]byte("hello")),
		Size:    5,
		ModTime: time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC),
		Mode:    0o640 | fs.ModeSetuid,
		Origin:  "0123456789abcdef0123456789abcdef",
		Dirty:   true,
		Access:  cache.Access{Read: cache.PermAllow, Write: cache.PermDeny},
		Remote:  []byte{0, 1, 2, 0xff},
		Local:   cache.LocalStat{Size: 5, MTimeNs: 1709251198123456789, Inode: 1234567, CTimeNs: 1709251198999999999},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   cache.Entry
		want func(*cache.Entry) // adjusts the expected result; nil: same as in
	}{
		{name: "minimal file", in: cache.Entry{Path: "a", Kind: cache.KindFile}},
		{name: "every field", in: fullEntry()},
		{name: "tombstone", in: func() cache.Entry {
			e := fullEntry()
			e.Deleted, e.Hash, e.Size, e.Remote, e.Local = true, [32]byte{}, 0, nil, cache.LocalStat{}
			return e
		}()},
		{name: "dir", in: cache.Entry{Path: "a/b", Kind: cache.KindDir, Mode: fs.ModeDir | 0o755, Version: vv{"n": 1}}},
		{name: "symlink", in: cache.Entry{Path: "l", Kind: cache.KindSymlink, Mode: fs.ModeSymlink | 0o777, Target: "../x/y z"}},
		{name: "all mode bits", in: cache.Entry{Path: "m", Kind: cache.KindFile, Mode: fs.FileMode(math.MaxUint32)}},
		{name: "sticky bit", in: cache.Entry{Path: "m", Kind: cache.KindFile, Mode: fs.ModeSticky | 0o600}},
		{name: "remote nil", in: cache.Entry{Path: "r", Kind: cache.KindFile, Remote: nil}},
		{name: "remote empty", in: cache.Entry{Path: "r", Kind: cache.KindFile, Remote: []byte{}}},
		{name: "zero time", in: cache.Entry{Path: "t", Kind: cache.KindFile, ModTime: time.Time{}}},
		{name: "time before 1970", in: cache.Entry{Path: "t", Kind: cache.KindFile,
			ModTime: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{name: "time past 2262", in: cache.Entry{Path: "t", Kind: cache.KindFile,
			ModTime: time.Date(3000, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{name: "time zone and monotonic reading dropped", in: cache.Entry{Path: "t", Kind: cache.KindFile,
			ModTime: time.Date(2020, 6, 1, 12, 0, 0, 5, berlin)},
			want: func(e *cache.Entry) { e.ModTime = e.ModTime.UTC() }},
		{name: "zero counters dropped", in: cache.Entry{Path: "v", Kind: cache.KindFile, Version: vv{"a": 0, "b": 2}},
			want: func(e *cache.Entry) { e.Version = vv{"b": 2} }},
		{name: "all-zero version becomes nil", in: cache.Entry{Path: "v", Kind: cache.KindFile, Version: vv{"a": 0}},
			want: func(e *cache.Entry) { e.Version = nil }},
		{name: "extremes", in: cache.Entry{Path: "x", Kind: cache.KindFile, Size: math.MaxInt64,
			Local: cache.LocalStat{Size: math.MaxInt64, MTimeNs: math.MinInt64, Inode: math.MaxUint64, CTimeNs: -1}}},
		{name: "odd path bytes", in: cache.Entry{Path: "ü/\xff\x01 name/.hidden/...", Kind: cache.KindFile}},
		{name: "access read deny only", in: cache.Entry{Path: "p", Kind: cache.KindFile,
			Access: cache.Access{Read: cache.PermDeny}}},
		{name: "access write allow only", in: cache.Entry{Path: "p", Kind: cache.KindFile,
			Access: cache.Access{Write: cache.PermAllow}}},
		{name: "dirty only", in: cache.Entry{Path: "p", Kind: cache.KindFile, Dirty: true}},
		{name: "hash only", in: cache.Entry{Path: "p", Kind: cache.KindFile, Hash: [32]byte{31: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			want.Remote = bytes.Clone(tt.in.Remote)
			if tt.in.Remote != nil && want.Remote == nil {
				want.Remote = []byte{}
			}
			if tt.want != nil {
				tt.want(&want)
			}

			got, err := cache.DecodeEntry(tt.in.Path, cache.EncodeEntry(tt.in))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("codec round trip:\n got %#v\nwant %#v", got, want)
			}

			s, _ := newStore(t)
			in := tt.in
			in.Remote = bytes.Clone(tt.in.Remote)
			if tt.in.Remote != nil && in.Remote == nil {
				in.Remote = []byte{}
			}
			if err := s.Put(in); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if len(in.Remote) > 0 {
				in.Remote[0]++ // Put must have copied it
			}
			got, ok, err := s.Get(tt.in.Path)
			if err != nil || !ok {
				t.Fatalf("Get = %v, %v", ok, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("store round trip:\n got %#v\nwant %#v", got, want)
			}
			if (got.Remote == nil) != (tt.in.Remote == nil) {
				t.Errorf("Remote nil-ness changed: got %v, put %v", got.Remote == nil, tt.in.Remote == nil)
			}
			if !got.ModTime.Equal(tt.in.ModTime) {
				t.Errorf("ModTime = %v, want %v", got.ModTime, tt.in.ModTime)
			}
		})
	}
}

func TestPutRejects(t *testing.T) {
	long := strings.Repeat("n", cache.MaxKeyLen+1)
	tests := []struct {
		name string
		e    cache.Entry
		is   error
		says string
	}{
		{"no kind", cache.Entry{Path: "a/b"}, cache.ErrInvalidEntry, "unknown kind 0"},
		{"unknown kind", cache.Entry{Path: "a/b", Kind: 4}, cache.ErrInvalidEntry, "unknown kind 4"},
		{"negative size", cache.Entry{Path: "a/b", Kind: cache.KindFile, Size: -1}, cache.ErrInvalidEntry, "negative size"},
		{"target on file", cache.Entry{Path: "a/b", Kind: cache.KindFile, Target: "x"}, cache.ErrInvalidEntry, "target"},
		{"bad read flag", cache.Entry{Path: "a/b", Kind: cache.KindFile, Access: cache.Access{Read: 3}}, cache.ErrInvalidEntry, "access"},
		{"bad write flag", cache.Entry{Path: "a/b", Kind: cache.KindFile, Access: cache.Access{Write: 7}}, cache.ErrInvalidEntry, "access"},
		{"empty node", cache.Entry{Path: "a/b", Kind: cache.KindFile, Version: vv{"": 1}}, cache.ErrInvalidKey, "node ID"},
		{"long node", cache.Entry{Path: "a/b", Kind: cache.KindFile, Version: vv{long: 1}}, cache.ErrInvalidKey, "node ID"},
		{"bad path", cache.Entry{Path: "a//b", Kind: cache.KindFile}, cache.ErrInvalidPath, "empty component"},
	}
	s, _ := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Put(tt.e)
			if !errors.Is(err, tt.is) {
				t.Fatalf("Put = %v, want %v", err, tt.is)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", tt.e.Path)) || !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not name the path %q and say %q", msg, tt.e.Path, tt.says)
			}
			if _, ok, _ := s.Get("a/b"); ok {
				t.Errorf("rejected entry was stored")
			}
		})
	}
}

func TestAccessString(t *testing.T) {
	for _, tt := range []struct {
		a    cache.Access
		want string
	}{
		{cache.Access{}, ""},
		{cache.Access{Read: cache.PermDeny}, "r-"},
		{cache.Access{Write: cache.PermDeny}, "w-"},
		{cache.Access{Read: cache.PermAllow, Write: cache.PermDeny}, "r+w-"},
		{cache.Access{Read: 5}, "r?"},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
	for k, want := range map[cache.Kind]string{cache.KindFile: "file", cache.KindDir: "dir",
		cache.KindSymlink: "symlink", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// rawEntry builds an entry record field by field, to craft bad ones.
type rawEntry struct {
	head           [4]byte // version, kind, flags, access
	mode           uint64
	size, sec      int64
	nsec           uint64
	nodes          []string
	counts         []uint64
	nodeCount      int // if >= 0 overrides len(nodes)
	origin, target string
	tail           []byte
}

func (r rawEntry) bytes() []byte {
	b := append([]byte{}, r.head[:]...)
	b = binary.AppendUvarint(b, r.mode)
	b = binary.AppendVarint(b, r.size)
	b = binary.AppendVarint(b, r.sec)
	b = binary.AppendUvarint(b, r.nsec)
	n := len(r.nodes)
	if r.nodeCount >= 0 {
		n = r.nodeCount
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i, node := range r.nodes {
		b = binary.AppendUvarint(b, uint64(len(node)))
		b = append(b, node...)
		b = binary.AppendUvarint(b, r.counts[i])
	}
	b = binary.AppendUvarint(b, uint64(len(r.origin)))
	b = append(b, r.origin...)
	b = binary.AppendUvarint(b, uint64(len(r.target)))
	b = append(b, r.target...)
	return append(b, r.tail...)
}

func goodRaw() rawEntry {
	return rawEntry{head: [4]byte{1, 1, 0, 0}, mode: 0o644, size: 3, sec: 1, nsec: 2,
		nodes: []string{"a", "b"}, counts: []uint64{1, 2}, nodeCount: -1, origin: "a"}
}

func TestDecodeCorrupt(t *testing.T) {
	if _, err := cache.DecodeEntry("p", goodRaw().bytes()); err != nil {
		t.Fatalf("the well-formed base record does not decode: %v", err)
	}
	tests := []struct {
		name string
		mod  func(r *rawEntry)
		says string
	}{
		{"encoding version 0", func(r *rawEntry) { r.head[0] = 0 }, "encoding version 0"},
		{"encoding version 2", func(r *rawEntry) { r.head[0] = 2 }, "encoding version 2"},
		{"kind 0", func(r *rawEntry) { r.head[1] = 0 }, "kind 0"},
		{"kind 4", func(r *rawEntry) { r.head[1] = 4 }, "kind 4"},
		{"unknown flag", func(r *rawEntry) { r.head[2] = 0x20 }, "flags"},
		{"read flag 3", func(r *rawEntry) { r.head[3] = 3 }, "access"},
		{"write flag 3", func(r *rawEntry) { r.head[3] = 3 << 2 }, "access"},
		{"access high bits", func(r *rawEntry) { r.head[3] = 0x10 }, "access"},
		{"mode over 32 bits", func(r *rawEntry) { r.mode = 1 << 32 }, "mode"},
		{"negative size", func(r *rawEntry) { r.size = -5 }, "negative size"},
		{"nanoseconds 1e9", func(r *rawEntry) { r.nsec = 1e9 }, "nanoseconds"},
		{"huge node count", func(r *rawEntry) { r.nodeCount = math.MaxInt }, "nodes"},
		{"node count short", func(r *rawEntry) { r.nodeCount = 3 }, ""},
		{"nodes out of order", func(r *rawEntry) { r.nodes = []string{"b", "a"} }, "out of order"},
		{"duplicate node", func(r *rawEntry) { r.nodes = []string{"a", "a"} }, "out of order"},
		{"empty node", func(r *rawEntry) { r.nodes = []string{"", "a"} }, "node ID"},
		{"zero counter", func(r *rawEntry) { r.counts = []uint64{0, 1} }, "zero counter"},
		{"target on file", func(r *rawEntry) { r.target = "x" }, "target"},
		{"hash flag without hash", func(r *rawEntry) { r.head[2] = 0x04 }, "wanted"},
		{"remote flag without remote", func(r *rawEntry) { r.head[2] = 0x08 }, "varint"},
		{"remote length past end", func(r *rawEntry) { r.head[2] = 0x08; r.tail = []byte{200, 1} }, "beyond"},
		{"local flag without local", func(r *rawEntry) { r.head[2] = 0x10 }, "varint"},
		{"trailing byte", func(r *rawEntry) { r.tail = []byte{0} }, "trailing"},
		{"overlong varint", func(r *rawEntry) {
			r.tail = nil
			r.head[2] = 0x10
			r.tail = bytes.Repeat([]byte{0xff}, 11)
		}, "varint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodRaw()
			tt.mod(&r)
			checkCorrupt(t, "dir/the file", r.bytes(), tt.says)
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		full := cache.EncodeEntry(fullEntry())
		for n := range len(full) {
			checkCorrupt(t, "x/y", full[:n], "")
		}
	})
}

func checkCorrupt(t *testing.T, path string, b []byte, says string) {
	t.Helper()
	e, err := cache.DecodeEntry(path, b)
	if err == nil {
		t.Fatalf("decoded % x without error: %#v", b, e)
	}
	if !errors.Is(err, cache.ErrCorrupt) {
		t.Errorf("error %v does not wrap ErrCorrupt", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", path)) || !strings.Contains(msg, says) {
		t.Errorf("error %q does not name %q and say %q", msg, path, says)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	seeds := []cache.Entry{
		fullEntry(),
		{Path: "a", Kind: cache.KindFile},
		{Path: "l", Kind: cache.KindSymlink, Target: "t", Remote: []byte{}},
		{Path: "d", Kind: cache.KindDir, Deleted: true, Version: vv{"x": 1}},
	}
	for _, e := range seeds {
		f.Add(cache.EncodeEntry(e))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0x1f, 0x0a, 0xff})
	f.Add(goodRaw().bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := cache.DecodeEntry("f", b)
		if err != nil {
			if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), `"f"`) {
				t.Fatalf("error %v: not ErrCorrupt naming the path", err)
			}
			return
		}
		// Whatever decodes is a valid entry that survives re-encoding.
		again, err := cache.DecodeEntry("f", cache.EncodeEntry(e))
		if err != nil {
			t.Fatalf("re-encoded %#v does not decode: %v", e, err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("re-encoding changed the entry:\n%#v\n%#v", e, again)
		}
	})
}
