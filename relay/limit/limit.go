// Package limit wraps a relay so that at most N calls run at once. Servers
// often cap connections per account (FTP servers typically at a handful),
// and going over the cap turns into refused logins.
package limit

import (
	"context"
	"io"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Relay is the limiting wrapper.
type Relay struct {
	inner relay.Relay
	slots chan struct{}
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// New wraps inner so that at most n calls (n ≥ 1) run at once. A Get holds
// its slot while its callback reads, and a List while it lists.
func New(inner relay.Relay, n int) *Relay {
	return &Relay{inner: inner, slots: make(chan struct{}, max(n, 1))}
}

func (r *Relay) acquire(ctx context.Context) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Relay) release() { <-r.slots }

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := r.acquire(ctx); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	defer r.release()
	return r.inner.Stat(ctx, name)
}

// List implements relay.Relay.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	defer r.release()
	return r.inner.List(ctx, dir, fn)
}

// Get implements relay.Relay.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("get", name, err)
	}
	defer r.release()
	return r.inner.Get(ctx, name, offset, length, fn)
}

// Put implements relay.Relay.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("put", name, err)
	}
	defer r.release()
	return r.inner.Put(ctx, name, p)
}

// Delete implements relay.Relay.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	defer r.release()
	return r.inner.Delete(ctx, name)
}

// Rename implements relay.Renamer.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	rn, ok := r.inner.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	defer r.release()
	return rn.Rename(ctx, from, to)
}

// RemoveTemp implements relay.TempRemover.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	t, ok := r.inner.(relay.TempRemover)
	if !ok {
		return 0, relay.WrapOp("remove temporary objects", dir, relay.ErrUnsupported)
	}
	if err := r.acquire(ctx); err != nil {
		return 0, relay.WrapOp("remove temporary objects", dir, err)
	}
	defer r.release()
	return t.RemoveTemp(ctx, dir, before)
}

// Quota implements relay.Quotaer.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	q, ok := r.inner.(relay.Quotaer)
	if !ok {
		return relay.Usage{}, relay.WrapOp("quota", "", relay.ErrUnsupported)
	}
	if err := r.acquire(ctx); err != nil {
		return relay.Usage{}, relay.WrapOp("quota", "", err)
	}
	defer r.release()
	return q.Quota(ctx)
}

// Properties implements relay.Relay.
func (r *Relay) Properties() relay.Properties { return r.inner.Properties() }

// Close implements relay.Relay.
func (r *Relay) Close() error { return r.inner.Close() }

// Unwrap implements relay.Wrapper.
func (r *Relay) Unwrap() relay.Relay { return r.inner }

// Create implements relay.Creator.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	c, ok := r.inner.(relay.Creator)
	if !ok {
		return relay.WrapOp("create", name, relay.ErrUnsupported)
	}
	if err := r.acquire(ctx); err != nil {
		return relay.WrapOp("create", name, err)
	}
	defer r.release()
	return c.Create(ctx, name, p)
}
