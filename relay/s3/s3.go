// Package s3 is the relay backend for Amazon S3 and S3-compatible object
// stores (MinIO, SeaweedFS, Ceph RGW, Backblaze B2, Wasabi, …):
// s3://bucket/prefix.
//
// The bucket must exist; the prefix (the URL path, possibly empty) is the
// relay's root and needs no creating, since S3 has no directories. Object
// names map to keys "prefix/name", so List of a directory d lists the keys
// under "prefix/d/" and a key such as "prefix/ab" is never part of
// directory "a". Keys that are not valid relay names (a trailing slash,
// "a//b", as consoles and other tools create) are not listed.
//
// The endpoint is Amazon's unless Options.S3Endpoint names another store;
// the region comes from Options.S3Region or $AWS_REGION, and otherwise is
// looked up (Amazon) or "us-east-1" (other stores, which mostly ignore it).
// Credentials come from the first of (see credentials.go): a user name in
// the URL, taken as the access key ID, with the password found as for the
// other backends (Options.Password, the password file, $ESCALEFS_PASSWORD,
// netrc); the AWS credentials file Options.CredentialsFile; the
// environment variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; the shared AWS files (~/.aws/credentials and
// ~/.aws/config, profile $AWS_PROFILE).
//
// A Put of up to PartSize bytes is one PUT request; a larger one is a
// multipart upload of PartSize parts. Both are atomic for readers, as S3
// publishes an object only when it is complete. A multipart upload that
// fails or is cancelled is aborted, with a context of its own so that the
// cancellation cannot prevent the abort. One interrupted harder (the
// process killed) stays on the store as an incomplete upload, invisible to
// readers but billed; Open aborts those under the prefix that are older
// than StaleUploadAge, and RemoveTemp those older than a given time (they
// are the backend's temporary objects, docs/format.md §2). Younger ones may
// belong to another node's upload in progress and are left alone.
//
// Errors: a missing bucket, rejected credentials (InvalidAccessKeyId,
// SignatureDoesNotMatch, AccessDenied, expired tokens: relay.ErrAuth) and
// an unreachable endpoint (relay.ErrUnreachable, transient) are detected
// at Open and named in the message with the endpoint; a full store
// (QuotaExceeded, EntityTooLarge, HTTP 507) is relay.ErrQuota; throttling
// and 5xx answers are transient. minio-go's own retries are turned off:
// the retry wrapper (relay/retry) retries instead, with a rewound payload.
package s3

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/relay"
)

// Backend returns the registry entry for s3:// URLs.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"s3"},
		Usage:   "s3://bucket/prefix (--s3-endpoint URL for stores other than Amazon's)",
		Open:    Open,
	}
}

// DefaultEndpoint is Amazon's S3 endpoint, used when Options.S3Endpoint is
// empty.
const DefaultEndpoint = "s3.amazonaws.com"

// PartSize is the size of the parts of a multipart upload, and the largest
// object stored with a single PUT. S3 allows parts of 5 MiB to 5 GiB and at
// most 10,000 parts, so objects of up to 160 GiB can be stored.
const PartSize = 16 << 20

// StaleUploadAge is how old an incomplete multipart upload must be for
// Open to abort it: older than any upload in progress can be.
const StaleUploadAge = 24 * time.Hour

// Relay is a bucket prefix on an S3 store used as a relay.
type Relay struct {
	client   *minio.Client
	tr       *http.Transport
	core     minio.Core
	bucket   string
	prefix   string // "" or ending with "/"
	endpoint string // for messages, e.g. "https://s3.amazonaws.com"
	loc      string
	credFrom string // where the credentials came from, for messages
	partSize int64
	listPage int // keys per listing request; 0: the store's maximum (1000)
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
}

var (
	_ relay.Relay       = (*Relay)(nil)
	_ relay.Renamer     = (*Relay)(nil)
	_ relay.Creator     = (*Relay)(nil)
	_ relay.TempRemover = (*Relay)(nil)
)

// config holds what tests may change beyond relay.Options.
type config struct {
	partSize int64
	listPage int
	now      func() time.Time
	staleAge time.Duration
}

// Open connects to the S3 store, checks that the bucket exists and that the
// credentials are accepted, and aborts stale incomplete uploads under the
// prefix. A missing bucket is a permanent error that names the bucket and
// the endpoint; rejected credentials wrap relay.ErrAuth, and an endpoint
// that cannot be reached relay.ErrUnreachable.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	return open(ctx, u, opts, config{})
}

func open(ctx context.Context, u *url.URL, opts relay.Options, cfg config) (*Relay, error) {
	r, err := newRelay(u, opts, cfg)
	if err != nil {
		return nil, err
	}
	if err := r.check(ctx); err != nil {
		return nil, relay.WrapOp("connect", r.loc, err)
	}
	staleAge := cfg.staleAge
	if staleAge == 0 {
		staleAge = StaleUploadAge
	}
	n, err := r.RemoveTemp(ctx, "", r.now().Add(-staleAge))
	switch {
	case err != nil:
		// Some policies allow objects but not the listing of uploads;
		// the relay works without this cleanup.
		r.log.Warn("s3: could not clean up incomplete uploads", "relay", r.loc, "err", err)
	case n > 0:
		r.log.Info("s3: aborted stale incomplete uploads", "relay", r.loc, "count", n)
	}
	return r, nil
}

func newRelay(u *url.URL, opts relay.Options, cfg config) (*Relay, error) {
	safe := *u
	if u.User != nil {
		safe.User = url.User(u.User.Username())
	}
	loc := safe.String()
	bad := func(format string, args ...any) error {
		return relay.Permanent(fmt.Errorf("relay URL %q: %s; expected %s", loc, fmt.Sprintf(format, args...), Backend().Usage))
	}
	bucket := u.Host
	if bucket == "" {
		return nil, bad("no bucket")
	}
	if u.Port() != "" {
		return nil, bad("the host part is the bucket name, not a server: give the server with --s3-endpoint")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("unexpected query or fragment")
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := relay.ValidName(prefix); err != nil {
			return nil, bad("prefix: %v", err)
		}
		prefix += "/"
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = lookupEnv
	}
	endpoint := opts.S3Endpoint
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL")
	}
	host, secure, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, relay.Permanent(err)
	}
	region := opts.S3Region
	if region == "" {
		region = getenv("AWS_REGION")
	}
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" && host != DefaultEndpoint {
		// Other stores mostly ignore the region, but looking it up
		// costs a request and some do not answer it.
		region = "us-east-1"
	}
	creds, credFrom, err := credentialsFor(u, opts, getenv)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := opts.TLS.Config(strings.Split(host, ":")[0])
	if err != nil {
		return nil, relay.Permanent(err)
	}
	timeout := opts.ConnTimeout()
	tr := transport(tlsCfg, timeout)
	client, err := minio.New(host, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Region:     region,
		Transport:  tr,
		MaxRetries: 1, // relay/retry retries, with a rewound payload
	})
	if err != nil {
		return nil, relay.Permanent(fmt.Errorf("S3 endpoint %q: %w", endpoint, err))
	}
	scheme := "https://"
	if !secure {
		scheme = "http://"
	}
	r := &Relay{
		client:   client,
		tr:       tr,
		core:     minio.Core{Client: client},
		bucket:   bucket,
		prefix:   prefix,
		endpoint: scheme + host,
		loc:      loc,
		credFrom: credFrom,
		partSize: cfg.partSize,
		listPage: cfg.listPage,
		timeout:  timeout,
		now:      cfg.now,
		log:      opts.Log(),
	}
	if r.partSize == 0 {
		r.partSize = PartSize
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// parseEndpoint turns an endpoint option into minio-go's host[:port] and
// whether to use HTTPS.
func parseEndpoint(s string) (host string, secure bool, err error) {
	if s == "" {
		return DefaultEndpoint, true, nil
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("S3 endpoint %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("S3 endpoint %q: the scheme must be http or https", s)
	}
	if u.Host == "" || strings.Trim(u.Path, "/") != "" || u.User != nil || u.RawQuery != "" {
		return "", false, fmt.Errorf("S3 endpoint %q: expected http(s)://host[:port], without a path", s)
	}
	return u.Host, u.Scheme == "https", nil
}

// transport is minio-go's HTTP transport with our TLS settings and
// timeouts: connecting and waiting for an answer's headers are bounded,
// a transfer itself is not (it is bounded by the caller's context).
func transport(tlsCfg *tls.Config, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsCfg,
		// Compressed answers would make minio-go see wrong lengths.
		DisableCompression: true,
	}
}

// check makes sure the bucket exists and the credentials are accepted,
// with a listing of one key: unlike a HEAD request, whose error answers
// have no body, it says why it was refused (SignatureDoesNotMatch,
// InvalidAccessKeyId, NoSuchBucket…).
func (r *Relay) check(ctx context.Context) error {
	lctx, cancel := context.WithCancel(ctx)
	ch := r.client.ListObjects(lctx, r.bucket, minio.ListObjectsOptions{Prefix: r.prefix, MaxKeys: 1})
	oi := <-ch
	cancel()
	for range ch {
	}
	return r.translate(oi.Err)
}

// Properties implements relay.Relay.
func (r *Relay) Properties() relay.Properties {
	return relay.Properties{Scheme: "s3", Location: r.loc, AtomicPut: true}
}

// Close implements relay.Relay: it closes the idle connections.
func (r *Relay) Close() error {
	r.tr.CloseIdleConnections()
	return nil
}

// key returns the S3 key of an object name.
func (r *Relay) key(name string) string { return r.prefix + name }
