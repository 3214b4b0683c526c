package relaytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/escalefs/escalefs/relay"
)

// ErrInjected is the transient failure a Faulty relay injects. It looks
// like a dropped connection.
var ErrInjected = fmt.Errorf("injected fault: %w", syscall.ECONNRESET)

// FaultConfig says which calls a Faulty relay breaks.
type FaultConfig struct {
	// FailEvery makes every Nth call fail (0: never). Odd-numbered faults
	// fail before the call reaches the relay; even-numbered ones let a
	// Put, Delete or Rename happen and then lose the reply, as when the
	// connection drops just before the server's answer.
	FailEvery int
	// CutEvery cuts every Nth transfer (Get or Put, 0: never) after CutAfter
	// bytes, as a connection reset mid-transfer would.
	CutEvery int
	CutAfter int64
}

// Faulty wraps a relay and injects transient faults deterministically. Its
// counters are safe for concurrent use.
type Faulty struct {
	inner     relay.Relay
	cfg       FaultConfig
	calls     atomic.Int64
	faults    atomic.Int64
	transfers atomic.Int64
	// Injected counts the faults injected so far (failures and cuts).
	Injected atomic.Int64
}

// NewFaulty wraps inner.
func NewFaulty(inner relay.Relay, cfg FaultConfig) *Faulty {
	return &Faulty{inner: inner, cfg: cfg}
}

var (
	_ relay.Relay   = (*Faulty)(nil)
	_ relay.Renamer = (*Faulty)(nil)
)

// fault decides the fate of a call: 0 none, 1 fail before, 2 fail after.
func (f *Faulty) fault() int {
	n := f.calls.Add(1)
	if f.cfg.FailEvery <= 0 || n%int64(f.cfg.FailEvery) != 0 {
		return 0
	}
	f.Injected.Add(1)
	if f.faults.Add(1)%2 == 1 {
		return 1
	}
	return 2
}

func (f *Faulty) cut() bool {
	if f.cfg.CutEvery <= 0 {
		return false
	}
	if f.transfers.Add(1)%int64(f.cfg.CutEvery) != 0 {
		return false
	}
	f.Injected.Add(1)
	return true
}

// Stat implements relay.Relay.
func (f *Faulty) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if f.fault() != 0 {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, ErrInjected)
	}
	return f.inner.Stat(ctx, name)
}

// List implements relay.Relay. A faulty listing breaks after delivering
// half of the objects, so that retries must not deliver them twice.
func (f *Faulty) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if f.fault() == 0 {
		return f.inner.List(ctx, dir, fn)
	}
	n := 0
	err := f.inner.List(ctx, dir, func(oi relay.ObjectInfo) error {
		n++
		if n%2 == 0 {
			return errStopList
		}
		return fn(oi)
	})
	if err != nil && !errors.Is(err, errStopList) {
		return err
	}
	return relay.WrapOp("list", dir, ErrInjected)
}

var errStopList = errors.New("stop")

// Get implements relay.Relay.
func (f *Faulty) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if f.fault() != 0 {
		return relay.WrapOp("get", name, ErrInjected)
	}
	if !f.cut() {
		return f.inner.Get(ctx, name, offset, length, fn)
	}
	return f.inner.Get(ctx, name, offset, length, func(r io.Reader) error {
		return fn(&cutReader{r: r, left: f.cfg.CutAfter})
	})
}

// cutReader fails with ErrInjected after left bytes.
type cutReader struct {
	r    io.Reader
	left int64
}

func (c *cutReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrInjected
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

// cutPayload is a payload whose transfer is cut after some bytes.
type cutPayload struct {
	relay.Payload
	cr *cutReader
}

func (c *cutPayload) Read(b []byte) (int, error) { return c.cr.Read(b) }

// Put implements relay.Relay.
func (f *Faulty) Put(ctx context.Context, name string, p relay.Payload) error {
	fate := f.fault()
	if fate == 1 {
		return relay.WrapOp("put", name, ErrInjected)
	}
	if f.cut() && p.Length() > f.cfg.CutAfter {
		p = &cutPayload{Payload: p, cr: &cutReader{r: p, left: f.cfg.CutAfter}}
	}
	if err := f.inner.Put(ctx, name, p); err != nil {
		return err
	}
	if fate == 2 {
		return relay.WrapOp("put", name, ErrInjected)
	}
	return nil
}

// Delete implements relay.Relay.
func (f *Faulty) Delete(ctx context.Context, name string) error {
	fate := f.fault()
	if fate == 1 {
		return relay.WrapOp("delete", name, ErrInjected)
	}
	if err := f.inner.Delete(ctx, name); err != nil {
		return err
	}
	if fate == 2 {
		return relay.WrapOp("delete", name, ErrInjected)
	}
	return nil
}

// Rename implements relay.Renamer.
func (f *Faulty) Rename(ctx context.Context, from, to string) error {
	rn, ok := f.inner.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	fate := f.fault()
	if fate == 1 {
		return relay.WrapOp("rename", from, ErrInjected)
	}
	if err := rn.Rename(ctx, from, to); err != nil {
		return err
	}
	if fate == 2 {
		return relay.WrapOp("rename", from, ErrInjected)
	}
	return nil
}

// Properties implements relay.Relay.
func (f *Faulty) Properties() relay.Properties { return f.inner.Properties() }

// Close implements relay.Relay.
func (f *Faulty) Close() error { return f.inner.Close() }
