package config

import (
	"errors"
	"fmt"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/versions"
)

// Kind is the kind of value a key takes.
type Kind int

// The kinds of values.
const (
	String   Kind = iota // a TOML string
	Int                  // a TOML integer
	Bool                 // true or false
	List                 // an array of strings
	Duration             // a string such as "10s" or "72h"
	Size                 // a string such as "2GB" or "500MiB", or an integer of bytes
	File                 // a string naming a file that must be readable: ~ is expanded, relative to the configuration file's directory
	Dir                  // a string naming a directory: ~ is expanded, relative to the configuration file's directory
)

// Key describes one key of the configuration file.
type Key struct {
	// Name is the key as written in the file; it is also the name of the
	// command-line flag that overrides it, when there is one.
	Name string
	// Kind is the kind of value it takes.
	Kind Kind
	// Global says the key belongs in [global] rather than in a
	// repository's table.
	Global bool
	// check validates the value, after its kind is checked; nil accepts
	// any. It returns the expected form when the value is wrong.
	check func(v any) string
}

// Expected returns the form of the values k takes, for error messages.
func (k Key) Expected() string {
	switch k.Kind {
	case Int:
		return "an integer"
	case Bool:
		return "true or false"
	case List:
		return `a list of strings such as ["*.tmp", "*.log"]`
	case Duration:
		return `a duration such as "10s" or "5m"`
	case Size:
		return `a size such as "500MB" or "2GiB" (powers of 1000: KB, MB, GB, TB; of 1024: KiB, MiB, GiB, TiB), or 0`
	case File:
		return "a file name (a string)"
	case Dir:
		return "a directory (a string)"
	}
	return "a string"
}

// Keys lists every key the configuration file knows, global ones first.
// The key reference in docs/configuration.md is checked against it.
var Keys = []Key{
	{Name: "log-file", Kind: File, Global: true},
	{Name: "log-max-size", Kind: Size, Global: true},
	{Name: "log-max-backups", Kind: Int, Global: true, check: nonNegative},
	{Name: "log-level", Kind: String, Global: true, check: oneOf("debug", "info", "warn", "error")},

	{Name: "path", Kind: Dir},
	{Name: "mountpoint", Kind: Dir},
	{Name: "relay", Kind: String, check: checkRelay},
	{Name: "name", Kind: String, check: nonEmpty},
	{Name: "username", Kind: String, check: nonEmpty},
	{Name: "password", Kind: String},
	{Name: "password-file", Kind: File},
	{Name: "netrc", Kind: File},
	{Name: "credentials", Kind: File},
	{Name: "encryption", Kind: Bool},
	{Name: "passphrase-file", Kind: File},
	{Name: "key-file", Kind: File},
	{Name: "certificate", Kind: File},
	{Name: "certificate-key", Kind: File},
	{Name: "ca-file", Kind: File},
	{Name: "verify-ssl", Kind: Bool},
	{Name: "ssl-version", Kind: String, check: oneOf("1.0", "1.1", "1.2", "1.3")},
	{Name: "pin-sha256", Kind: String, check: checkPin},
	{Name: "ssh-key", Kind: File},
	{Name: "known-hosts", Kind: File},
	{Name: "host-key-sha256", Kind: String, check: nonEmpty},
	{Name: "s3-endpoint", Kind: String, check: nonEmpty},
	{Name: "s3-region", Kind: String, check: nonEmpty},
	{Name: "mode", Kind: String, check: checkMode},
	{Name: "refresh", Kind: Duration, check: positive},
	{Name: "pullers", Kind: Int, check: nonNegative},
	{Name: "lock-timeout", Kind: Duration, check: nonZero},
	{Name: "stop-grace", Kind: Duration, check: nonNegativeDuration},
	{Name: "disk-quota", Kind: Size},
	{Name: "min-free", Kind: String, check: checkMinFree},
	{Name: "chunks", Kind: Bool},
	{Name: "versions", Kind: String, check: checkVersions},
	{Name: "versions-keep", Kind: Int, check: positiveInt},
	{Name: "versions-max-age", Kind: Duration, check: positive},
	{Name: "versions-max-size", Kind: String, check: checkMinFree},
	{Name: "versions-local", Kind: Bool},
	{Name: "include", Kind: List},
	{Name: "exclude", Kind: List},
	{Name: "extension", Kind: List},
	{Name: "include-dir", Kind: List},
	{Name: "exclude-dir", Kind: List},
	{Name: "no-default-ignores", Kind: Bool},
	{Name: "checksum", Kind: String, check: checkChecksum},
	{Name: "maintainer", Kind: String, check: checkEmail},
	{Name: "max-connections", Kind: Int, check: nonNegative},
	{Name: "bwlimit", Kind: String, check: checkBwLimit},
	{Name: "timeout", Kind: Duration, check: positive},
}

// Lookup returns the key named name.
func Lookup(name string) (Key, bool) {
	i := slices.IndexFunc(Keys, func(k Key) bool { return k.Name == name })
	if i < 0 {
		return Key{}, false
	}
	return Keys[i], true
}

// Schemes are the relay URL schemes a relay key may use (relay/all serves
// them).
var Schemes = []string{"file", "ftp", "ftps", "webdav", "webdavs", "http", "https", "gdrive", "sftp", "s3"}

// sizeText holds a size as written: a TOML string or integer.
type sizeText string

func (s *sizeText) UnmarshalText(b []byte) error {
	*s = sizeText(b)
	return nil
}

// goType is the Go type a key of kind k decodes into.
func (k Kind) goType() reflect.Type {
	switch k {
	case Int:
		return reflect.TypeFor[int64]()
	case Bool:
		return reflect.TypeFor[bool]()
	case List:
		return reflect.TypeFor[[]string]()
	case Size:
		return reflect.TypeFor[sizeText]()
	}
	return reflect.TypeFor[string]()
}

// convert checks the value v of key k, decoded into k.Kind.goType(), and
// returns it in its final Go type (string, int, bool, []string,
// time.Duration, int64 for sizes), or the expected form.
func (k Key) convert(v any) (any, string) {
	var out any = v
	switch k.Kind {
	case Int:
		n := v.(int64)
		if int64(int(n)) != n {
			return nil, "expected " + k.Expected()
		}
		out = int(n)
	case Duration:
		d, err := time.ParseDuration(v.(string))
		if err != nil {
			return nil, "expected " + k.Expected()
		}
		out = d
	case Size:
		n, err := units.ParseSize(string(v.(sizeText)))
		if err != nil {
			return nil, "expected " + k.Expected()
		}
		out = n
	}
	if k.check != nil {
		if why := k.check(out); why != "" {
			return nil, why
		}
	}
	return out, ""
}

func oneOf(vals ...string) func(any) string {
	return func(v any) string {
		if slices.Contains(vals, v.(string)) {
			return ""
		}
		return "expected one of " + strings.Join(vals, ", ")
	}
}

func nonEmpty(v any) string {
	if v.(string) == "" {
		return "expected a non-empty string"
	}
	return ""
}

func nonNegative(v any) string {
	if v.(int) < 0 {
		return "expected 0 or a positive integer"
	}
	return ""
}

func positiveInt(v any) string {
	if v.(int) < 1 {
		return "expected a positive integer"
	}
	return ""
}

func positive(v any) string {
	if v.(time.Duration) <= 0 {
		return `expected a positive duration such as "10s" or "5m"`
	}
	return ""
}

func nonZero(v any) string {
	if v.(time.Duration) == 0 {
		return `expected a positive duration such as "72h", or a negative one to wait forever`
	}
	return ""
}

func nonNegativeDuration(v any) string {
	if v.(time.Duration) < 0 {
		return `expected 0 (stop at once) or a positive duration such as "5s"`
	}
	return ""
}

func checkVersions(v any) string {
	if _, err := versions.ParseKind(v.(string)); err != nil {
		return "expected staggered, simple or off"
	}
	return ""
}

func checkMinFree(v any) string {
	if _, err := units.ParseMinFree(v.(string)); err != nil {
		return units.MinFreeForm
	}
	return ""
}

func checkBwLimit(v any) string {
	if _, _, err := units.ParseBwLimit(v.(string)); err != nil {
		return units.BwLimitForm
	}
	return ""
}

func checkMode(v any) string {
	if _, err := proto.ParseMode(v.(string)); err != nil {
		return "expected shared, upload (or push-only), download (or pull-only) or conservative"
	}
	return ""
}

func checkRelay(v any) string {
	const form = "expected a relay URL such as ftps://user@host/dir, webdavs://user@host/path, gdrive:///folder or file:///path"
	u, err := relay.ParseURL(v.(string))
	if err != nil {
		return form
	}
	if !slices.Contains(Schemes, u.Scheme) {
		return fmt.Sprintf("unknown scheme %q: %s", u.Scheme, form)
	}
	return ""
}

func checkPin(v any) string {
	s := strings.ReplaceAll(strings.ToLower(v.(string)), ":", "")
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "expected a SHA-256 fingerprint: 64 hexadecimal digits, colons allowed"
	}
	return ""
}

func checkChecksum(v any) string {
	if v.(string) != "sha256" {
		return `expected "sha256", the only checksum algorithm escalefs uses`
	}
	return ""
}

func checkEmail(v any) string {
	a, err := mail.ParseAddress(v.(string))
	if err != nil || a.Name != "" {
		return "expected an email address such as me@example.org"
	}
	return ""
}

// errNotReadable is wrapped by the errors of files that cannot be read.
var errNotReadable = errors.New("cannot be read")
