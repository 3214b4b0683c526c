package crypto

import (
	"regexp"
	"strings"
	"testing"
)

func TestLogNames(t *testing.T) {
	node := NodeID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	shape := regexp.MustCompile(`^nodes/[0-9a-f]{32}/log/[0-9a-f]{16}$`)
	prev := ""
	for _, seq := range []uint64{0, 1, 9, 10, 15, 16, 255, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		name := LogName(node, seq)
		if !shape.MatchString(name) {
			t.Errorf("LogName(%d) = %q", seq, name)
		}
		if !strings.HasPrefix(name, LogDir(node)+"/") {
			t.Errorf("LogName %q is not in LogDir %q", name, LogDir(node))
		}
		// Names sort as their sequence numbers do, so a listing is in order.
		if name <= prev {
			t.Errorf("LogName(%d) = %q sorts before %q", seq, name, prev)
		}
		prev = name
		n, s, err := ParseLogName(name)
		if err != nil || n != node || s != seq {
			t.Errorf("ParseLogName(%q) = %s, %d, %v", name, n, s, err)
		}
	}
	if got := LogName(node, 0x1f); got != "nodes/0123456789abcdeffedcba9876543210/log/000000000000001f" {
		t.Errorf("LogName = %q", got)
	}

	good := LogName(node, 0xab)
	for _, bad := range []string{
		"", "nodes", good + "/", "/" + good, good[:len(good)-1], good + "0",
		strings.Replace(good, "nodes/", "node/", 1),
		strings.Replace(good, "/log/", "/logs/", 1),
		strings.Replace(good, "/log/", "/blobs/", 1),
		"nodes/" + node.String() + "/log/00000000000000g1",
		"nodes/" + node.String()[:30] + "/log/00000000000000ab",
		"nodes/" + node.String() + "xx/log/00000000000000ab",
		"nodes/" + node.String() + "/log/+0000000000000ab",
		"nodes/" + node.String() + "/log/-0000000000000ab",
		"nodes/" + node.String() + "/log/0x000000000000ab",
		"nodes/" + node.String() + "/log/ 00000000000000a",
		"nodes/" + node.String() + "/log/00000000_00000ab",
		// Another spelling of the same node or sequence number would let a
		// relay list one record under two names.
		"nodes/" + node.String() + "/log/00000000000000AB",
		"nodes/" + strings.ToUpper(node.String()) + "/log/00000000000000ab",
		"nodes/" + node.String() + "//log/00000000000000ab",
		"nodes/" + node.String() + "/log/00000000000000ab/x",
	} {
		if n, s, err := ParseLogName(bad); err == nil {
			t.Errorf("ParseLogName(%q) = %s, %d", bad, n, s)
		}
	}
}

func TestBlobNames(t *testing.T) {
	node := NodeID{1}
	id := BlobID{0xab, 0xcd}
	if got := BlobName(node, id); got != "blobs/"+node.String()+"/abcd0000000000000000000000000000" {
		t.Errorf("BlobName = %q", got)
	}
	if got := TmpDir(node); got != "tmp/"+node.String() {
		t.Errorf("TmpDir = %q", got)
	}
	a, b := NewBlobID(), NewBlobID()
	if a == b || a == (BlobID{}) {
		t.Fatal("blob IDs are not random")
	}
	if got, err := ParseBlobID(a.String()); err != nil || got != a {
		t.Errorf("ParseBlobID(%s) = %s, %v", a, got, err)
	}
	for _, bad := range []string{"", "ab", a.String() + "0", a.String()[:31] + "x"} {
		if _, err := ParseBlobID(bad); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
			t.Errorf("ParseBlobID(%q): %v", bad, err)
		}
	}
}

func TestKeyedName(t *testing.T) {
	k1 := testKeys(t, EncryptionAge)
	k2 := testKeys(t, EncryptionAge)
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]string{}
	for _, k := range []*Keys{k1, k2, nil} {
		for _, ns := range []string{"", "path", "chunk"} {
			for _, data := range []string{"", "docs/report.txt", "docs/report.txt\x00"} {
				name := k.KeyedName(ns, []byte(data))
				if !hex32.MatchString(name) {
					t.Fatalf("KeyedName = %q", name)
				}
				if name != k.KeyedName(ns, []byte(data)) {
					t.Fatal("KeyedName is not deterministic")
				}
				what := k.String() + "/" + ns + "/" + data
				if k != nil {
					what = k.Repository().String() + "/" + ns + "/" + data
				}
				if prev, dup := seen[name]; dup {
					t.Errorf("KeyedName of %q and %q are both %s", prev, what, name)
				}
				seen[name] = what
			}
		}
	}
	// Namespace and data do not run together.
	if k1.KeyedName("ab", []byte("c")) == k1.KeyedName("a", []byte("bc")) {
		t.Error("KeyedName(ab, c) == KeyedName(a, bc)")
	}
	if (*Keys)(nil).KeyedName("ab", []byte("c")) == (*Keys)(nil).KeyedName("a", []byte("bc")) {
		t.Error("unkeyed KeyedName(ab, c) == KeyedName(a, bc)")
	}
}
