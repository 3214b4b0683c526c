// Package all is the one place where relay backends are registered and the
// standard wrapper stack is composed.
package all

import (
	"context"
	"fmt"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/ftp"
	"github.com/escalefs/escalefs/relay/gdrive"
	"github.com/escalefs/escalefs/relay/limit"
	"github.com/escalefs/escalefs/relay/logging"
	"github.com/escalefs/escalefs/relay/retry"
	"github.com/escalefs/escalefs/relay/s3"
	"github.com/escalefs/escalefs/relay/sftp"
	"github.com/escalefs/escalefs/relay/throttle"
	"github.com/escalefs/escalefs/relay/webdav"
)

// DefaultMaxConns is the number of relay calls that may run at once when
// Options.MaxConns is zero.
const DefaultMaxConns = 4

// Backends returns the registry of every built-in backend.
func Backends() relay.Registry {
	return relay.Registry{
		file.Backend(),
		ftp.Backend(),
		webdav.Backend(),
		gdrive.Backend(),
		s3.Backend(),
		sftp.Backend(),
	}
}

// Open parses rawURL, connects with the backend its scheme names, and
// returns it wrapped by Wrap. Errors name the URL without its password.
func Open(ctx context.Context, rawURL string, opts relay.Options) (relay.Relay, error) {
	r, err := OpenRaw(ctx, rawURL, opts)
	if err != nil {
		return nil, err
	}
	return Wrap(r, opts), nil
}

// OpenRaw is Open without the wrappers.
func OpenRaw(ctx context.Context, rawURL string, opts relay.Options) (relay.Relay, error) {
	u, b, err := Backends().Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	r, err := b.Open(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("opening relay %s: %w", u.Redacted(), err)
	}
	return r, nil
}

// Wrap composes the standard stack around a backend: the bandwidth limit
// (UpLimit, DownLimit) is next to the backend, the limiter beside it so
// that at most MaxConns calls reach the server, logging
// records every attempt, and retry is outermost so that each retry goes
// through both.
func Wrap(r relay.Relay, opts relay.Options) relay.Relay {
	n := opts.MaxConns
	if n <= 0 {
		n = DefaultMaxConns
	}
	if opts.UpLimit > 0 || opts.DownLimit > 0 {
		r = throttle.New(r, throttle.NewRate(opts.UpLimit), throttle.NewRate(opts.DownLimit))
	}
	r = limit.New(r, n)
	r = logging.New(r, opts.Logger)
	return retry.New(r, retry.Config{Logger: opts.Logger})
}
