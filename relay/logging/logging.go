// Package logging wraps a relay so that every call is logged at debug level
// with its duration, size and outcome. Object names on the relay are opaque,
// so they are safe to log; credentials never reach this layer.
package logging

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Relay is the logging wrapper.
type Relay struct {
	inner relay.Relay
	log   *slog.Logger
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// New wraps inner; log nil discards everything.
func New(inner relay.Relay, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{inner: inner, log: log.With("relay", inner.Properties().Location)}
}

func (r *Relay) done(ctx context.Context, op, name string, start time.Time, err error, attrs ...any) {
	attrs = append([]any{"op", op, "name", name, "took", time.Since(start).Round(time.Microsecond)}, attrs...)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	r.log.DebugContext(ctx, "relay call", attrs...)
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	start := time.Now()
	oi, err := r.inner.Stat(ctx, name)
	r.done(ctx, "stat", name, start, err, "size", oi.Size)
	return oi, err
}

// List implements relay.Relay.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	start := time.Now()
	n := 0
	err := r.inner.List(ctx, dir, func(oi relay.ObjectInfo) error { n++; return fn(oi) })
	r.done(ctx, "list", dir, start, err, "objects", n)
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Get implements relay.Relay.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	start := time.Now()
	var read int64
	err := r.inner.Get(ctx, name, offset, length, func(rd io.Reader) error {
		cr := &countingReader{r: rd}
		err := fn(cr)
		read += cr.n
		return err
	})
	r.done(ctx, "get", name, start, err, "offset", offset, "length", length, "read", read)
	return err
}

// Put implements relay.Relay.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	start := time.Now()
	err := r.inner.Put(ctx, name, p)
	r.done(ctx, "put", name, start, err, "size", p.Length())
	return err
}

// Delete implements relay.Relay.
func (r *Relay) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := r.inner.Delete(ctx, name)
	r.done(ctx, "delete", name, start, err)
	return err
}

// Rename implements relay.Renamer.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	rn, ok := r.inner.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	start := time.Now()
	err := rn.Rename(ctx, from, to)
	r.done(ctx, "rename", from, start, err, "to", to)
	return err
}

// RemoveTemp implements relay.TempRemover.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	t, ok := r.inner.(relay.TempRemover)
	if !ok {
		return 0, relay.WrapOp("remove temporary objects", dir, relay.ErrUnsupported)
	}
	start := time.Now()
	n, err := t.RemoveTemp(ctx, dir, before)
	r.done(ctx, "remove temporary objects", dir, start, err, "removed", n)
	return n, err
}

// Quota implements relay.Quotaer.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	q, ok := r.inner.(relay.Quotaer)
	if !ok {
		return relay.Usage{}, relay.WrapOp("quota", "", relay.ErrUnsupported)
	}
	start := time.Now()
	u, err := q.Quota(ctx)
	r.done(ctx, "quota", "", start, err, "used", u.Used, "total", u.Total)
	return u, err
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
	start := time.Now()
	err := c.Create(ctx, name, p)
	r.done(ctx, "create", name, start, err, "size", p.Length())
	return err
}
