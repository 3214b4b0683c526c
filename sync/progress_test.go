package sync_test

import (
	"context"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
)

// gated lets a number of blob puts through, then holds the others until
// opened.
type gated struct {
	relay.Relay
	mu    gosync.Mutex
	left  int
	open  chan struct{}
	once  gosync.Once
	ready chan struct{} // closed once a put waits at the gate
}

func (g *gated) Put(ctx context.Context, name string, p relay.Payload) error {
	if strings.HasPrefix(name, "blobs/") {
		g.mu.Lock()
		wait := g.left <= 0
		g.left--
		g.mu.Unlock()
		if wait {
			g.once.Do(func() { close(g.ready) })
			select {
			case <-g.open:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return g.Relay.Put(ctx, name, p)
}

// Status shows an upload under way, with the bytes sent so far, and
// nothing once it is done.
func TestStatusTransfers(t *testing.T) {
	g := &gated{Relay: fileRelay(t), left: 2, open: make(chan struct{}), ready: make(chan struct{})}
	c := newCluster(t, g)
	a := c.add("a", small)
	c.register()
	size := 20 * 8 << 10 // 20 parts of the small part size
	a.write(t, "big.bin", content("big", size))
	if _, err := a.e.Scan(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() {
		_, err := a.e.Push(context.Background())
		pushed <- err
	}()
	select {
	case <-g.ready:
	case err := <-pushed:
		t.Fatalf("push ended before the gate: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no upload reached the gate within 30s")
	}
	var tr escsync.Transfer
	waitFor(t, 30*time.Second, "the upload in Status with its first parts sent", func() bool {
		st, err := a.e.Status()
		if err != nil || len(st.Transfers) != 1 {
			return false
		}
		tr = st.Transfers[0]
		return tr.Done > 0
	})
	if !tr.Up || tr.What != "big.bin" || tr.Size != int64(size) || tr.Done >= tr.Size {
		t.Fatalf("transfer under way: %+v", tr)
	}
	close(g.open)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	st, err := a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Transfers) != 0 {
		t.Fatalf("transfers after the push: %+v", st.Transfers)
	}
}
