package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Backend opens relays for a set of URL schemes.
type Backend struct {
	// Schemes are the URL schemes this backend serves, e.g. "ftp", "ftps".
	Schemes []string
	// Usage is a one-line URL form for help and error messages.
	Usage string
	// Open connects to the relay at u. Credentials and TLS settings come
	// from u and opts (see Options.Credentials).
	Open func(ctx context.Context, u *url.URL, opts Options) (Relay, error)
}

// Registry is an explicit list of backends; relay/all builds the standard
// one. There is no global registration.
type Registry []Backend

// Lookup parses rawURL and finds its backend. Errors name the bad URL (with
// any password removed) and list the schemes that are known.
func (r Registry) Lookup(rawURL string) (*url.URL, Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, Backend{}, err
	}
	for _, b := range r {
		if slices.Contains(b.Schemes, u.Scheme) {
			return u, b, nil
		}
	}
	return nil, Backend{}, badURL(fmt.Errorf("relay URL %q: unknown scheme %q; expected one of: %s",
		u.Redacted(), u.Scheme, strings.Join(r.usages(), ", ")))
}

func (r Registry) usages() []string {
	var out []string
	for _, b := range r {
		out = append(out, b.Usage)
	}
	return out
}

// ParseURL parses a relay URL and checks that it is absolute. A plain path
// ("/srv/relay" or "./relay") is taken as a file:// URL, as Escale did.
// Errors never include a password.
func ParseURL(rawURL string) (*url.URL, error) {
	if rawURL == "" {
		return nil, badURL(errors.New("relay URL is empty; expected e.g. ftp://user@host/dir or file:///path"))
	}
	if strings.HasPrefix(rawURL, "/") || strings.HasPrefix(rawURL, "./") || strings.HasPrefix(rawURL, "../") {
		return &url.URL{Scheme: "file", Path: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, badURL(fmt.Errorf("relay URL %q is malformed: %v", redactRaw(rawURL), stripURL(err)))
	}
	if u.Scheme == "" {
		return nil, badURL(fmt.Errorf("relay URL %q has no scheme; expected e.g. ftp://user@host/dir or file:///path", u.Redacted()))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

// badURLError is an error of ParseURL or Lookup: its message as it is,
// and errors.Is(err, ErrBadURL).
type badURLError struct{ error }

func (e badURLError) Is(target error) bool { return target == ErrBadURL }
func (e badURLError) Unwrap() error        { return e.error }

func badURL(err error) error { return badURLError{err} }

// stripURL drops the URL that url.Parse quotes in its errors, since it may
// hold a password.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// redactRaw hides whatever sits between "://" and the last "@" of a URL that
// did not parse, since it may be a password.
func redactRaw(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		slash = len(rest)
	}
	if at := strings.LastIndexByte(rest[:slash], '@'); at >= 0 {
		user, _, _ := strings.Cut(rest[:at], ":")
		return s[:i+3] + user + ":xxxxx" + rest[at:]
	}
	return s
}

// Redact returns u as text without its password, for logs and messages.
func Redact(u *url.URL) string { return u.Redacted() }

// ServerURL is what a relay URL naming a server (ftp://, sftp://) says
// of where to connect.
type ServerURL struct {
	// Loc is the URL without its password, for messages.
	Loc string
	// Host and Port are where to connect; Port is the default when the
	// URL gives none.
	Host, Port string
}

// ParseServerURL checks a server relay URL: its scheme is one of schemes,
// it has a host and a port from 1 to 65535 (defaultPort without one), no
// query or fragment, and no control character in its path. Errors name
// the URL, without a password, and end with usage, the URL form expected.
func ParseServerURL(u *url.URL, schemes []string, defaultPort, usage string) (ServerURL, error) {
	safe := *u
	if u.User != nil {
		safe.User = url.User(u.User.Username())
	}
	s := ServerURL{Loc: safe.String(), Host: u.Hostname(), Port: u.Port()}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("relay URL %q: %s; expected %s", s.Loc, fmt.Sprintf(format, args...), usage)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return s, bad("scheme %q is not %s", u.Scheme, strings.Join(schemes, " or "))
	}
	if u.Opaque != "" {
		return s, bad("no // after the scheme")
	}
	if s.Host == "" {
		return s, bad("no host")
	}
	if s.Port == "" {
		s.Port = defaultPort
	}
	if n, err := strconv.Atoi(s.Port); err != nil || n < 1 || n > 65535 {
		return s, bad("port %q is not a number from 1 to 65535", s.Port)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return s, fmt.Errorf("relay URL %q: query parameters and fragments are not supported (write a # in a path as %%23): %w",
			s.Loc, ErrUnsupported)
	}
	if strings.ContainsFunc(u.Path, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s, bad("the path contains a control character")
	}
	return s, nil
}
