package gdrive_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/gdrive"
	"github.com/escalefs/escalefs/relay/gdrive/drivetest"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// fixture is a fake Drive with a relay on gdrive:///escalefs/relay.
type fixture struct {
	srv    *drivetest.Server
	relay  *gdrive.Relay
	rootID string // the relay folder's ID
}

func testConfig(srv *drivetest.Server) gdrive.Config {
	return gdrive.Config{
		HTTPClient: srv.HTTPClient(),
		Endpoint:   srv.Endpoint(),
		NoAuth:     true,
		RetryBase:  time.Millisecond,
	}
}

func newFixture(t *testing.T, cfg func(*gdrive.Config)) *fixture {
	t.Helper()
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	c := testConfig(srv)
	if cfg != nil {
		cfg(&c)
	}
	u, _ := url.Parse("gdrive:///escalefs/relay")
	r, err := gdrive.OpenWithConfig(context.Background(), u, relay.Options{}, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f := &fixture{srv: srv, relay: r}
	f.rootID = f.folderID(t, "escalefs/relay")
	return f
}

// folderID finds a folder below My Drive by path in the fake.
func (f *fixture) folderID(t testing.TB, p string) string {
	t.Helper()
	id := f.srv.RootID()
next:
	for _, c := range strings.Split(p, "/") {
		for _, fi := range f.srv.Children(id) {
			if fi.Name == c && fi.MimeType == drivetest.FolderMimeType {
				id = fi.ID
				continue next
			}
		}
		t.Fatalf("folder %q not found in the fake", p)
	}
	return id
}

func (f *fixture) raw(t testing.TB) []string { return f.srv.Paths(f.rootID) }

func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		f := newFixture(t, nil)
		return relaytest.Fixture{Relay: f.relay, Raw: f.raw}
	}})
}
