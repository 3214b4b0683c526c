package sync_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	gosync "sync"
	"testing"

	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
)

// cutter counts the bytes that cross the relay for blobs and, when armed,
// cuts the next blob transfer halfway, as a dropped connection would.
type cutter struct {
	relay.Relay
	mu        gosync.Mutex
	sent, got int64
	cutPut    int // cut the n-th blob Put from now (0: none)
	cutGet    int
}

func (c *cutter) Put(ctx context.Context, name string, p relay.Payload) error {
	if !strings.HasPrefix(name, "blobs/") {
		return c.Relay.Put(ctx, name, p)
	}
	c.mu.Lock()
	cut := false
	if c.cutPut > 0 {
		c.cutPut--
		cut = c.cutPut == 0
	}
	c.mu.Unlock()
	if cut {
		if err := p.Rewind(); err != nil {
			return err
		}
		n, _ := io.CopyN(io.Discard, p, p.Length()/2)
		c.add(&c.sent, n)
		return errors.New("injected: connection reset by peer")
	}
	c.add(&c.sent, p.Length())
	return c.Relay.Put(ctx, name, p)
}

func (c *cutter) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	if !strings.HasPrefix(name, "blobs/") {
		return c.Relay.Get(ctx, name, off, n, fn)
	}
	c.mu.Lock()
	cut := false
	if c.cutGet > 0 {
		c.cutGet--
		cut = c.cutGet == 0
	}
	c.mu.Unlock()
	return c.Relay.Get(ctx, name, off, n, func(r io.Reader) error {
		if cut {
			var half bytes.Buffer
			k, _ := io.Copy(&half, r)
			c.add(&c.got, k/2)
			err := fn(io.MultiReader(bytes.NewReader(half.Bytes()[:k/2]), errReader{}))
			if err == nil {
				err = errors.New("injected: connection reset by peer")
			}
			return err
		}
		cr := &countReader{r: r}
		err := fn(cr)
		c.add(&c.got, cr.n)
		return err
	})
}

func (c *cutter) add(to *int64, n int64) {
	c.mu.Lock()
	*to += n
	c.mu.Unlock()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("injected: connection reset by peer")
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestResume cuts the connection halfway through a large file, up and then
// down, with the node restarted in between as after a crash: each transfer
// resumes at its last complete part, so at most one part crosses twice.
func TestResume(t *testing.T) {
	const size, part = 12 << 20, 1 << 20
	cr := &cutter{Relay: fileRelay(t)}
	c := newCluster(t, cr)
	shape := func(cfg *escsync.Config) { cfg.PackLimit = 64 << 10; cfg.PartSize = part }
	a := c.add("a", shape)
	b := c.add("b", shape)
	c.register()
	data := content("large", size)
	a.write(t, "large.bin", data)

	cr.cutPut = 7 // the 7th part
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("upload not cut")
	}
	a.stop(t)
	c.start(a, shape)
	a.round(t)
	overhead := int64(size/part+1) * 1024 // age headers and tags, generously
	if resent := cr.sent - size; resent > part+overhead {
		t.Errorf("upload sent %d bytes again, more than one part of %d", resent, part)
	}
	t.Logf("upload: %d bytes sent for %d", cr.sent, size)

	cr.cutGet = 5
	if _, err := b.e.Round(context.Background()); err == nil {
		t.Fatal("download not cut")
	}
	b.stop(t)
	c.start(b, shape)
	b.round(t)
	if !bytes.Equal(b.read(t, "large.bin"), data) {
		t.Fatal("b's copy differs")
	}
	if refetched := cr.got - size; refetched > part+overhead {
		t.Errorf("download fetched %d bytes again, more than one part of %d", refetched, part)
	}
	t.Logf("download: %d bytes fetched for %d", cr.got, size)
	if !strings.Contains(a.logs.String(), "resuming an interrupted upload") || !strings.Contains(b.logs.String(), "resuming an interrupted download") {
		t.Error("resumption not logged")
	}
}
