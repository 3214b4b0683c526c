// Package connpool is the pool of connections of the relays that talk to
// their server over connections of their own (FTP, SFTP): at most n at
// once, in use or idle, the idle ones reused last in, first out.
package connpool

import (
	"context"
	"fmt"
	"io/fs"
	gosync "sync"

	"github.com/escalefs/escalefs/relay"
)

// Hooks are what a pool does with its connections.
type Hooks[C any] struct {
	// Dial opens a connection.
	Dial func(ctx context.Context) (C, error)
	// Reuse, if set, readies an idle connection for a call under ctx, and
	// says whether it is still good; the pool closes one that is not, and
	// tries the next.
	Reuse func(ctx context.Context, c C) bool
	// Idle, if set, is called on a connection put back in the pool.
	Idle func(c C)
	// Close closes a broken connection (or one Reuse refused).
	Close func(c C)
	// Quit ends a healthy connection the pool does not keep, once it is
	// closed; nil means Close.
	Quit func(c C)
}

// Pool holds the connections.
type Pool[C any] struct {
	h     Hooks[C]
	slots chan struct{} // one token per connection in use or idle
	mu    gosync.Mutex
	idle  []C  // guarded by mu
	done  bool // closed; guarded by mu
}

// New returns a pool of at most n connections.
func New[C any](n int, h Hooks[C]) *Pool[C] {
	if h.Quit == nil {
		h.Quit = h.Close
	}
	return &Pool[C]{h: h, slots: make(chan struct{}, n)}
}

// Acquire takes an idle connection or dials one, waiting while n are in
// use. A closed pool fails with a permanent error wrapping fs.ErrClosed.
func (p *Pool[C]) Acquire(ctx context.Context) (C, error) {
	var zero C
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	for {
		c, ok, err := p.takeIdle()
		if err != nil {
			<-p.slots
			return zero, err
		}
		if !ok {
			break
		}
		if p.h.Reuse == nil || p.h.Reuse(ctx, c) {
			return c, nil
		}
		p.h.Close(c)
	}
	c, err := p.h.Dial(ctx)
	if err != nil {
		<-p.slots
		return zero, err
	}
	return c, nil
}

// takeIdle takes the connection idle last, if any.
func (p *Pool[C]) takeIdle() (c C, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return c, false, relay.Permanent(fmt.Errorf("relay is closed: %w", fs.ErrClosed))
	}
	n := len(p.idle)
	if n == 0 {
		return c, false, nil
	}
	c = p.idle[n-1]
	p.idle = p.idle[:n-1]
	return c, true, nil
}

// Release gives back a connection Acquire returned: kept idle if ok (it
// is still usable) and the pool is open, ended otherwise.
func (p *Pool[C]) Release(c C, ok bool) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	if ok && !p.done {
		if p.h.Idle != nil {
			p.h.Idle(c)
		}
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	closed := p.done
	p.mu.Unlock()
	if ok && closed {
		p.h.Quit(c)
		return
	}
	p.h.Close(c)
}

// Close ends the idle connections; those in use are ended when they are
// released. Acquire fails afterwards.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.done = true
	p.mu.Unlock()
	for _, c := range idle {
		p.h.Quit(c)
	}
}

// EachIdle calls fn with each idle connection, holding the pool's lock:
// tests break them under it.
func (p *Pool[C]) EachIdle(fn func(C)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		fn(c)
	}
}
