// Package lazy wraps the opening of a relay, so that a node can start while
// its relay cannot be reached: the relay is opened at the first call, and
// again at each later call until it answers. Until then every call fails
// with the opening's error, marked transient, and the node works from what
// it holds locally.
package lazy

import (
	"context"
	"io"
	gosync "sync"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Relay opens its relay on first use.
type Relay struct {
	open  func(ctx context.Context) (relay.Relay, error)
	props relay.Properties

	// opening serializes the calls to open: calls wait for one another's
	// opening rather than each dialling the server.
	opening gosync.Mutex
	// mu guards inner and closed, and is never held across I/O.
	mu    gosync.Mutex
	inner relay.Relay
	// closed is set by Close: no relay is opened afterwards.
	closed bool
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// New returns a relay that calls open when it is first used, and again on
// each call until open succeeds. props are its Properties until then (the
// scheme and location, which need no connection).
func New(open func(ctx context.Context) (relay.Relay, error), props relay.Properties) *Relay {
	return &Relay{open: open, props: props}
}

// current returns the opened relay, nil if none, and an error once closed.
func (r *Relay) current() (relay.Relay, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, relay.Permanent(relay.WrapOp("connect", r.props.Location, errClosed))
	}
	return r.inner, nil
}

// connected returns the opened relay, opening it if need be. An error of
// the opening is returned as it is when permanent (a refused login), and
// marked transient otherwise, so that callers retry.
func (r *Relay) connected(ctx context.Context) (relay.Relay, error) {
	if in, err := r.current(); in != nil || err != nil {
		return in, err
	}
	r.opening.Lock()
	defer r.opening.Unlock()
	if in, err := r.current(); in != nil || err != nil {
		return in, err // opened meanwhile
	}
	inner, err := r.open(ctx)
	if err != nil {
		if relay.IsPermanent(err) && ctx.Err() == nil {
			return nil, err
		}
		return nil, relay.Transient(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		inner.Close()
		return nil, relay.Permanent(relay.WrapOp("connect", r.props.Location, errClosed))
	}
	r.inner = inner
	return inner, nil
}

type closedError struct{}

func (closedError) Error() string { return "relay closed" }

var errClosed error = closedError{}

// Connected reports whether the relay has been opened.
func (r *Relay) Connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inner != nil
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	in, err := r.connected(ctx)
	if err != nil {
		return relay.ObjectInfo{}, err
	}
	return in.Stat(ctx, name)
}

// List implements relay.Relay.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	return in.List(ctx, dir, fn)
}

// Get implements relay.Relay.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	return in.Get(ctx, name, offset, length, fn)
}

// Put implements relay.Relay.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	return in.Put(ctx, name, p)
}

// Delete implements relay.Relay.
func (r *Relay) Delete(ctx context.Context, name string) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	return in.Delete(ctx, name)
}

// Rename implements relay.Renamer.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	rn, ok := in.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	return rn.Rename(ctx, from, to)
}

// RemoveTemp implements relay.TempRemover.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	in, err := r.connected(ctx)
	if err != nil {
		return 0, err
	}
	t, ok := in.(relay.TempRemover)
	if !ok {
		return 0, relay.WrapOp("remove temporary objects", dir, relay.ErrUnsupported)
	}
	return t.RemoveTemp(ctx, dir, before)
}

// Quota implements relay.Quotaer.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	in, err := r.connected(ctx)
	if err != nil {
		return relay.Usage{}, err
	}
	q, ok := in.(relay.Quotaer)
	if !ok {
		return relay.Usage{}, relay.WrapOp("quota", "", relay.ErrUnsupported)
	}
	return q.Quota(ctx)
}

// Properties implements relay.Relay: those of the opened relay, or those
// given to New before it is opened.
func (r *Relay) Properties() relay.Properties {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inner != nil {
		return r.inner.Properties()
	}
	return r.props
}

// Close implements relay.Relay.
// Unwrap implements relay.Wrapper: the opened relay, or nil before it is
// opened.
func (r *Relay) Unwrap() relay.Relay {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inner
}

func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.inner == nil {
		return nil
	}
	return r.inner.Close()
}

// Create implements relay.Creator.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	in, err := r.connected(ctx)
	if err != nil {
		return err
	}
	c, ok := in.(relay.Creator)
	if !ok {
		return relay.WrapOp("create", name, relay.ErrUnsupported)
	}
	return c.Create(ctx, name, p)
}
