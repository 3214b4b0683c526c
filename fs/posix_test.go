package fs

import (
	"os"
	"slices"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixKnownFailures lists the posixtest tests that fail on the mount
// because of a known defect of fs/, each with the reason. They are skipped
// with that reason so the rest of the suite runs; set
// ESCALEFS_RUN_KNOWN_FAILURES=1 to run them anyway (and remove an entry
// once its test passes).
var posixKnownFailures = map[string]string{}

// posixExtra are posixtest tests that posixtest.All leaves out.
var posixExtra = map[string]func(*testing.T, string){
	"FallocateKeepSize": posixtest.FallocateKeepSize,
	"Tmpfile":           posixtest.Tmpfile,
}

// go-fuse's POSIX conformance suite, each test on a fresh mount.
func TestPosix(t *testing.T) {
	fuseUsable(t)
	tests := map[string]func(*testing.T, string){}
	for name, fn := range posixtest.All {
		tests[name] = fn
	}
	for name, fn := range posixExtra {
		tests[name] = fn
	}
	names := make([]string, 0, len(tests))
	for name := range tests {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fn := tests[name]
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			if why, known := posixKnownFailures[name]; known {
				if os.Getenv("ESCALEFS_RUN_KNOWN_FAILURES") == "" {
					t.Skipf("known failure: %s", why)
				}
			}
			_, mnt, _ := mount(t, Options{Events: rec})
			fn(t, mnt)
		})
	}
}
