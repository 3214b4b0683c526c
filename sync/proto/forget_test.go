package proto_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/sync/proto"
)

func TestForgetRoundTrip(t *testing.T) {
	for _, f := range []proto.Forget{
		{Version: 1, Node: node(t, nodeB), UpTo: 41, Time: mtime},
		{Version: 1, Node: node(t, nodeA)},
		{Version: 1, Node: node(t, nodeA), UpTo: 1<<64 - 1, Time: time.Unix(-5, 1).UTC()},
	} {
		b, err := proto.EncodeForget(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := proto.DecodeForget(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got != f {
			t.Errorf("round trip of %+v gave %+v", f, got)
		}
	}
}

// TestForgetEncoding pins the exact bytes of docs/format.md §12.13.
func TestForgetEncoding(t *testing.T) {
	b, err := proto.EncodeForget(proto.Forget{Version: 1, Node: node(t, nodeB), UpTo: 41, Time: time.Unix(0, 1795547030123456789).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":1,"node":"fedcba9876543210fedcba9876543210","up_to":41,"time":1795547030123456789}` + "\n"
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, err = proto.EncodeForget(proto.Forget{Version: 1, Node: node(t, nodeA)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":1,"node":"` + nodeA + `","up_to":0}` + "\n"; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if _, err := proto.EncodeForget(proto.Forget{Version: proto.FormatVersion + 1}); err == nil {
		t.Errorf("encoded version %d", proto.FormatVersion+1)
	}
}

func TestDecodeForgetMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"newer", `{"version":5,"node":"` + nodeA + `","up_to":1}`, `newer than this escalefs`},
		{"no version", `{"node":"` + nodeA + `","up_to":1}`, `format version 0`},
		{"unknown member", `{"version":1,"node":"` + nodeA + `","up_to":1,"why":"x"}`, `unknown field "why"`},
		{"upper-case node", `{"version":1,"node":"` + strings.ToUpper(nodeB) + `","up_to":1}`, `lower-case hex`},
		{"short node", `{"version":1,"node":"0123","up_to":1}`, `expected 32 hex digits`},
		{"no node", `{"version":1,"up_to":1}`, `node ID ""`},
		{"negative up_to", `{"version":1,"node":"` + nodeA + `","up_to":-1}`, `cannot unmarshal`},
		{"null", `{"version":1,"node":null,"up_to":1}`, `null`},
		{"a log", `{"version":1,"node_name":"n","changes":[],"acks":{},"requests":[]}`, `unknown field "node_name"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proto.DecodeForget([]byte(tc.in))
			if err == nil || !errors.Is(err, proto.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestLogRefusesForget: a log reader of this version refuses a forget
// plaintext, so the kinds cannot be confused (they are also sealed under
// different kinds).
func TestLogRefusesForget(t *testing.T) {
	b, err := proto.EncodeForget(proto.Forget{Version: 1, Node: node(t, nodeA), UpTo: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.DecodeLog(b); err == nil {
		t.Error("a forget plaintext decoded as a log")
	}
}
