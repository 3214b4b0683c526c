package crypto

import (
	"regexp"
	"strings"
	"testing"
)

func TestBlobIDs(t *testing.T) {
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
