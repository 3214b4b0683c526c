// Package ftp is the relay backend for FTP servers, in clear text
// (ftp://user@host[:port]/dir) or with explicit TLS (ftps://…, AUTH TLS on
// the same port, 21 by default).
//
// The URL path is the relay's root directory. As with curl and most FTP
// clients it is relative to the directory the server puts the user in after
// login (the FTP root on chrooting servers); a path that starts with two
// slashes (ftp://host//srv/relay, or /%2Fsrv/relay) is absolute. The root is
// created at Open if it is missing. Every command then uses absolute paths
// built from the root, so that names starting with a dash are never taken
// for command options.
//
// Put is atomic for readers: the payload is stored under a temporary name
// (relay.TempName) in the target's directory and renamed onto the final
// name, which replaces an existing object on every server tested
// (pure-ftpd, vsftpd, proftpd). A failed or cancelled Put removes the
// temporary object.
//
// Object names go to the server as they are, with one exception: pure-ftpd
// turns trailing spaces of STOR, MKD and RNTO arguments into underscores,
// so a name component ending with a space is stored with that space written
// as U+2420 (see names.go).
//
// Server quirks handled here, found with real servers (see
// internal/testserver):
//   - vsftpd and proftpd fail uploads over TLS 1.3 from Go clients
//     ("426 Failure reading network stream"), so ftps is capped at TLS 1.2
//     unless the user sets a maximum version.
//   - vsftpd (require_ssl_reuse=YES, its default) refuses data connections
//     that do not resume the control connection's TLS session ("522 SSL
//     connection failed: session reuse required"): the TLS configuration
//     has a session cache.
//   - A download closed before its end is answered differently: pure-ftpd
//     with "150 … (measured here)" or, over TLS 1.3, not at all; proftpd
//     with 426; vsftpd with 226. Short remainders are therefore read to the
//     end, and otherwise the connection is dropped rather than waited on.
//   - MLSD on pure-ftpd and proftpd lists "." and ".." and the servers' own
//     upload staging files (pure-ftpd ".pureftpd-upload.*", proftpd
//     HiddenStores ".in.NAME."); these are not objects and are skipped.
//   - vsftpd has no MLSD/MLST and hides dotfiles from LIST by default
//     (force_dot_files=NO); LIST -a shows them. It also takes a LIST
//     argument for a glob pattern, so directories are entered with CWD and
//     listed without an argument. Stat then uses SIZE + MDTM.
//   - Servers answer 550 both to a missing object and to a refused write,
//     and pure-ftpd 451 to RNTO into a missing directory; Delete and Rename
//     tell the cases apart with a Stat.
//   - jlaffaye/ftp never clears the deadline that its shut timeout sets on
//     the control connection (later commands fail with "i/o timeout"), so
//     that option is not used; instead every read and write on every
//     connection gets its own deadline (Options.Timeout).
package ftp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"strings"
	gosync "sync"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/internal/connpool"
)

// Backend returns the registry entry for ftp:// and ftps:// URLs.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"ftp", "ftps"},
		Usage:   "ftp://user@host[:port]/dir, ftps://user@host[:port]/dir (explicit TLS)",
		Open:    Open,
	}
}

// defaultMaxConns is the pool size when Options.MaxConns is 0.
const defaultMaxConns = 4

// Relay is an FTP server directory used as a relay. It keeps a pool of
// logged-in control connections; each carries one command or transfer at a
// time.
type Relay struct {
	scheme string
	loc    string // URL without password
	addr   string // host:port
	user   string
	pass   string
	tlsCfg *tls.Config // nil for plain FTP
	// timeout bounds connecting and every single read or write.
	timeout time.Duration
	// idleCheck is how long a pooled connection may idle before it is
	// checked (the idleCheck constant; shorter in tests).
	idleCheck time.Duration
	log       *slog.Logger

	// Set once by Open from the first connection; every connection to the
	// same server has the same features.
	root string // absolute directory on the server, without trailing slash unless "/"
	mlst bool   // MLST/MLSD offered: Stat by MLST, List by MLSD

	pool *connpool.Pool[*conn]
	mu   gosync.Mutex
	// listPlain is set when the server refused "LIST -a"; guarded by mu.
	listPlain bool
}

var (
	_ relay.Relay   = (*Relay)(nil)
	_ relay.Renamer = (*Relay)(nil)
)

// Open connects to the FTP server of u, logs in once to check the URL,
// credentials and TLS settings, and creates the root directory if needed.
// A wrong password gives an error wrapping relay.ErrAuth, a host that cannot
// be reached relay.ErrUnreachable, and a failed TLS handshake, an untrusted
// certificate or a server without TLS (for ftps) relay.ErrTLS.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	r, err := newRelay(u, opts)
	if err != nil {
		return nil, err
	}
	if err := r.connect(ctx, u.Path); err != nil {
		r.Close()
		return nil, relay.WrapOp("connect", r.loc, err)
	}
	return r, nil
}

func newRelay(u *url.URL, opts relay.Options) (*Relay, error) {
	su, err := relay.ParseServerURL(u, Backend().Schemes, "21", Backend().Usage)
	if err != nil {
		return nil, err
	}
	loc, host, port := su.Loc, su.Host, su.Port
	user, pass, err := opts.Credentials(u, "anonymous")
	if err != nil {
		return nil, fmt.Errorf("relay URL %q: %w", loc, err)
	}
	if user == "anonymous" && pass == "" {
		// Anonymous FTP asks for an e-mail address as password; some
		// servers refuse an empty one.
		pass = "anonymous@"
	}
	r := &Relay{
		scheme:    u.Scheme,
		loc:       loc,
		addr:      net.JoinHostPort(host, port),
		user:      user,
		pass:      pass,
		timeout:   opts.ConnTimeout(),
		idleCheck: idleCheck,
		log:       opts.Log(),
	}
	if u.Scheme == "ftps" {
		cfg, err := opts.TLS.Config(host)
		if err != nil {
			return nil, fmt.Errorf("relay URL %q: %w", loc, err)
		}
		if opts.TLS.MaxVersion == "" && cfg.MinVersion <= tls.VersionTLS12 {
			// vsftpd 3.0 and proftpd 1.3.8 fail uploads over TLS 1.3
			// from Go clients with "426 Failure reading network stream"
			// (probably the TLS 1.3 session tickets that are never read
			// on the data connection); TLS 1.2 works everywhere. A user
			// can still ask for 1.3 with a maximum version.
			cfg.MaxVersion = tls.VersionTLS12
		}
		// Data connections resume the control connection's TLS session
		// where the server offers it: servers such as vsftpd with
		// require_ssl_reuse=YES refuse data connections that do not.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(16)
		r.tlsCfg = cfg
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = defaultMaxConns
	}
	r.pool = connpool.New(maxConns, connpool.Hooks[*conn]{
		Dial:  r.dial,
		Reuse: r.reuse,
		Idle: func(c *conn) {
			c.used = time.Now()
			c.ctx = nil
		},
		Close: (*conn).abort,
		Quit:  (*conn).quit,
	})
	return r, nil
}

// connect dials the first connection, resolves and creates the root, and
// leaves the connection in the pool.
func (r *Relay) connect(ctx context.Context, urlPath string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, c.abort)
	err = r.setup(c, urlPath)
	if !stop() {
		err = ctx.Err()
	}
	r.release(c, err == nil)
	return err
}

// setup learns the server's features and makes sure the root exists.
func (r *Relay) setup(c *conn, urlPath string) error {
	r.mlst = c.sc.IsTimePreciseInList()
	home := "/"
	p := strings.TrimPrefix(urlPath, "/")
	if !strings.HasPrefix(p, "/") {
		pwd, err := c.sc.CurrentDir()
		if err := c.check(err, false); err != nil {
			return fmt.Errorf("asking for the login directory (PWD): %w", err)
		}
		if strings.HasPrefix(pwd, "/") {
			home = pwd
		}
	}
	r.root = path.Join(home, p)
	if err := c.check(c.sc.ChangeDir(r.root), false); err == nil {
		r.log.Debug("ftp: connected", "location", r.loc, "root", r.root, "mlsd", r.mlst)
		return nil
	}
	// Create the root and its missing ancestors. MKD of a directory that
	// exists fails (with 550 or 521, depending on the server); whether
	// the root is usable is checked by entering it afterwards.
	var dirs []string
	for d := r.root; d != "/" && d != "."; d = path.Dir(d) {
		dirs = append(dirs, d)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := c.check(c.sc.MakeDir(dirs[i]), true); err != nil && !isReply(err) {
			return err
		}
	}
	if err := c.check(c.sc.ChangeDir(r.root), false); err != nil {
		return fmt.Errorf("relay directory %q on the server cannot be created or entered: %w", r.root, err)
	}
	r.log.Debug("ftp: connected, created the relay directory", "location", r.loc, "root", r.root, "mlsd", r.mlst)
	return nil
}

// abs returns the absolute server path of an object or directory name.
func (r *Relay) abs(name string) string {
	if name == "" {
		return r.root
	}
	if r.root == "/" {
		return "/" + encodeName(name)
	}
	return r.root + "/" + encodeName(name)
}

// Properties describes the relay: Put is atomic (temporary name, then
// rename). Name components are limited to 255 bytes, the limit of the
// file systems that FTP servers store their files on.
func (r *Relay) Properties() relay.Properties {
	return relay.Properties{Scheme: r.scheme, Location: r.loc, AtomicPut: true, MaxNameComponent: 255}
}

// Close logs out the idle connections. Connections still in use are closed
// when their call ends. The Relay must not be used afterwards.
func (r *Relay) Close() error {
	r.pool.Close()
	return nil
}
