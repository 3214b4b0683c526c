package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	gosync "sync"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/escalefs/escalefs/relay"
)

// idleCheck is how long a pooled connection may sit idle before it is
// checked with NOOP: servers drop idle sessions (vsftpd after 300 s,
// pure-ftpd after 15 min by default).
const idleCheck = 15 * time.Second

// putGrace bounds the wait for the server's answer to an upload that a
// cancelled context interrupted. The answer tells that the server has
// closed (and, for proftpd's HiddenStores, renamed) the temporary file, so
// that deleting it afterwards cannot race with the server.
const putGrace = 3 * time.Second

// conn is one logged-in control connection and the data connection of its
// current transfer. It is used by one call at a time.
type conn struct {
	r  *Relay
	sc *ftp.ServerConn
	// ctx is the context of the call using the connection; data
	// connections are dialled with it. Only that call's goroutine reads
	// and writes it.
	ctx  context.Context
	used time.Time // when it went back to the pool

	mu     gosync.Mutex
	ctrl   net.Conn // raw control connection
	data   net.Conn // raw data connection of the latest transfer
	closed bool
	// broken is set once the connection saw anything but a clean reply
	// (a network error, a timeout, an aborted transfer): it is then
	// closed instead of going back to the pool.
	broken bool
}

// dial opens and logs in a new connection.
func (r *Relay) dial(ctx context.Context) (*conn, error) {
	c := &conn{r: r, ctx: ctx}
	// A dial function is the only way to reach the raw connections that
	// jlaffaye/ftp opens, which cancellation has to close. With it, the
	// library ignores DialWithContext and DialWithTimeout, and it leaves
	// TLS on data connections to the dial function (see dialFunc).
	opts := []ftp.DialOption{ftp.DialWithDialFunc(c.dialFunc)}
	if r.tlsCfg != nil {
		opts = append(opts, ftp.DialWithExplicitTLS(r.tlsCfg))
	}
	stop := context.AfterFunc(ctx, c.abort)
	defer stop()
	sc, err := ftp.Dial(r.addr, opts...)
	if err != nil {
		c.abort()
		return nil, ctxErr(ctx, r.dialError(err))
	}
	c.sc = sc
	if err := sc.Login(r.user, r.pass); err != nil {
		c.abort()
		return nil, ctxErr(ctx, r.loginError(err))
	}
	r.log.Debug("ftp: logged in", "location", r.loc)
	return c, nil
}

// dialError explains a failure to connect or to start TLS.
func (r *Relay) dialError(err error) error {
	var te *textproto.Error
	if r.tlsCfg != nil && errors.As(err, &te) && te.Code != ftp.StatusNotAvailable {
		// Dial reads the greeting (220, or 421 when the server is busy)
		// and, for ftps, sends AUTH TLS: any other reply refuses TLS.
		// vsftpd without TLS answers 530, pure-ftpd 500, proftpd 500.
		return relay.Permanent(fmt.Errorf("%w: the server refused AUTH TLS (%d %s); it may not offer FTPS: use ftp:// or enable TLS on the server",
			relay.ErrTLS, te.Code, te.Msg))
	}
	return tlsHint(translate(err, false), err)
}

// tlsHint adds to a failed certificate verification the fingerprint of
// the certificate that the server presented, so that the user can check it
// and pin it.
func tlsHint(err, orig error) error {
	var (
		ua x509.UnknownAuthorityError
		cv *tls.CertificateVerificationError
	)
	var cert *x509.Certificate
	switch {
	case errors.As(orig, &ua) && ua.Cert != nil:
		cert = ua.Cert
	case errors.As(orig, &cv) && len(cv.UnverifiedCertificates) > 0:
		cert = cv.UnverifiedCertificates[0]
	default:
		return err
	}
	return fmt.Errorf("%w (the server's certificate has SHA-256 fingerprint %s: trust it with a CA file, or pin that fingerprint if you have checked it)",
		err, relay.CertFingerprint(cert.Raw))
}

// loginError explains a failed login. The password never appears: servers
// do not echo it and jlaffaye/ftp does not quote commands in errors.
func (r *Relay) loginError(err error) error {
	var te *textproto.Error
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("logging in as %q: %w", r.user, translate(err, false))
	case isNetError(err):
		// The TLS handshake happens here too, on the first command.
		return tlsHint(translate(err, false), err)
	default:
		// jlaffaye/ftp returns the bare reply text when USER gets an
		// unexpected answer, such as vsftpd's "530 This FTP server is
		// anonymous only."
		return fmt.Errorf("logging in as %q: %w: the server refused the user: %v", r.user, relay.ErrAuth, err)
	}
}

// dialFunc opens the control connection (first call) and the data
// connections (later calls) of c. Every connection gets per-operation
// deadlines, and c remembers the raw connections so that abort can close
// them.
func (c *conn) dialFunc(network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: c.r.timeout}
	nc, err := d.DialContext(c.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: nc, timeout: c.r.timeout}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, net.ErrClosed
	}
	first := c.ctrl == nil
	if first {
		c.ctrl = dc
	} else {
		c.data = dc
	}
	c.mu.Unlock()
	if !first && c.r.tlsCfg != nil {
		// jlaffaye/ftp returns data connections from a dial function as
		// they are, although it has asked for PROT P: wrap them here.
		return tls.Client(dc, c.r.tlsCfg), nil
	}
	return dc, nil
}

// abort closes the raw connections at once, interrupting any command or
// transfer in progress. The connection is then unusable.
func (c *conn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.broken = true
	if c.ctrl != nil {
		c.ctrl.Close()
	}
	if c.data != nil {
		c.data.Close()
	}
}

// abortTransfer closes the data connection at once and the control
// connection after putGrace, leaving the server time to answer the
// interrupted transfer.
func (c *conn) abortTransfer() {
	c.mu.Lock()
	c.broken = true
	if c.data != nil {
		c.data.Close()
	}
	c.mu.Unlock()
	time.AfterFunc(min(putGrace, c.r.timeout), c.abort)
}

// quit logs out politely; for idle, healthy connections.
func (c *conn) quit() {
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if !closed && c.sc != nil {
		c.sc.Quit()
	}
	c.abort()
}

// check marks c broken unless err is nil or a clean reply of the server, and
// translates err (see translate).
func (c *conn) check(err error, write bool) error {
	if err == nil {
		return nil
	}
	if !cleanReply(err) {
		c.mu.Lock()
		c.broken = true
		c.mu.Unlock()
	}
	return translate(err, write)
}

// taint marks c broken: its last transfer did not end cleanly.
func (c *conn) taint() {
	c.mu.Lock()
	c.broken = true
	c.mu.Unlock()
}

func (c *conn) reusable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.broken && !c.closed
}

// cleanReply reports whether err is only a server's refusal of a command,
// after which the control connection is still in step. A 421 reply means
// the server is closing the connection; an errors.Join from jlaffaye/ftp
// means a transfer broke.
func cleanReply(err error) bool {
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code == ftp.StatusNotAvailable {
		return false
	}
	_, joined := err.(interface{ Unwrap() []error })
	return !joined
}

// acquire takes a connection from the pool or dials one, waiting while
// MaxConns connections are in use.
func (r *Relay) acquire(ctx context.Context) (*conn, error) { return r.pool.Acquire(ctx) }

// reuse readies an idle connection for ctx; one idle for longer than
// idleCheck is checked with NOOP first, for servers drop idle sessions.
func (r *Relay) reuse(ctx context.Context, c *conn) bool {
	c.ctx = ctx
	if time.Since(c.used) <= r.idleCheck {
		return true
	}
	stop := context.AfterFunc(ctx, c.abort)
	err := c.sc.NoOp()
	stop()
	if err != nil || !c.reusable() {
		r.log.Debug("ftp: dropping a stale idle connection", "err", err)
		return false
	}
	return true
}

// release returns c to the pool if ok and it is still usable, and closes it
// otherwise.
func (r *Relay) release(c *conn, ok bool) { r.pool.Release(c, ok && c.reusable()) }

// do runs fn on a pooled connection. Cancelling ctx closes the connection,
// so that a blocked command or transfer returns at once; the returned error
// then wraps ctx.Err(). Errors are wrapped in a relay.OpError, except those
// marked with callerError, which are returned as they are.
func (r *Relay) do(ctx context.Context, op, name string, fn func(c *conn) error) error {
	return r.doWith(ctx, op, name, (*conn).abort, fn)
}

func (r *Relay) doWith(ctx context.Context, op, name string, onCancel func(*conn), fn func(c *conn) error) error {
	if err := ctx.Err(); err != nil {
		return relay.WrapOp(op, name, err)
	}
	c, err := r.acquire(ctx)
	if err != nil {
		return relay.WrapOp(op, name, ctxErr(ctx, err))
	}
	stop := context.AfterFunc(ctx, func() { onCancel(c) })
	err = fn(c)
	cancelled := !stop()
	if !c.reusable() || cancelled {
		r.log.Debug("ftp: closing a connection after a network error, a timeout or an interrupted transfer",
			"op", op, "name", name, "cancelled", cancelled, "err", err)
	}
	// A refusal from the server (a missing object, say) leaves the
	// connection usable; check has marked it broken otherwise.
	r.release(c, !cancelled)
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

// callerError carries an error of a caller's callback (List's or Get's fn)
// through do unchanged.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

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

// deadlineConn gives every Read and Write its own deadline, so that a
// server that stops answering fails the call after the timeout, however
// long the whole transfer takes.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	if err := d.Conn.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.Conn.Read(b)
}

func (d *deadlineConn) Write(b []byte) (int, error) {
	if err := d.Conn.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.Conn.Write(b)
}
