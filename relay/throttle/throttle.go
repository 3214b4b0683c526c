// Package throttle wraps a relay so that its transfers keep under a rate
// of bytes per second, one for sending and one for receiving, as rclone's
// --bwlimit and Syncthing's rate limits do: on a shared or metered line,
// a big upload no longer takes all of it.
package throttle

import (
	"context"
	"io"
	"time"

	"golang.org/x/time/rate"

	"github.com/escalefs/escalefs/relay"
)

// Limiter hands out bytes: WaitN blocks until n bytes (n ≤ Burst) may
// pass. *rate.Limiter is one.
type Limiter interface {
	WaitN(ctx context.Context, n int) error
	Burst() int
}

// burst is what a limiter of NewRate lets pass at once: a read of at most
// this size waits for its bytes, so the rate holds over a fraction of a
// second.
const burst = 64 << 10

// NewRate returns a Limiter of bps bytes per second, or nil (no limit)
// for bps ≤ 0.
func NewRate(bps int64) Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), burst)
}

// Relay is the throttling wrapper.
type Relay struct {
	inner    relay.Relay
	up, down Limiter
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// New wraps inner so that what Put and Create send passes through up and
// what Get receives through down; a nil Limiter does not limit that way.
// Listings and other small calls are not counted.
func New(inner relay.Relay, up, down Limiter) *Relay {
	return &Relay{inner: inner, up: up, down: down}
}

// Unwrap implements relay.Wrapper.
func (r *Relay) Unwrap() relay.Relay { return r.inner }

// Get implements relay.Relay.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if r.down == nil {
		return r.inner.Get(ctx, name, offset, length, fn)
	}
	return r.inner.Get(ctx, name, offset, length, func(rd io.Reader) error {
		return fn(&reader{ctx: ctx, r: rd, lim: r.down})
	})
}

// Put implements relay.Relay.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	return r.inner.Put(ctx, name, r.payload(ctx, p))
}

// Create implements relay.Creator.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	c, ok := r.inner.(relay.Creator)
	if !ok {
		return relay.WrapOp("create", name, relay.ErrUnsupported)
	}
	return c.Create(ctx, name, r.payload(ctx, p))
}

func (r *Relay) payload(ctx context.Context, p relay.Payload) relay.Payload {
	if r.up == nil {
		return p
	}
	return &payload{Payload: p, rd: reader{ctx: ctx, r: p, lim: r.up}}
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	return r.inner.Stat(ctx, name)
}

// List implements relay.Relay.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	return r.inner.List(ctx, dir, fn)
}

// Delete implements relay.Relay.
func (r *Relay) Delete(ctx context.Context, name string) error { return r.inner.Delete(ctx, name) }

// Rename implements relay.Renamer.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	rn, ok := r.inner.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	return rn.Rename(ctx, from, to)
}

// RemoveTemp implements relay.TempRemover.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	t, ok := r.inner.(relay.TempRemover)
	if !ok {
		return 0, relay.WrapOp("remove temporary objects", dir, relay.ErrUnsupported)
	}
	return t.RemoveTemp(ctx, dir, before)
}

// Quota implements relay.Quotaer.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	q, ok := r.inner.(relay.Quotaer)
	if !ok {
		return relay.Usage{}, relay.WrapOp("quota", "", relay.ErrUnsupported)
	}
	return q.Quota(ctx)
}

// Properties implements relay.Relay.
func (r *Relay) Properties() relay.Properties { return r.inner.Properties() }

// Close implements relay.Relay.
func (r *Relay) Close() error { return r.inner.Close() }

// reader lets at most a burst through per read, once the limiter allows.
type reader struct {
	ctx context.Context
	r   io.Reader
	lim Limiter
}

func (t *reader) Read(p []byte) (int, error) {
	if b := t.lim.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.lim.WaitN(t.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// payload is a Payload read through a limiter.
type payload struct {
	relay.Payload
	rd reader
}

func (p *payload) Read(b []byte) (int, error) { return p.rd.Read(b) }
