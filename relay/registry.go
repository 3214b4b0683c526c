package relay

import (
	"context"
	"fmt"
	"net/url"
	"slices"
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
	return nil, Backend{}, fmt.Errorf("relay URL %q: unknown scheme %q; expected one of: %s",
		u.Redacted(), u.Scheme, strings.Join(r.usages(), ", "))
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
		return nil, fmt.Errorf("relay URL is empty; expected e.g. ftp://user@host/dir or file:///path")
	}
	if strings.HasPrefix(rawURL, "/") || strings.HasPrefix(rawURL, "./") || strings.HasPrefix(rawURL, "../") {
		return &url.URL{Scheme: "file", Path: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("relay URL %q is malformed: %v", redactRaw(rawURL), stripURL(err))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("relay URL %q has no scheme; expected e.g. ftp://user@host/dir or file:///path", u.Redacted())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

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
