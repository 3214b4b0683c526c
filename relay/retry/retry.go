// Package retry wraps a relay so that transient failures (dropped
// connections, busy servers, rate limits) are retried with exponential
// backoff. Permanent errors (see relay.IsPermanent) are returned at once,
// and every wait honours the context.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/escalefs/escalefs/relay"
)

// Config tunes the backoff. The zero value gives the defaults.
type Config struct {
	// Initial is the first wait (default 250ms); each retry doubles it.
	Initial time.Duration
	// Max caps a single wait (default 30s).
	Max time.Duration
	// Attempts is the number of tries per call, the first included
	// (default 8).
	Attempts int
	// Sleep waits d or until ctx ends; nil uses a timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives one message per retry; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Initial <= 0 {
		c.Initial = 250 * time.Millisecond
	}
	if c.Max <= 0 {
		c.Max = 30 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 8
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Relay is the retrying wrapper.
type Relay struct {
	inner relay.Relay
	cfg   Config
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// New wraps inner.
func New(inner relay.Relay, cfg Config) *Relay {
	return &Relay{inner: inner, cfg: cfg.withDefaults()}
}

// Delay returns the wait before retry number n (1-based): Initial·2^(n-1),
// capped at Max, with up to 20% random jitter removed so that nodes that
// failed together do not retry together.
func (c Config) Delay(n int) time.Duration {
	c = c.withDefaults()
	d := c.Initial
	for i := 1; i < n && d < c.Max; i++ {
		d *= 2
	}
	d = min(d, c.Max)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// do runs op until it succeeds, fails permanently, runs out of attempts or
// ctx ends.
func (r *Relay) do(ctx context.Context, what, name string, op func() error) error {
	if err := ctx.Err(); err != nil {
		return relay.WrapOp(what, name, err)
	}
	var err error
	for attempt := 1; ; attempt++ {
		if err = op(); err == nil || relay.IsPermanent(err) || attempt >= r.cfg.Attempts {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%w (last failure: %w)", cerr, err)
		}
		d := r.cfg.Delay(attempt)
		r.cfg.Logger.Info("relay call failed, retrying", "op", what, "name", name,
			"attempt", attempt, "wait", d, "err", err)
		if serr := r.cfg.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (last failure: %w)", serr, err)
		}
	}
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (oi relay.ObjectInfo, err error) {
	err = r.do(ctx, "stat", name, func() error {
		oi, err = r.inner.Stat(ctx, name)
		return err
	})
	return oi, err
}

// fnError marks an error returned by the caller's callback, which is never
// retried and is returned as is.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// List implements relay.Relay. A listing that fails midway is started over;
// objects already delivered are not delivered again.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	seen := map[string]bool{}
	err := r.do(ctx, "list", dir, func() error {
		return r.inner.List(ctx, dir, func(oi relay.ObjectInfo) error {
			if seen[oi.Name] {
				return nil
			}
			seen[oi.Name] = true
			if err := fn(oi); err != nil {
				return relay.Permanent(&fnError{err})
			}
			return nil
		})
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

// readRecorder remembers the error the relay's reader returned, to tell a
// broken transfer (retried) from the callback's own failure (returned).
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if err != nil && err != io.EOF {
		rr.err = err
	}
	return n, err
}

// Get implements relay.Relay. When the transfer breaks, fn is called again
// with a fresh reader from offset, as the relay.Relay contract allows.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	err := r.do(ctx, "get", name, func() error {
		return r.inner.Get(ctx, name, offset, length, func(rd io.Reader) error {
			rec := &readRecorder{r: rd}
			err := fn(rec)
			if err == nil {
				return nil
			}
			if rec.err != nil && errors.Is(err, rec.err) && !relay.IsPermanent(rec.err) {
				return relay.Transient(err) // the connection broke: try again
			}
			return relay.Permanent(&fnError{err})
		})
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

// payloadRecorder remembers a failure of the caller's payload itself, which
// no retry can mend.
type payloadRecorder struct {
	relay.Payload
	err error
}

func (p *payloadRecorder) Read(b []byte) (int, error) {
	n, err := p.Payload.Read(b)
	if err != nil && err != io.EOF {
		p.err = err
	}
	return n, err
}

// Put implements relay.Relay. The payload is rewound before each retry.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	rec := &payloadRecorder{Payload: p}
	first := true
	return r.do(ctx, "put", name, func() error {
		if !first {
			if err := p.Rewind(); err != nil {
				return relay.Permanent(err)
			}
		}
		first = false
		err := r.inner.Put(ctx, name, rec)
		if err != nil && rec.err != nil {
			return relay.Permanent(err) // the payload's own source failed
		}
		return err
	})
}

// Delete implements relay.Relay. Delete is idempotent, so retrying it after
// a lost reply is safe.
func (r *Relay) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.inner.Delete(ctx, name) })
}

// Rename implements relay.Renamer. A retry that finds the source gone and
// the target present takes it that an earlier attempt succeeded but its
// reply was lost: with one writer per object nobody else moves it.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	rn, ok := r.inner.(relay.Renamer)
	if !ok {
		return relay.WrapOp("rename", from, relay.ErrUnsupported)
	}
	tried := false
	return r.do(ctx, "rename", from, func() error {
		err := rn.Rename(ctx, from, to)
		if tried && errors.Is(err, fs.ErrNotExist) {
			if _, serr := r.inner.Stat(ctx, to); serr == nil {
				return nil
			}
		}
		tried = true
		return err
	})
}

// RemoveTemp implements relay.TempRemover.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (n int, err error) {
	t, ok := r.inner.(relay.TempRemover)
	if !ok {
		return 0, relay.WrapOp("remove temporary objects", dir, relay.ErrUnsupported)
	}
	err = r.do(ctx, "remove temporary objects", dir, func() error {
		m, err := t.RemoveTemp(ctx, dir, before)
		n += m
		return err
	})
	return n, err
}

// Quota implements relay.Quotaer.
func (r *Relay) Quota(ctx context.Context) (u relay.Usage, err error) {
	q, ok := r.inner.(relay.Quotaer)
	if !ok {
		return relay.Usage{}, relay.WrapOp("quota", "", relay.ErrUnsupported)
	}
	err = r.do(ctx, "quota", "", func() error {
		u, err = q.Quota(ctx)
		return err
	})
	return u, err
}

// Properties implements relay.Relay.
func (r *Relay) Properties() relay.Properties { return r.inner.Properties() }

// Close implements relay.Relay.
func (r *Relay) Close() error { return r.inner.Close() }

// Unwrap implements relay.Wrapper.
func (r *Relay) Unwrap() relay.Relay { return r.inner }

// Create implements relay.Creator. The payload is rewound before each
// retry. A retry that finds the object there may be finding what an
// earlier attempt stored before its reply was lost: the caller reads the
// object back to know whose it is.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	c, ok := r.inner.(relay.Creator)
	if !ok {
		return relay.WrapOp("create", name, relay.ErrUnsupported)
	}
	rec := &payloadRecorder{Payload: p}
	first := true
	return r.do(ctx, "create", name, func() error {
		if !first {
			if err := p.Rewind(); err != nil {
				return relay.Permanent(err)
			}
		}
		first = false
		err := c.Create(ctx, name, rec)
		if err != nil && rec.err != nil {
			return relay.Permanent(err)
		}
		return err
	})
}
