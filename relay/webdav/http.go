package webdav

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/studio-b12/gowebdav"

	"github.com/escalefs/escalefs/relay"
)

// defaultMaxConns is the number of idle connections kept per server when
// Options.MaxConns is 0.
const defaultMaxConns = 8

// expectContinueMin is the body size from which a PUT waits for the
// server's "100 Continue" before sending the body, so that a request the
// server refuses anyway (401, 403, 507) does not upload it first.
const expectContinueMin = 1 << 20

// setupHTTP builds the HTTP client: the TLS settings of opts, a timeout on
// every network wait, and no redirects.
func (r *davRelay) setupHTTP(u *url.URL, opts relay.Options) error {
	timeout := r.timeout
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	maxIdle := defaultMaxConns
	if opts.MaxConns > 0 {
		maxIdle = opts.MaxConns
	}
	r.tr = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &deadlineConn{Conn: c, timeout: timeout}, nil
		},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		// Shorter than the read deadline of deadlineConn, so that the
		// transport retires an idle connection before its pending read
		// times out.
		IdleConnTimeout:     timeout / 2,
		MaxIdleConnsPerHost: maxIdle,
		MaxConnsPerHost:     opts.MaxConns,
		// Objects are opaque bytes; transparent gzip would also break the
		// byte counts of ranged reads.
		DisableCompression: true,
		// HTTP/1.1 only: aborting an upload then closes its connection, an
		// unambiguous signal to the server, and a slow reader of one object
		// cannot stall others sharing an HTTP/2 connection.
		ForceAttemptHTTP2: false,
	}
	if r.scheme == "https" {
		cfg, err := opts.TLS.Config(u.Hostname())
		if err != nil {
			return err
		}
		r.tr.TLSClientConfig = cfg
	}
	r.hc = &http.Client{
		Transport: r.tr,
		// A redirect is reported instead of followed: a WebDAV server that
		// redirects means the URL is wrong, and following a PUT or MOVE
		// elsewhere would be surprising.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// deadlineConn bounds each read and write with the connection timeout, so
// that a server that stops answering mid-transfer fails the call instead
// of hanging it.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(b)
}

// request describes one WebDAV call.
type request struct {
	method string
	url    *url.URL
	header map[string]string
	// body returns a fresh request body and its length for each attempt
	// (authentication may need the request sent again); nil for none.
	body func(attempt int) (io.Reader, int64, error)
}

// maxAuthRounds bounds the authentication round trips of one request: the
// first request to a server goes without credentials, learns the scheme
// from WWW-Authenticate and goes again; a stale Digest nonce costs one more.
const maxAuthRounds = 4

// do sends a request, going through the authentication handshake, and
// returns the response, whatever its status. Network errors are classified
// with relay.ClassifyNetError.
func (r *davRelay) do(ctx context.Context, rq request) (*http.Response, error) {
	var shim gowebdav.Authenticator
	if r.auth != nil {
		r.authMu.Lock()
		shim, _ = r.auth.NewAuthenticator(nil)
		r.authMu.Unlock()
		defer func() {
			r.authMu.Lock()
			shim.Close()
			r.authMu.Unlock()
		}()
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var (
			body   io.Reader
			length int64
		)
		if rq.body != nil {
			var err error
			if body, length, err = rq.body(attempt); err != nil {
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, rq.url.String(), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range rq.header {
			req.Header.Set(k, v)
		}
		// The RequestURI, not gowebdav's root-relative path, is what a
		// Digest response must be computed over.
		authPath := req.URL.RequestURI()
		if shim != nil {
			r.authMu.Lock()
			err := shim.Authorize(r.hc, req, authPath)
			r.authMu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("preparing authentication: %w", err)
			}
			// gowebdav's own redirect marker is no business of the server.
			req.Header.Del(gowebdav.XInhibitRedirect)
		}
		if body != nil {
			req.Body = io.NopCloser(body)
			req.ContentLength = length
			if length == 0 {
				req.Body = http.NoBody
			}
			if length >= expectContinueMin {
				req.Header.Set("Expect", "100-continue")
			}
			// The transport may resend a request whose connection turned out
			// to be dead before anything was written.
			next := attempt
			req.GetBody = func() (io.ReadCloser, error) {
				next++
				b, _, err := rq.body(next)
				if err != nil {
					return nil, err
				}
				return io.NopCloser(b), nil
			}
		} else {
			req.GetBody = nil
		}
		start := time.Now()
		resp, err := r.hc.Do(req)
		if err != nil {
			r.log.Debug("webdav request failed", "method", rq.method, "path", req.URL.EscapedPath(), "err", err)
			return nil, netError(ctx, rq.method, err)
		}
		r.log.Debug("webdav request", "method", rq.method, "path", req.URL.EscapedPath(),
			"status", resp.StatusCode, "elapsed", time.Since(start))
		if shim == nil {
			return resp, nil
		}
		r.authMu.Lock()
		redo, _ := shim.Verify(r.hc, resp, authPath)
		r.authMu.Unlock()
		if !redo || attempt+1 >= maxAuthRounds {
			return resp, nil
		}
		discard(resp)
	}
}

// discard drains a little of an unwanted response body, so that its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// netError turns a transport error into one that names the method and
// carries the relay sentinel, without the request URL that url.Error adds.
func netError(ctx context.Context, method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The transport's own timeouts (response headers, TLS handshake)
		// claim to be context.DeadlineExceeded, which would make them
		// permanent; the server may well answer next time.
		return relay.Transient(fmt.Errorf("%w: %s: %v", relay.ErrUnreachable, method, err))
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// net/http replaces the TLS error by a plain string when the
		// answer looks like HTTP, so the text is all there is to go by.
		return relay.Permanent(fmt.Errorf("%w: %s: %v (if the server only speaks plain HTTP, use webdav://)", relay.ErrTLS, method, err))
	}
	return relay.ClassifyNetError(fmt.Errorf("%s: %w", method, err))
}

// httpError is a response status the call did not expect. It wraps the
// sentinel that says what the status means.
type httpError struct {
	method string
	code   int
	status string // "404 Not Found"
	detail string // what the status probably means here, if known
	kind   error  // sentinel, or nil
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("server answered %s to %s", e.status, e.method)
	if e.detail != "" {
		msg += " (" + e.detail + ")"
	}
	if e.kind != nil {
		return e.kind.Error() + ": " + msg
	}
	return msg
}

func (e *httpError) Unwrap() error { return e.kind }

// statusError translates an unexpected response status into an error
// carrying the relay or io/fs sentinel it stands for, marked transient when
// trying again later may help.
func (r *davRelay) statusError(method string, resp *http.Response) error {
	e := &httpError{method: method, code: resp.StatusCode, status: resp.Status}
	if e.status == "" {
		e.status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		e.kind = fs.ErrNotExist
	case code == http.StatusUnauthorized:
		e.kind = relay.ErrAuth
		switch {
		case r.auth == nil:
			e.detail = "no credentials were given; put the user in the URL and give a password"
		default:
			e.detail = fmt.Sprintf("the server rejected the password of user %q", r.user)
			if schemes := authSchemes(resp); schemes != "" && !strings.Contains(strings.ToLower(schemes), "basic") &&
				!strings.Contains(strings.ToLower(schemes), "digest") {
				e.detail = "the server asks for " + schemes + " authentication; only Basic and Digest are supported"
			}
		}
	case code == http.StatusForbidden:
		e.kind = fs.ErrPermission
	case code == http.StatusInsufficientStorage || code == http.StatusRequestEntityTooLarge:
		e.kind = relay.ErrQuota
	case code == http.StatusPreconditionFailed:
		e.kind = fs.ErrExist
	case code >= 300 && code < 400:
		e.detail = "the server redirects"
		if loc, err := url.Parse(resp.Header.Get("Location")); err == nil && loc.String() != "" {
			e.detail += " to " + loc.Redacted()
		}
		e.detail += "; fix the relay URL"
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code == http.StatusLocked || code >= 500:
		return relay.Transient(e)
	}
	return relay.Permanent(e)
}

// authSchemes lists the authentication schemes a 401 response offers.
func authSchemes(resp *http.Response) string {
	var out []string
	for _, h := range resp.Header.Values("Www-Authenticate") {
		if f := strings.Fields(h); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return strings.Join(out, ", ")
}

// statusCode returns the HTTP status of an httpError in err's chain, or 0.
func statusCode(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return 0
}

// finish wraps err for the caller: named after the operation and the
// object, and wrapping ctx.Err() when the context ended, whatever the
// transport made of the cancellation.
func finish(ctx context.Context, op, name string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return relay.WrapOp(op, name, err)
}
