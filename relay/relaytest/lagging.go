package relaytest

import (
	"context"
	"io"
	"path"
	"strings"
	gosync "sync"

	"github.com/escalefs/escalefs/relay"
)

// Lagging wraps a relay so that its listings are only eventually
// consistent, as those of some S3-compatible stores are: an object that a
// Put creates is left out of the next Lag listings, and an object that a
// Delete removes is still listed, with its old size and time, by the next
// Lag listings. Time is counted in List calls (of any caller), so tests
// stay deterministic and never wait. Stat, Get, Put and Delete see the
// store as it is, as S3 gives read-after-write consistency for them.
// Overwriting an existing object changes nothing about its visibility.
type Lagging struct {
	inner relay.Relay
	lag   int

	mu     gosync.Mutex
	lists  int                     // List calls so far
	hidden map[string]int          // created objects: listed from this List call on
	ghosts map[string]laggingGhost // deleted objects: listed until this List call
}

type laggingGhost struct {
	info  relay.ObjectInfo
	until int
}

var _ relay.Relay = (*Lagging)(nil)

// NewLagging wraps inner with a listing lag of lag List calls.
func NewLagging(inner relay.Relay, lag int) *Lagging {
	return &Lagging{inner: inner, lag: lag, hidden: make(map[string]int), ghosts: make(map[string]laggingGhost)}
}

// Stat implements relay.Relay.
func (l *Lagging) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	return l.inner.Stat(ctx, name)
}

// List implements relay.Relay, with new objects hidden and deleted ones
// still shown as described on Lagging.
func (l *Lagging) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	var infos []relay.ObjectInfo
	err := l.inner.List(ctx, dir, func(oi relay.ObjectInfo) error {
		infos = append(infos, oi)
		return nil
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.lists++
	now := l.lists
	var out []relay.ObjectInfo
	seen := make(map[string]bool)
	for _, oi := range infos {
		seen[oi.Name] = true
		if from, ok := l.hidden[oi.Name]; ok {
			if now < from {
				continue
			}
			delete(l.hidden, oi.Name)
		}
		out = append(out, oi)
	}
	for name, g := range l.ghosts {
		switch {
		case now > g.until:
			delete(l.ghosts, name)
		case !seen[name] && (dir == "" || strings.HasPrefix(name, path.Clean(dir)+"/")):
			out = append(out, g.info)
		}
	}
	l.mu.Unlock()
	for _, oi := range out {
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

// Get implements relay.Relay.
func (l *Lagging) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	return l.inner.Get(ctx, name, offset, length, fn)
}

// Put implements relay.Relay; a new object stays out of the next Lag
// listings.
func (l *Lagging) Put(ctx context.Context, name string, p relay.Payload) error {
	_, statErr := l.inner.Stat(ctx, name)
	if err := l.inner.Put(ctx, name, p); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ghosts, name)
	if statErr != nil {
		l.hidden[name] = l.lists + l.lag + 1
	}
	return nil
}

// Delete implements relay.Relay; the deleted object stays in the next Lag
// listings.
func (l *Lagging) Delete(ctx context.Context, name string) error {
	info, statErr := l.inner.Stat(ctx, name)
	if err := l.inner.Delete(ctx, name); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, stillHidden := l.hidden[name]
	delete(l.hidden, name)
	if statErr == nil && !stillHidden {
		l.ghosts[name] = laggingGhost{info: info, until: l.lists + l.lag}
	}
	return nil
}

// Lists returns how many List calls the relay has answered.
func (l *Lagging) Lists() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lists
}

// Properties implements relay.Relay.
func (l *Lagging) Properties() relay.Properties { return l.inner.Properties() }

// Close implements relay.Relay.
func (l *Lagging) Close() error { return l.inner.Close() }
