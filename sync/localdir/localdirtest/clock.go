// Package localdirtest holds test helpers for code built on package
// localdir: a fake clock that moves only when told to.
package localdirtest

import (
	gosync "sync"
	"time"

	"github.com/escalefs/escalefs/sync/localdir"
)

// Clock is a localdir.Clock whose time moves only by Advance, so that
// tests of debouncing never sleep. It is safe for concurrent use.
type Clock struct {
	mu     gosync.Mutex
	now    time.Time
	timers []*timer
}

var _ localdir.Clock = (*Clock)(nil)

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock has been advanced by
// d or more. A timer of zero or negative d fires at the next Advance.
func (c *Clock) NewTimer(d time.Duration) localdir.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock forward by d and fires, in order of their
// deadlines, the timers that are due. A fired timer's value waits in its
// channel (capacity one); Advance does not wait for it to be received.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(c.now.Add(d))
}

// Set moves the clock to t, forward or back, and fires the timers that are
// then due, as Advance does.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(t)
}

func (c *Clock) set(t time.Time) {
	c.now = t
	kept := c.timers[:0]
	var due []*timer
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
		} else {
			due = append(due, t)
		}
	}
	clear(c.timers[len(kept):])
	c.timers = kept
	for len(due) > 0 {
		i := 0
		for j, t := range due {
			if t.at.Before(due[i].at) {
				i = j
			}
		}
		due[i].ch <- c.now
		due = append(due[:i], due[i+1:]...)
	}
}

// Pending returns the deadlines of the timers that have not fired and were
// not stopped, in no particular order.
func (c *Clock) Pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.at
	}
	return out
}

type timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *timer) C() <-chan time.Time { return t.ch }

// Stop removes the timer and drains a value it may have delivered.
func (t *timer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			break
		}
	}
	select {
	case <-t.ch:
	default:
	}
}
