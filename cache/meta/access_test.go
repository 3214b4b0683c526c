package meta_test

import (
	"strings"
	"testing"

	"github.com/escalefs/escalefs/cache/meta"
)

func TestParseAccess(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want meta.Access
		read bool
		writ bool
	}{
		{"r+", meta.Access{Read: meta.PermAllow}, true, false},
		{"r-", meta.Access{Read: meta.PermDeny}, true, false},
		{"w-", meta.Access{Write: meta.PermDeny}, false, true},
		{"w", meta.Access{Write: meta.PermAllow}, false, true},
		{"rw", meta.Access{Read: meta.PermAllow, Write: meta.PermAllow}, true, true},
		{"rw-", meta.Access{Read: meta.PermDeny, Write: meta.PermDeny}, true, true},
		{"r+w-", meta.Access{Read: meta.PermAllow, Write: meta.PermDeny}, true, true},
		{"r? w-", meta.Access{Write: meta.PermDeny}, true, true},
		{"R-, W+", meta.Access{Read: meta.PermDeny, Write: meta.PermAllow}, true, true},
		{"r-r-", meta.Access{Read: meta.PermDeny}, true, false},
	} {
		u, err := meta.ParseAccess(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := u.Apply(meta.Access{}); got != tc.want || u.SetRead != tc.read || u.SetWrite != tc.writ {
			t.Errorf("%q: %+v, want %+v (set r %v w %v)", tc.in, u, tc.want, tc.read, tc.writ)
		}
	}
	for _, in := range []string{"", "x", "+", "r+-", "r+r-", "rwx", "w!"} {
		if _, err := meta.ParseAccess(in); err == nil || !strings.Contains(err.Error(), "expected r or w") {
			t.Errorf("%q: %v", in, err)
		}
	}
	// Apply keeps what the update does not name.
	u, _ := meta.ParseAccess("w-")
	if got := u.Apply(meta.Access{Read: meta.PermDeny, Write: meta.PermAllow}); got != (meta.Access{Read: meta.PermDeny, Write: meta.PermDeny}) {
		t.Errorf("apply: %+v", got)
	}
}
