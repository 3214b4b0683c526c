package layout_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/layout"
)

// TestParse: every name the package writes parses back to what it was
// made of; names outside the layout, or spelled otherwise, are Unknown.
func TestParse(t *testing.T) {
	node, err := crypto.ParseNodeID("0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	other, err := crypto.ParseNodeID("fedcba9876543210fedcba9876543210")
	if err != nil {
		t.Fatal(err)
	}
	blob := crypto.NewBlobID()
	for _, c := range []struct {
		name string
		want layout.Object
	}{
		{"escale.json", layout.Object{Kind: layout.Config}},
		{"moved", layout.Object{Kind: layout.Moved}},
		{layout.LogName(node, 0x2a), layout.Object{Kind: layout.Log, Node: node, Seq: 0x2a}},
		{layout.SnapshotName(node, 7), layout.Object{Kind: layout.Snapshot, Node: node, Seq: 7}},
		{layout.ForgetName(node, other), layout.Object{Kind: layout.Forget, Node: node, Forgotten: other}},
		{layout.BlobName(other, blob), layout.Object{Kind: layout.Blob, Node: other, Blob: blob}},
	} {
		if got := layout.Parse(c.name); got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.name, got, c.want)
		}
	}
	if n := layout.LogName(node, 0x2a); n != "nodes/0123456789abcdef0123456789abcdef/log/000000000000002a" {
		t.Errorf("LogName = %q", n)
	}
	for _, name := range []string{
		"",
		"nodes",
		"nodes/0123456789abcdef0123456789abcdef",
		"nodes/0123456789abcdef0123456789abcdef/log/2a",                 // not 16 digits
		"nodes/0123456789abcdef0123456789abcdef/log/000000000000002A",   // upper case
		"nodes/0123456789ABCDEF0123456789abcdef/log/000000000000002a",   // upper-case node
		"nodes/0123456789abcdef0123456789abcdef/log/000000000000002a/x", // too deep
		"nodes/0123456789abcdef0123456789abcdef/other/000000000000002a", // no such directory
		"nodes/0123456789abcdef0123456789abcdef/forget/nothex",          // bad node
		"blobs/0123456789abcdef0123456789abcdef",                        // no blob ID
		"blobs/0123456789abcdef0123456789abcdef/" + strings.Repeat("g", 32),
		"tmp/0123456789abcdef0123456789abcdef",
		"escale.json.bak",
	} {
		if got := layout.Parse(name); got.Kind != layout.Unknown {
			t.Errorf("Parse(%q) = %+v, want Unknown", name, got)
		}
	}
}

func TestLogNames(t *testing.T) {
	node := crypto.NodeID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	shape := regexp.MustCompile(`^nodes/[0-9a-f]{32}/log/[0-9a-f]{16}$`)
	prev := ""
	for _, seq := range []uint64{0, 1, 9, 10, 15, 16, 255, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		name := layout.LogName(node, seq)
		if !shape.MatchString(name) {
			t.Errorf("LogName(%d) = %q", seq, name)
		}
		if !strings.HasPrefix(name, layout.LogDir(node)+"/") {
			t.Errorf("LogName %q is not in LogDir %q", name, layout.LogDir(node))
		}
		// Names sort as their sequence numbers do, so a listing is in order.
		if name <= prev {
			t.Errorf("LogName(%d) = %q sorts before %q", seq, name, prev)
		}
		prev = name
		if o := layout.Parse(name); o != (layout.Object{Kind: layout.Log, Node: node, Seq: seq}) {
			t.Errorf("Parse(%q) = %+v", name, o)
		}
	}
	if got := layout.LogName(node, 0x1f); got != "nodes/0123456789abcdeffedcba9876543210/log/000000000000001f" {
		t.Errorf("LogName = %q", got)
	}

	good := layout.LogName(node, 0xab)
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
		if o := layout.Parse(bad); o.Kind == layout.Log {
			t.Errorf("Parse(%q) = %+v", bad, o)
		}
	}
}

func TestBlobName(t *testing.T) {
	node := crypto.NodeID{1}
	id := crypto.BlobID{0xab, 0xcd}
	if got := layout.BlobName(node, id); got != "blobs/"+node.String()+"/abcd0000000000000000000000000000" {
		t.Errorf("BlobName = %q", got)
	}
}

// FuzzParse: a name that parses is the one its parts spell (one object,
// one name), and Parse never panics.
func FuzzParse(f *testing.F) {
	node := crypto.NodeID{0x11, 0x22}
	f.Add(layout.LogName(node, 0))
	f.Add(layout.LogName(node, 1<<64-1))
	f.Add(strings.ToUpper(layout.LogName(node, 0xab)))
	f.Add(layout.SnapshotName(node, 42))
	f.Add(layout.ForgetName(node, crypto.NodeID{0x33}))
	f.Add(layout.BlobName(node, crypto.BlobID{0xb1}))
	f.Add("nodes/" + node.String() + "/log/+000000000000001")
	f.Add("nodes//log/")
	f.Fuzz(func(t *testing.T, name string) {
		o := layout.Parse(name)
		var again string
		switch o.Kind {
		case layout.Unknown:
			if o != (layout.Object{}) {
				t.Fatalf("Parse(%q) = %+v: Unknown with parts", name, o)
			}
			return
		case layout.Config:
			again = layout.ConfigName
		case layout.Moved:
			again = layout.MovedName
		case layout.Log:
			again = layout.LogName(o.Node, o.Seq)
		case layout.Snapshot:
			again = layout.SnapshotName(o.Node, o.Seq)
		case layout.Forget:
			again = layout.ForgetName(o.Node, o.Forgotten)
		case layout.Blob:
			again = layout.BlobName(o.Node, o.Blob)
		}
		if again != name {
			t.Fatalf("Parse(%q) = %+v, which is spelled %q", name, o, again)
		}
	})
}
