package relaytest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// With no lag the wrapper is transparent.
func TestLaggingConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{NoRename: true, New: func(t *testing.T) relaytest.Fixture {
		return relaytest.FileFixture(t, func(r relay.Relay) relay.Relay { return relaytest.NewLagging(r, 0) })
	}})
}

func TestLagging(t *testing.T) {
	f := relaytest.FileFixture(t, nil)
	l := relaytest.NewLagging(f.Relay, 2)
	relaytest.MustPut(t, l, "d/old", []byte("1"))
	for range 2 {
		if got := relaytest.ListNames(t, l, "d"); len(got) != 0 {
			t.Fatalf("new object listed too early: %q", got)
		}
	}
	if got := relaytest.ListNames(t, l, ""); !slices.Equal(got, []string{"d/old"}) {
		t.Fatalf("after the lag: %q", got)
	}
	if got := relaytest.MustGet(t, l, "d/old"); string(got) != "1" {
		t.Errorf("get of a hidden object: %q", got)
	}
	relaytest.MustPut(t, l, "d/old", []byte("22")) // an overwrite stays visible
	relaytest.MustPut(t, l, "e/new", []byte("3"))
	if err := l.Delete(context.Background(), "d/old"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := relaytest.ListNames(t, l, ""); !slices.Equal(got, []string{"d/old"}) {
			t.Fatalf("during the lag: %q, want the deleted d/old only", got)
		}
	}
	if got := relaytest.ListNames(t, l, "d"); len(got) != 0 {
		t.Fatalf("deleted object still listed after the lag: %q", got)
	}
	if got := relaytest.ListNames(t, l, ""); !slices.Equal(got, []string{"e/new"}) {
		t.Fatalf("after the lag: %q", got)
	}
}
