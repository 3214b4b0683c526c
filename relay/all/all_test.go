package all_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/config"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// The full wrapper stack passes the conformance suite.
func TestConformanceStack(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		dir := t.TempDir()
		r, err := all.Open(context.Background(), "file://"+dir, relay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return relaytest.Fixture{Relay: r, Raw: func(t testing.TB) []string { return testserver.ListFiles(t, dir) }}
	}})
}

func TestBadURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"", "relay URL is empty"},
		{"nosuch://host/x", `unknown scheme "nosuch"`},
		{"ftp//host", "has no scheme"},
		{"ftp://user:s3cret@ho st/x", "malformed"},
		{"file://otherhost/x", "has no host"},
	} {
		_, err := all.Open(context.Background(), tc.url, relay.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %q: %v, want an error containing %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("open %q: error shows the password: %v", tc.url, err)
		}
	}
	_, err := all.Open(context.Background(), "nosuch://u:s3cret@host/x", relay.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unknown scheme with a password: %v", err)
	}
	if errors.Is(err, relay.ErrAuth) {
		t.Errorf("unknown scheme reported as an auth failure: %v", err)
	}
}

// TestSchemesAgree: the relay URL schemes the configuration accepts are
// exactly those the registry serves.
func TestSchemesAgree(t *testing.T) {
	var served []string
	for _, b := range all.Backends() {
		served = append(served, b.Schemes...)
	}
	slices.Sort(served)
	accepted := slices.Sorted(slices.Values(config.Schemes))
	if !slices.Equal(served, accepted) {
		t.Errorf("the registry serves %q, the configuration accepts %q", served, accepted)
	}
}

// plainRelay hides every optional feature of the relay it embeds.
type plainRelay struct{ relay.Relay }

// TestWrappersTellFeatures: through the full wrapper stack, relay.As finds
// the optional features the relay at the bottom has, and only those; the
// one it returns still goes through the wrappers.
func TestWrappersTellFeatures(t *testing.T) {
	base, err := all.OpenRaw(t.Context(), "file://"+t.TempDir(), relay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := all.Wrap(base, relay.Options{})
	defer wrapped.Close()
	if _, ok := relay.As[relay.Renamer](wrapped); !ok {
		t.Error("a file relay's Rename is not found through the wrappers")
	}
	if rn, _ := relay.As[relay.Renamer](wrapped); rn != relay.Renamer(wrapped.(relay.Renamer)) {
		t.Error("As returned another relay than the outer wrapper")
	}
	plain := all.Wrap(plainRelay{base}, relay.Options{})
	if _, ok := plain.(relay.Renamer); !ok {
		t.Fatal("test bug: the wrappers no longer implement Renamer")
	}
	for name, ok := range map[string]bool{
		"Renamer":     has[relay.Renamer](plain),
		"Creator":     has[relay.Creator](plain),
		"TempRemover": has[relay.TempRemover](plain),
		"Quotaer":     has[relay.Quotaer](plain),
	} {
		if ok {
			t.Errorf("%s found through the wrappers of a relay that has none", name)
		}
	}
}

func has[T any](r relay.Relay) bool {
	_, ok := relay.As[T](r)
	return ok
}
