package relaytest

import (
	"context"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
)

// FileFixture returns a fresh relay on a temporary directory, passed
// through wrap (nil: none), whose Raw lists that directory. Wrapper tests
// use it as the relay under their wrapper. The relay is closed when the
// test ends.
func FileFixture(t *testing.T, wrap func(relay.Relay) relay.Relay) Fixture {
	t.Helper()
	dir := t.TempDir()
	inner, err := file.New(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r relay.Relay = inner
	if wrap != nil {
		r = wrap(inner)
	}
	t.Cleanup(func() { r.Close() })
	return Fixture{Relay: r, Raw: func(t testing.TB) []string { return testserver.ListFiles(t, dir) }}
}
