package connpool_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/internal/connpool"
)

// conns records what the pool does with numbered connections.
type conns struct {
	dialed          int
	stale           map[int]bool // Reuse refuses these
	closed, quitted []int
	idled           []int
}

func (c *conns) hooks() connpool.Hooks[int] {
	return connpool.Hooks[int]{
		Dial:  func(context.Context) (int, error) { c.dialed++; return c.dialed, nil },
		Reuse: func(_ context.Context, n int) bool { return !c.stale[n] },
		Idle:  func(n int) { c.idled = append(c.idled, n) },
		Close: func(n int) { c.closed = append(c.closed, n) },
		Quit:  func(n int) { c.quitted = append(c.quitted, n) },
	}
}

func TestPool(t *testing.T) {
	c := &conns{stale: map[int]bool{}}
	p := connpool.New(2, c.hooks())
	ctx := t.Context()
	a, _ := p.Acquire(ctx)
	b, _ := p.Acquire(ctx)
	if a != 1 || b != 2 {
		t.Fatalf("dialed %d and %d, want 1 and 2", a, b)
	}
	// A third waits for a slot: it gives up with its context.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third acquire of a pool of 2: %v, want the context's deadline", err)
	}
	p.Release(a, true)
	p.Release(b, true)
	if !slices.Equal(c.idled, []int{1, 2}) {
		t.Errorf("idled %v, want [1 2]", c.idled)
	}
	// The connection idle last comes first; a stale one is closed and
	// the next tried.
	c.stale[2] = true
	if got, _ := p.Acquire(ctx); got != 1 || !slices.Equal(c.closed, []int{2}) {
		t.Errorf("acquired %d, closed %v; want 1, and 2 closed as stale", got, c.closed)
	}
	// A broken connection is closed, not kept.
	p.Release(1, false)
	if !slices.Equal(c.closed, []int{2, 1}) {
		t.Errorf("closed %v after a broken release, want [2 1]", c.closed)
	}
	got, _ := p.Acquire(ctx)
	if got != 3 {
		t.Errorf("acquired %d from an empty pool, want a new one (3)", got)
	}
	// Closing ends the idle ones and, once released, those in use; then
	// nothing more is acquired.
	p.Release(got, true)
	held, _ := p.Acquire(ctx)
	p.Close()
	p.Release(held, true)
	if !slices.Equal(c.quitted, []int{3}) {
		t.Errorf("quitted %v, want the healthy connection released after Close", c.quitted)
	}
	if _, err := p.Acquire(ctx); !errors.Is(err, fs.ErrClosed) || !relay.IsPermanent(err) {
		t.Errorf("acquire from a closed pool: %v, want a permanent error wrapping fs.ErrClosed", err)
	}
}
