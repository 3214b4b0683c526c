package file_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/relaytest"
)

func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		return relaytest.FileFixture(t, nil)
	}})
}

func TestOpenErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, want string }{
		{"file://server/share", "has no host"},
		{"file://" + notDir, "not a directory"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = file.Open(context.Background(), u, relay.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %s: %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
}

func TestQuota(t *testing.T) {
	dir := t.TempDir()
	r, err := file.New(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	relaytest.MustPut(t, r, "a/b", make([]byte, 12345))
	u, err := r.Quota(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u.Used != 12345 || u.Total < u.Used {
		t.Errorf("quota = %+v, want used 12345 and total >= used", u)
	}
}

// Files that escalefs never writes (names it would refuse) are not listed.
func TestListSkipsInvalidNames(t *testing.T) {
	dir := t.TempDir()
	r, err := file.New(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	relaytest.MustPut(t, r, "ok/name", []byte("x"))
	for _, bad := range []string{"ok/back\\slash", "ok/ctl\x01char", "ok/" + relay.TempPrefix + "0123"} {
		if err := os.WriteFile(filepath.Join(dir, bad), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := relaytest.ListNames(t, r, ""); len(got) != 1 || got[0] != "ok/name" {
		t.Errorf("list = %q, want only ok/name", got)
	}
}
