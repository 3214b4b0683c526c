package ftp

import (
	"strings"
	"testing"

	"github.com/escalefs/escalefs/relay"
)

func TestNameEncoding(t *testing.T) {
	for _, tc := range []struct{ name, enc string }{
		{"plain/name", "plain/name"},
		{"trailing ", "trailing\u2420"},
		{"two  ", "two \u2420"},
		{"dir /x", "dir\u2420/x"},
		{" ", "\u2420"},
		{"mark\u2420", "mark\u2420\u2420"},
		{"mark\u2420 ", "mark\u2420\u2420\u2420"},
		{"a\u2420b/c", "a\u2420\u2420b/c"},
		{" lead", " lead"},
	} {
		if err := relay.ValidName(tc.name); err != nil {
			t.Fatal(err)
		}
		if got := encodeName(tc.name); got != tc.enc {
			t.Errorf("encodeName(%q) = %q, want %q", tc.name, got, tc.enc)
		}
		var parts []string
		for _, p := range strings.Split(tc.enc, "/") {
			d, ok := decodeComponent(p)
			if !ok {
				t.Errorf("decodeComponent(%q) failed", p)
			}
			parts = append(parts, d)
		}
		if got := strings.Join(parts, "/"); got != tc.name {
			t.Errorf("decoding %q gives %q, want %q", tc.enc, got, tc.name)
		}
	}
	for _, foreign := range []string{"a\u2420b", "\u2420\u2420\u2420x"} {
		if d, ok := decodeComponent(foreign); ok {
			t.Errorf("decodeComponent(%q) = %q; want a failure, as encodeComponent never writes that", foreign, d)
		}
	}
}

func TestSkipEntry(t *testing.T) {
	tmp := relay.TempName("x")
	for name, skip := range map[string]bool{
		".": true, "..": true, "/abs/cdir": true, tmp: true,
		".pureftpd-upload.5f3a.1.2": true, ".in." + tmp + ".": true,
		".in.other.": false, ".hidden": false, "-dash": false, "x": false,
	} {
		if got := skipEntry(name); got != skip {
			t.Errorf("skipEntry(%q) = %v, want %v", name, got, skip)
		}
	}
}
