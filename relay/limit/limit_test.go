package limit_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/limit"
	"github.com/escalefs/escalefs/relay/relaytest"
)

func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		return relaytest.FileFixture(t, func(r relay.Relay) relay.Relay { return limit.New(r, 2) })
	}})
}

// gauge records the highest number of calls in flight at once.
type gauge struct {
	relay.Relay
	now, peak atomic.Int64
	gate      chan struct{}
}

func (g *gauge) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	cur := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		p := g.peak.Load()
		if cur <= p || g.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	<-g.gate
	return g.Relay.Get(ctx, name, off, n, fn)
}

func TestLimit(t *testing.T) {
	inner, err := file.New(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	relaytest.MustPut(t, inner, "x", []byte("x"))
	g := &gauge{Relay: inner, gate: make(chan struct{})}
	r := limit.New(g, 3)
	var wg gosync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := relaytest.ReadAll(context.Background(), r, "x", 0, -1); err != nil {
				t.Error(err)
			}
		}()
	}
	// Three calls get in and wait there; the others wait for a slot.
	deadline := time.Now().Add(30 * time.Second)
	for g.now.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls inside after 30s, want 3", g.now.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// Let the calls through one by one; at most 3 may be waiting inside.
	for range 10 {
		g.gate <- struct{}{}
	}
	wg.Wait()
	if p := g.peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
	// A call waiting for a slot gives up when its context ends.
	for range 3 {
		go relaytest.ReadAll(context.Background(), r, "x", 0, -1)
	}
	deadline = time.Now().Add(30 * time.Second)
	for g.now.Load() < 3 { // wait until the three hold their slots
		if time.Now().After(deadline) {
			t.Fatal("three Gets did not start")
		}
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Stat(ctx, "x"); err == nil || err.Error() != fmt.Sprintf("stat %q: context canceled", "x") {
		t.Errorf("stat with no free slot and a cancelled context: %v", err)
	}
	for range 3 {
		g.gate <- struct{}{}
	}
}
