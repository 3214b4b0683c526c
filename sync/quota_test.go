package sync_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
)

// blobBytes is what the relay holds in blobs.
func blobBytes(t *testing.T, r relay.Relay) int64 {
	t.Helper()
	var n int64
	err := r.List(context.Background(), "blobs", func(oi relay.ObjectInfo) error {
		n += oi.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDiskQuota: with a quota smaller than what is to be pushed, the pusher
// waits for pullers to make room, never goes past the quota, and everything
// arrives.
func TestDiskQuota(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	const quota = 100 << 10
	a := c.add("a", small, func(cfg *escsync.Config) { cfg.DiskQuota = quota })
	b := c.add("b", small)
	c.register()
	for i := range 5 {
		a.write(t, fmt.Sprintf("f%d.bin", i), content(itoa(i), 40<<10))
	}
	for pass := 0; ; pass++ {
		if pass == 20 {
			t.Fatal("the queue did not drain")
		}
		a.round(t)
		if used := blobBytes(t, c.relay); used > quota {
			t.Fatalf("relay holds %d bytes of blobs, quota %d", used, quota)
		}
		b.round(t)
		if n, _ := a.store.QueueLen(); n == 0 && len(c.blobsOf(a)) == 0 {
			break
		}
	}
	c.settle()
	c.sameTrees()
	if !strings.Contains(a.logs.String(), "relay full") || !strings.Contains(a.logs.String(), "room on the relay again") {
		t.Error("waiting for room not logged")
	}
}

// fullRelay answers Puts of blobs with relay.ErrQuota while the relay holds
// more than limit bytes of blobs, as a full account does.
type fullRelay struct {
	relay.Relay
	t     *testing.T
	limit int64
	hits  atomic.Int64
}

func (f *fullRelay) Put(ctx context.Context, name string, p relay.Payload) error {
	if strings.HasPrefix(name, "blobs/") && blobBytes(f.t, f.Relay)+p.Length() > f.limit {
		f.hits.Add(1)
		return fmt.Errorf("put %s: 552 quota exceeded: %w", name, relay.ErrQuota)
	}
	return f.Relay.Put(ctx, name, p)
}

// TestRelayFull: a relay that answers "quota exceeded" makes pushes wait,
// not fail or spin; the queue drains as pullers collect.
func TestRelayFull(t *testing.T) {
	fr := &fullRelay{Relay: fileRelay(t), t: t, limit: 100 << 10}
	c := newCluster(t, fr)
	a := c.add("a", small)
	b := c.add("b", small)
	c.register()
	for i := range 5 {
		a.write(t, fmt.Sprintf("f%d.bin", i), content(itoa(i), 40<<10))
	}
	c.settle()
	c.sameTrees()
	if fr.hits.Load() == 0 {
		t.Fatal("the relay never said it was full")
	}
	if n, _ := a.store.QueueLen(); n != 0 {
		t.Fatalf("%d items still queued", n)
	}
	_ = b
}
