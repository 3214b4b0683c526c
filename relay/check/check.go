// Package check exercises a relay end to end — connect, put, list, read
// back whole and in part, rename, delete — and explains failures in terms a
// user can act on. `escalefs relay check` and the setup wizard use it.
package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
)

// Step is the outcome of one step of a check.
type Step struct {
	Name   string        // "connect", "put", …
	Detail string        // what was done, e.g. "2 objects, 1.0 MiB"
	Took   time.Duration // wall time of the step
	Err    error         // nil when the step worked
}

// Opener connects to the relay under test.
type Opener func(ctx context.Context) (relay.Relay, error)

// Run connects with open and runs every step under a fresh temporary
// prefix, calling report after each. It stops at the first failing step,
// removes what it created (best effort), and returns that step's error
// wrapped in a *Failure.
func Run(ctx context.Context, open Opener, report func(Step)) error {
	c := &checker{report: report}
	var r relay.Relay
	if err := c.step("connect", func() (string, error) {
		var err error
		r, err = open(ctx)
		if err != nil {
			return "", err
		}
		return r.Properties().Location, nil
	}); err != nil {
		return err
	}
	defer r.Close()
	return c.run(ctx, r)
}

// Failure is the error Run returns: the step that failed and its cause.
type Failure struct {
	Step string
	Err  error
}

func (f *Failure) Error() string { return fmt.Sprintf("%s failed: %v", f.Step, f.Err) }
func (f *Failure) Unwrap() error { return f.Err }

type checker struct {
	report func(Step)
}

func (c *checker) step(name string, fn func() (string, error)) error {
	start := time.Now()
	detail, err := fn()
	c.report(Step{Name: name, Detail: detail, Took: time.Since(start), Err: err})
	if err != nil {
		return &Failure{Step: name, Err: err}
	}
	return nil
}

func (c *checker) run(ctx context.Context, r relay.Relay) (err error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	prefix := "escalefs-check-" + hex.EncodeToString(rnd[:])
	p := &probe{ctx: ctx, r: r, prefix: prefix, small: randomBytes(1024), big: randomBytes(1 << 20),
		created: []string{prefix + "/small", prefix + "/sub/big", prefix + "/renamed"}}
	defer func() {
		if err == nil {
			return
		}
		// Clean up with a context of its own: ctx may be what failed.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range p.created {
			r.Delete(cctx, n)
		}
	}()
	steps := []checkStep{{"put", p.put}, {"list", p.list}, {"get", p.get}, {"get range", p.getRange}}
	if rn, ok := relay.As[relay.Renamer](r); ok {
		steps = append(steps, checkStep{"rename", func() (string, error) { return p.rename(rn) }})
	}
	steps = append(steps, checkStep{"delete", p.delete})
	for _, s := range steps {
		if err := c.step(s.name, s.fn); err != nil {
			return err
		}
	}
	if q, ok := relay.As[relay.Quotaer](r); ok {
		start := time.Now()
		u, err := q.Quota(ctx)
		if err == nil {
			c.report(Step{Name: "quota", Detail: FormatUsage(u), Took: time.Since(start)})
		}
	}
	return nil
}

// checkStep is a named step of a check: it returns a detail to print.
type checkStep struct {
	name string
	fn   func() (string, error)
}

// probe is what the steps of a check put on the relay and expect back,
// under a prefix of their own.
type probe struct {
	ctx        context.Context
	r          relay.Relay
	prefix     string
	small, big []byte
	created    []string // every name the check may create
}

// objects are the objects put, by name.
func (p *probe) objects() map[string][]byte {
	return map[string][]byte{p.prefix + "/small": p.small, p.prefix + "/sub/big": p.big}
}

func (p *probe) put() (string, error) {
	for _, n := range []string{p.prefix + "/small", p.prefix + "/sub/big"} {
		if err := p.r.Put(p.ctx, n, relay.BytesPayload(p.objects()[n])); err != nil {
			return "", err
		}
	}
	return "2 objects, 1 KiB and 1 MiB, under " + p.prefix, nil
}

func (p *probe) list() (string, error) {
	got := map[string]int64{}
	err := p.r.List(p.ctx, p.prefix, func(oi relay.ObjectInfo) error { got[oi.Name] = oi.Size; return nil })
	if err != nil {
		return "", err
	}
	for n, b := range p.objects() {
		size, ok := got[n]
		if !ok {
			return "", fmt.Errorf("%q is missing from the listing (the server lists %d objects there)", n, len(got))
		}
		if size != int64(len(b)) {
			return "", fmt.Errorf("%q is listed with %d bytes, want %d", n, size, len(b))
		}
	}
	return fmt.Sprintf("%d objects", len(got)), nil
}

func (p *probe) get() (string, error) {
	for n, want := range p.objects() {
		got, err := read(p.ctx, p.r, n, 0, -1)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(got, want) {
			return "", fmt.Errorf("%q read back %d bytes that differ from the %d written", n, len(got), len(want))
		}
	}
	return "2 objects read back intact", nil
}

func (p *probe) getRange() (string, error) {
	n := p.prefix + "/sub/big"
	got, err := read(p.ctx, p.r, n, 300_000, 4096)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(got, p.big[300_000:300_000+4096]) {
		return "", fmt.Errorf("bytes 300000-304095 of %q read back wrong (%d bytes): the server ignores ranges or offsets", n, len(got))
	}
	return "4 KiB at offset 300000", nil
}

func (p *probe) rename(rn relay.Renamer) (string, error) {
	if err := rn.Rename(p.ctx, p.prefix+"/small", p.prefix+"/renamed"); err != nil {
		if errors.Is(err, relay.ErrUnsupported) {
			return "not supported by this relay", nil
		}
		return "", err
	}
	got, err := read(p.ctx, p.r, p.prefix+"/renamed", 0, -1)
	if err != nil {
		return "", fmt.Errorf("reading the renamed object: %w", err)
	}
	if !bytes.Equal(got, p.small) {
		return "", errors.New("the renamed object's content differs")
	}
	if _, err := p.r.Stat(p.ctx, p.prefix+"/small"); !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("the old name is still there after the rename (stat: %v)", err)
	}
	return "", nil
}

func (p *probe) delete() (string, error) {
	for _, n := range p.created {
		if err := p.r.Delete(p.ctx, n); err != nil {
			return "", err
		}
	}
	left := 0
	if err := p.r.List(p.ctx, p.prefix, func(relay.ObjectInfo) error { left++; return nil }); err != nil {
		return "", err
	}
	if left > 0 {
		return "", fmt.Errorf("%d objects are still listed after deleting them", left)
	}
	return "test objects removed", nil
}

// FormatUsage renders storage usage for people.
func FormatUsage(u relay.Usage) string {
	switch {
	case u.Used < 0 && u.Total < 0:
		return "not reported"
	case u.Total < 0:
		return units.FormatSize(u.Used) + " used, no limit reported"
	default:
		return fmt.Sprintf("%s used of %s", units.FormatSize(u.Used), units.FormatSize(u.Total))
	}
}

func read(ctx context.Context, r relay.Relay, name string, off, n int64) ([]byte, error) {
	var out []byte
	err := r.Get(ctx, name, off, n, func(rd io.Reader) error {
		var err error
		out, err = io.ReadAll(rd)
		return err
	})
	return out, err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Diagnose returns the likely cause of a relay error and what to do about
// it, or "" when the error says nothing more specific.
func Diagnose(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, relay.ErrAuth):
		return "the login was refused: check the user in the URL and the password (URL, --password-file, $" +
			relay.PasswordEnv + " or ~/.netrc); for sftp, the keys offered (ssh-agent, --ssh-key); for s3, the access key " +
			"(the URL's user, --credentials, $AWS_ACCESS_KEY_ID or ~/.aws/credentials)"
	case errors.Is(err, relay.ErrTLS):
		return "TLS mismatch: the server's certificate is not trusted, does not match the host name, or the server " +
			"does not speak TLS on this port. For a self-signed certificate pin it with --pin-sha256 or trust it with " +
			"--ca-file; --verify-ssl=false turns verification off. Check ftps:// vs ftp:// and https:// vs http://"
	case errors.Is(err, relay.ErrUnreachable):
		return "host unreachable: check the host name and port, that the server is running, and that no firewall " +
			"or proxy blocks the connection"
	case errors.Is(err, relay.ErrQuota):
		return "the relay is full: its storage quota is used up; free space on it or raise the quota"
	case errors.Is(err, fs.ErrPermission):
		return "no permission: the account may not write, read or delete in the relay directory; check its rights on the server"
	case errors.Is(err, fs.ErrNotExist):
		return "not found: the relay directory or an object vanished; check the path in the URL"
	case errors.Is(err, relay.ErrInvalidName):
		return "the relay refused a test object's name"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out: the server is slow or not answering; check the host and port, or raise --timeout"
	}
	return ""
}
