package cache_test

import (
	"strings"
	"testing"

	"github.com/escalefs/escalefs/cache"
)

func TestParseAccess(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want cache.Access
		read bool
		writ bool
	}{
		{"r+", cache.Access{Read: cache.PermAllow}, true, false},
		{"r-", cache.Access{Read: cache.PermDeny}, true, false},
		{"w-", cache.Access{Write: cache.PermDeny}, false, true},
		{"w", cache.Access{Write: cache.PermAllow}, false, true},
		{"rw", cache.Access{Read: cache.PermAllow, Write: cache.PermAllow}, true, true},
		{"rw-", cache.Access{Read: cache.PermDeny, Write: cache.PermDeny}, true, true},
		{"r+w-", cache.Access{Read: cache.PermAllow, Write: cache.PermDeny}, true, true},
		{"r? w-", cache.Access{Write: cache.PermDeny}, true, true},
		{"R-, W+", cache.Access{Read: cache.PermDeny, Write: cache.PermAllow}, true, true},
		{"r-r-", cache.Access{Read: cache.PermDeny}, true, false},
	} {
		u, err := cache.ParseAccess(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := u.Apply(cache.Access{}); got != tc.want || u.SetRead != tc.read || u.SetWrite != tc.writ {
			t.Errorf("%q: %+v, want %+v (set r %v w %v)", tc.in, u, tc.want, tc.read, tc.writ)
		}
	}
	for _, in := range []string{"", "x", "+", "r+-", "r+r-", "rwx", "w!"} {
		if _, err := cache.ParseAccess(in); err == nil || !strings.Contains(err.Error(), "expected r or w") {
			t.Errorf("%q: %v", in, err)
		}
	}
	// Apply keeps what the update does not name.
	u, _ := cache.ParseAccess("w-")
	if got := u.Apply(cache.Access{Read: cache.PermDeny, Write: cache.PermAllow}); got != (cache.Access{Read: cache.PermDeny, Write: cache.PermDeny}) {
		t.Errorf("apply: %+v", got)
	}
}
