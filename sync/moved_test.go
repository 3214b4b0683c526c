package sync_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

func TestMovedMarkerRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := fileRelay(t)
	repo, err := escsync.OpenRepository(ctx, r, crypto.GenerateKey(), escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	m := escsync.Moved{URL: "ftp://me@example.org/sync", Time: time.Unix(1795547030, 5), Node: crypto.NewNodeID()}
	sealed, err := escsync.SealMoved(repo, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := escsync.OpenMoved(repo, sealed)
	if err != nil || got.URL != m.URL || !got.Time.Equal(m.Time) || got.Node != m.Node {
		t.Fatalf("OpenMoved = %+v, %v; want %+v", got, err, m)
	}
	if _, err := escsync.SealMoved(repo, escsync.Moved{URL: "ftp://me:secret@example.org/sync"}); err == nil {
		t.Fatal("a marker with a password in its URL was sealed")
	}
	// The options that locate the new relay travel with it; only those.
	m.URL = "s3://bucket/sync"
	m.Options = map[string]string{"s3-endpoint": "https://s3.example.org", "s3-region": "eu-1"}
	if sealed, err := escsync.SealMoved(repo, m); err != nil {
		t.Fatal(err)
	} else if got, err := escsync.OpenMoved(repo, sealed); err != nil || !maps.Equal(got.Options, m.Options) {
		t.Fatalf("OpenMoved = %+v, %v; want the options %v", got, err, m.Options)
	}
	for _, bad := range []map[string]string{{"password": "x"}, {"s3-endpoint": ""}, {"s3-region": strings.Repeat("x", 2000)}} {
		if _, err := escsync.SealMoved(repo, escsync.Moved{URL: m.URL, Options: bad}); err == nil {
			t.Errorf("a marker with the options %v was sealed", bad)
		}
	}
	m.URL, m.Options = "ftp://me@example.org/sync", nil
	// Another repository's marker (another key, another ID) does not open.
	other, err := escsync.OpenRepository(ctx, fileRelay(t), crypto.GenerateKey(), escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := escsync.SealMoved(other, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := escsync.OpenMoved(repo, forged); !errors.Is(err, escsync.ErrBadMoved) {
		t.Fatalf("another repository's marker: %v, want ErrBadMoved", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := escsync.OpenMoved(repo, sealed); !errors.Is(err, escsync.ErrBadMoved) {
		t.Fatalf("altered marker: %v, want ErrBadMoved", err)
	}
}

// A node that lists a valid marker stops its round with a MovedError; one
// that lists a forged marker reports it and keeps syncing.
func TestMovedMarkerStopsEngine(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, fileRelay(t))
	a, b := c.add("a"), c.add("b")
	a.write(t, "one.txt", []byte("one"))
	c.settle(a, b)

	// Forged: sealed with a key that is not the repository's.
	other, err := escsync.OpenRepository(ctx, fileRelay(t), crypto.GenerateKey(), escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := escsync.SealMoved(other, escsync.Moved{URL: "file:///elsewhere", Time: time.Now(), Node: crypto.NewNodeID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.relay.Put(ctx, layout.MovedName, relay.BytesPayload(forged)); err != nil {
		t.Fatal(err)
	}
	a.write(t, "two.txt", []byte("two"))
	if _, err := a.e.Round(ctx); !errors.Is(err, escsync.ErrBadMoved) || errors.Is(err, escsync.ErrMoved) {
		t.Fatalf("round with a forged marker: %v, want ErrBadMoved", err)
	}
	if _, err := b.e.Round(ctx); !errors.Is(err, escsync.ErrBadMoved) || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("round with a forged marker: %v, want ErrBadMoved", err)
	}
	if got := string(b.read(t, "two.txt")); got != "two" {
		t.Fatalf("two.txt = %q: syncing stopped over a forged marker", got)
	}

	repo, err := escsync.OpenRepository(ctx, c.relay, c.secret, escsync.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := escsync.Moved{URL: "file:///new/relay", Time: time.Unix(1795547030, 0), Node: a.e.Node()}
	sealed, err := escsync.SealMoved(repo, want)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.relay.Put(ctx, layout.MovedName, relay.BytesPayload(sealed)); err != nil {
		t.Fatal(err)
	}
	_, err = b.e.Round(ctx)
	var me *escsync.MovedError
	if !errors.As(err, &me) || me.Moved.URL != want.URL || !errors.Is(err, escsync.ErrRepoChanged) {
		t.Fatalf("round with a marker: %v, want a MovedError to %s", err, want.URL)
	}
	if !strings.Contains(me.Error(), "moved to file:///new/relay") {
		t.Fatalf("message %q", me.Error())
	}
}
