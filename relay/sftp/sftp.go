// Package sftp is the relay backend for SSH servers that offer the SFTP
// subsystem (sftp://user@host[:port]/dir, port 22 by default).
//
// The URL path is an absolute directory on the server, as with scp's
// host:/dir; a path starting with /~/ is relative to the user's home
// directory (sftp://host/~/sync). The directory is created at Open if it
// is missing.
//
// Authentication is tried as OpenSSH does: the keys of ssh-agent
// ($SSH_AUTH_SOCK), then the key file (Options.SSH.KeyFile, or OpenSSH's
// default identity files ~/.ssh/id_ed25519, id_ecdsa, id_rsa when none is
// given), then the password (Options.Credentials). A key file protected by
// a passphrase is an error unless ssh-agent holds that key: escalefs runs
// unattended and asks for no passphrase.
//
// Host keys are checked against known_hosts (Options.SSH.KnownHostsFile, or
// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts), or against a pinned
// fingerprint (Options.SSH.HostKeySHA256) which then replaces known_hosts.
// An unknown host key is refused with its fingerprint and how to accept it;
// a changed one with both fingerprints.
//
// Put is atomic for readers: the payload is written to a temporary name
// (relay.TempName) in the target's directory and renamed onto the final
// name with posix-rename@openssh.com, which replaces the target in one
// step; servers without that extension get a remove and a plain rename,
// which leaves a moment without the object. A failed or cancelled Put
// removes the temporary file.
//
// Each pooled connection is an SSH connection with one SFTP session; at
// most Options.MaxConns are open. A connection that fails with anything
// but a refusal from the server is closed, and the error is transient so
// that the retry wrapper tries again on a new one.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/internal/connpool"
)

// Backend returns the registry entry for sftp:// URLs.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"sftp"},
		Usage:   "sftp://user@host[:port]/dir (/~/dir: under the home directory)",
		Open:    Open,
	}
}

// defaultMaxConns is the pool size when Options.MaxConns is 0.
const defaultMaxConns = 4

// Relay is a directory on an SFTP server used as a relay.
type Relay struct {
	loc     string // URL without password
	addr    string // host:port
	cfg     *ssh.ClientConfig
	auth    *authSetup
	timeout time.Duration
	log     *slog.Logger

	root string // absolute directory on the server, set once by Open

	pool *connpool.Pool[*conn]
	// posix is set when the server offers posix-rename@openssh.com
	// (learnt from the first connection).
	posix bool
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
	_ relay.Quotaer     = (*Relay)(nil)
)

// conn is one SSH connection and its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sc   *sftp.Client
	once gosync.Once
	// broken is set when a transfer failed midway: the connection is
	// closed instead of pooled.
	broken atomic.Bool
}

func (c *conn) close() {
	c.once.Do(func() {
		c.sc.Close()
		c.ssh.Close()
	})
}

// Open connects to the SSH server of u, authenticates, checks the host key,
// and creates the root directory if needed. A refused login gives an error
// wrapping relay.ErrAuth; a host that cannot be reached
// relay.ErrUnreachable; an unknown or changed host key ErrHostKey.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	r, err := newRelay(u, opts)
	if err != nil {
		return nil, err
	}
	if err := r.connect(ctx, u.Path); err != nil {
		r.Close()
		var oe *relay.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return nil, relay.WrapOp("connect", r.loc, err)
	}
	return r, nil
}

func newRelay(u *url.URL, opts relay.Options) (*Relay, error) {
	su, err := relay.ParseServerURL(u, Backend().Schemes, "22", Backend().Usage)
	if err != nil {
		return nil, err
	}
	loc, host, port := su.Loc, su.Host, su.Port
	user, pass, err := opts.Credentials(u, "")
	if err != nil {
		return nil, fmt.Errorf("relay URL %q: %w", loc, err)
	}
	if user == "" {
		user = localUser()
	}
	if user == "" {
		return nil, fmt.Errorf("relay URL %q: no user name; expected %s", loc, Backend().Usage)
	}
	addr := net.JoinHostPort(host, port)
	a, err := newAuth(opts, user, pass)
	if err != nil {
		return nil, fmt.Errorf("relay URL %q: %w", loc, err)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	hk, algos, err := hostKeyCheck(opts.SSH, getenv("HOME"), addr)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("relay URL %q: %w", loc, err)
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = defaultMaxConns
	}
	r := &Relay{
		loc:  loc,
		addr: addr,
		cfg: &ssh.ClientConfig{
			User:              user,
			Auth:              a.methods(),
			HostKeyCallback:   hk,
			HostKeyAlgorithms: algos,
			Timeout:           opts.ConnTimeout(),
		},
		auth:    a,
		timeout: opts.ConnTimeout(),
		log:     opts.Log(),
	}
	r.pool = connpool.New(maxConns, connpool.Hooks[*conn]{Dial: r.dial, Close: (*conn).close})
	return r, nil
}

// connect opens the first connection, resolves and creates the root, and
// leaves the connection in the pool.
func (r *Relay) connect(ctx context.Context, urlPath string) error {
	return r.do(ctx, "connect", "", func(c *conn) error {
		_, r.posix = c.sc.HasExtension("posix-rename@openssh.com")
		p := urlPath
		switch {
		case p == "/~" || strings.HasPrefix(p, "/~/"):
			home, err := c.sc.Getwd()
			if err != nil {
				return fmt.Errorf("asking for the home directory: %w", translate(err))
			}
			p = path.Join(home, strings.TrimPrefix(p, "/~"))
		case p == "":
			p = "/"
		}
		r.root = path.Clean(p)
		st, err := c.sc.Stat(r.root)
		if err == nil && st.IsDir() {
			r.log.Debug("sftp: connected", "location", r.loc, "root", r.root, "posix-rename", r.posix)
			return nil
		}
		if err := c.sc.MkdirAll(r.root); err != nil {
			return fmt.Errorf("relay directory %q on the server cannot be created: %w", r.root, translate(err))
		}
		r.log.Debug("sftp: connected, created the relay directory", "location", r.loc, "root", r.root, "posix-rename", r.posix)
		return nil
	})
}

// dial opens a new SSH connection and SFTP session.
func (r *Relay) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: r.timeout}
	nc, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, relay.ClassifyNetError(err)
	}
	// The handshake and login are bounded by the timeout and by ctx.
	nc.SetDeadline(time.Now().Add(r.timeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, r.addr, r.cfg)
	if err != nil {
		nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, r.handshakeError(err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	sftpc, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true))
	if err != nil {
		client.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, relay.Permanent(fmt.Errorf("starting the SFTP subsystem (does the server offer SFTP?): %w", err))
	}
	nc.SetDeadline(time.Time{})
	return &conn{ssh: client, sc: sftpc}, nil
}

// handshakeError explains a failed SSH handshake or login.
func (r *Relay) handshakeError(err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return relay.Permanent(hk)
	}
	if msg := err.Error(); strings.Contains(msg, "unable to authenticate") {
		return fmt.Errorf("%w as %q on %s (tried %s): %v", relay.ErrAuth, r.cfg.User, r.addr, r.auth.describe(), err)
	}
	return relay.ClassifyNetError(err)
}

// acquire takes a connection from the pool or opens one.
func (r *Relay) acquire(ctx context.Context) (*conn, error) { return r.pool.Acquire(ctx) }

// release puts c back in the pool, or closes it when it is broken.
func (r *Relay) release(c *conn, ok bool) { r.pool.Release(c, ok) }

// do runs fn on a pooled connection and wraps its error in a relay.OpError
// (errors of a caller's callback excepted, which are returned as they are).
// When ctx ends, the connection is closed so that fn returns at once. A
// connection on which fn failed other than by a server refusal is closed
// rather than pooled.
func (r *Relay) do(ctx context.Context, op, name string, fn func(c *conn) error) error {
	if err := ctx.Err(); err != nil {
		return relay.WrapOp(op, name, err)
	}
	c, err := r.acquire(ctx)
	if err != nil {
		return relay.WrapOp(op, name, ctxErr(ctx, err))
	}
	stop := context.AfterFunc(ctx, c.close)
	err = fn(c)
	cancelled := !stop()
	broken := cancelled || c.broken.Load() || (err != nil && connBroken(err))
	if broken {
		r.log.Debug("sftp: closing a connection after a network error or an interrupted call",
			"op", op, "name", name, "cancelled", cancelled, "err", err)
	}
	r.release(c, !broken)
	if err == nil {
		return nil
	}
	var ce *callerError
	if errors.As(err, &ce) {
		return ce.err
	}
	if cancelled {
		err = ctxErr(ctx, err)
	}
	return relay.WrapOp(op, name, err)
}

// ctxErr returns ctx's error in place of err once ctx is done: the
// connection was closed because of it, so err is only a consequence.
func ctxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// Properties describes the relay: Put is atomic where the server offers
// posix-rename@openssh.com (OpenSSH does). Name components are limited to 255 bytes, the
// limit of the file systems that SFTP servers store their files on.
func (r *Relay) Properties() relay.Properties {
	return relay.Properties{Scheme: "sftp", Location: r.loc, AtomicPut: r.posix, MaxNameComponent: 255}
}

// Close closes the idle connections and the ssh-agent connection.
// Connections still in use are closed when their call ends. The Relay must
// not be used afterwards.
func (r *Relay) Close() error {
	r.pool.Close()
	r.auth.close()
	return nil
}
