package lazy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/lazy"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// The lazy wrapper passes the conformance suite once its relay opens.
func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		return relaytest.FileFixture(t, func(r relay.Relay) relay.Relay {
			return lazy.New(func(context.Context) (relay.Relay, error) { return r, nil }, r.Properties())
		})
	}})
}

// A relay that cannot be reached fails every call with a transient error,
// naming why, and serves once it can be opened; a refused login stays
// permanent; after Close nothing is opened.
func TestOpensLater(t *testing.T) {
	ctx := context.Background()
	inner, err := file.New(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var fail error = fmt.Errorf("dial: %w", relay.ErrUnreachable)
	opens := 0
	r := lazy.New(func(context.Context) (relay.Relay, error) {
		opens++
		if fail != nil {
			return nil, fail
		}
		return inner, nil
	}, relay.Properties{Scheme: "ftp", Location: "ftp://me@host/sync"})
	if p := r.Properties(); p.Location != "ftp://me@host/sync" {
		t.Errorf("properties before opening: %+v", p)
	}
	err = r.Put(ctx, "a", relay.BytesPayload([]byte("a")))
	if !errors.Is(err, relay.ErrUnreachable) || relay.IsPermanent(err) || r.Connected() {
		t.Errorf("put while unreachable: %v (permanent %v)", err, relay.IsPermanent(err))
	}
	fail = fmt.Errorf("login: %w", relay.ErrAuth)
	if err := r.Delete(ctx, "a"); !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
		t.Errorf("delete with the login refused: %v, want a permanent ErrAuth", err)
	}
	fail = nil
	relaytest.MustPut(t, r, "a", []byte("a"))
	if b, err := relaytest.ReadAll(ctx, r, "a", 0, -1); err != nil || string(b) != "a" || !r.Connected() {
		t.Errorf("read once opened: %q, %v", b, err)
	}
	if _, err := r.Stat(ctx, "a"); err != nil || opens != 3 {
		t.Errorf("stat: %v; opened %d times, want 3 (the relay is kept once open)", err, opens)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(ctx, "a"); err == nil || opens != 3 {
		t.Errorf("stat after Close: %v, %d opens", err, opens)
	}
}
