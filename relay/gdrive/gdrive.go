// Package gdrive is the relay backend for a Google Drive folder, through the
// Drive v3 API.
//
// # URL
//
//	gdrive:///escalefs/relay          the folder escalefs/relay under My Drive
//	gdrive://id/<folderID>            the folder with that ID (a shared
//	                                  folder, or a shared drive's ID)
//	gdrive://id/<folderID>/sub/dir    the path sub/dir below that folder
//
// A path names folders by name, starting at My Drive or at the folder ID;
// missing folders are created when the relay is opened. The URL carries no
// credentials: they come from relay.Options.CredentialsFile (see
// LoadCredentials for the accepted formats), else from the file named by
// GOOGLE_APPLICATION_CREDENTIALS.
//
// # Layout
//
// An object name a/b/c is the file "c" in the folder "b" in the folder "a"
// under the relay folder. Drive allows several files, and several folders,
// with one name in one folder (a retried create makes one). The backend
// lives with that instead of assuming it away:
//
//   - reading a name picks the newest of its files (latest modifiedTime,
//     then the lowest ID), so every node picks the same one;
//   - a directory is the union of all same-named folders in its parent
//     (two nodes may create it at once); new files go to the oldest one;
//   - Put uploads the content under a temporary name, renames it to the
//     final name, then deletes the older files of that name. Drive shows a
//     file only once its upload is complete, and a rename makes it the
//     newest, so readers see either the old or the complete new content.
//
// Folder IDs are cached, so a read is one listing of the object's folder
// plus the download, whatever its depth. A lookup that finds nothing
// re-reads cached folders older than a few seconds (another node may have
// made a duplicate, or removed one), and a put whose folder has gone (404)
// looks it up again. File IDs are cached too, but only stand in when a
// listing shows nothing, as Drive's listings may lag behind this node's
// own puts: reads list the folder so that every node picks the same file
// among duplicates. A cached file ID that is gone, renamed, moved or
// trashed is dropped.
//
// Drive's rate-limit answers (403 rateLimitExceeded and
// userRateLimitExceeded, 429) and 5xx answers are retried here with
// exponential backoff; they are Drive-specific, so the generic retry
// wrapper need not know them.
package gdrive

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/drive/v3"
	"google.golang.org/api/option"

	"github.com/escalefs/escalefs/relay"
)

// Backend returns the registry entry for gdrive:// URLs.
func Backend() relay.Backend {
	return relay.Backend{
		Schemes: []string{"gdrive"},
		Usage:   "gdrive:///<folder path under My Drive> or gdrive://id/<folder ID>[/<path>] (Google Drive)",
		Open:    Open,
	}
}

// Config adjusts how the backend reaches Drive. Its zero value reaches
// Google's service; tests point it at a fake (see the drivetest package).
type Config struct {
	// HTTPClient carries every request, token requests included, with the
	// credentials' authorization added on top. Nil: a client built from
	// relay.Options (Timeout, MaxConns, TLS).
	HTTPClient *http.Client
	// Endpoint replaces the API base URL https://www.googleapis.com/drive/v3/.
	// Uploads go to /upload/drive/v3/ on the same host.
	Endpoint string
	// NoAuth sends requests without credentials (for a fake server);
	// CredentialsFile is then ignored.
	NoAuth bool
	// ChunkSize is the size of resumable upload chunks, rounded up to a
	// multiple of 256 KiB (default 8 MiB). A payload smaller than it goes
	// in one multipart request. One chunk per Put in flight is buffered.
	ChunkSize int
	// RetryBase is the first pause before retrying a rate-limited or
	// failed request (default 500ms); it doubles with each retry.
	RetryBase time.Duration
	// MaxAttempts bounds the tries of one request (default 6).
	MaxAttempts int
	// ClientOptions are passed to drive.NewService after the backend's own.
	ClientOptions []option.ClientOption
}

const (
	defaultChunkSize   = 8 << 20
	defaultRetryBase   = 500 * time.Millisecond
	defaultMaxAttempts = 6
	// refreshAfter is how old a cached folder must be before a failed
	// lookup through it re-reads it.
	refreshAfter = 5 * time.Second
	// staleTempAge is the age after which List deletes a temporary file:
	// one lives only between the end of an upload and its rename, so an
	// old one was left by a crash.
	staleTempAge = time.Hour
	// maxCachedFiles bounds the file ID cache; past it the cache starts over.
	maxCachedFiles = 100_000
)

// Relay is a Google Drive folder used as a relay.
type Relay struct {
	svc       *drive.Service
	hc        *http.Client
	log       *slog.Logger
	loc       string
	scheme    string
	baseID    string   // the folder the URL starts from ("root": My Drive)
	basePath  []string // folder names below baseID leading to the relay folder
	driveID   string   // shared drive of the relay folder, "" for My Drive
	chunkSize int
	retryBase time.Duration
	attempts  int
	timeout   time.Duration

	mkdirMu sync.Mutex // serializes folder creation, so that this node makes no duplicates

	mu    sync.Mutex
	dirs  map[string]dirEntry // folder key (see dirKey) → folder IDs
	files map[string]string   // object name → file ID last seen for it
}

var (
	_ relay.Relay   = (*Relay)(nil)
	_ relay.Renamer = (*Relay)(nil)
	_ relay.Quotaer = (*Relay)(nil)
)

// dirEntry is a cached directory: the IDs of its same-named folders,
// canonical (oldest) first, and when they were read.
type dirEntry struct {
	ids     []string
	checked time.Time
}

// Open opens the relay folder that u names, with credentials from
// opts.CredentialsFile.
func Open(ctx context.Context, u *url.URL, opts relay.Options) (relay.Relay, error) {
	return OpenWithConfig(ctx, u, opts, Config{})
}

// ParseURL splits a gdrive URL into the folder it starts from ("root" for
// My Drive, or a folder ID) and the folder names below it. Errors say what
// form was expected.
func ParseURL(u *url.URL) (baseID string, path []string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("relay URL %q: %s; expected gdrive:///<folder path under My Drive> or gdrive://id/<folder ID>[/<path>]",
			u.Redacted(), why)
	}
	if u.Opaque != "" {
		return "", nil, bad("the folder must follow gdrive:// (three slashes for a path under My Drive)")
	}
	if u.User != nil {
		return "", nil, bad("a gdrive URL holds no user or password (credentials come from the credentials file)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", nil, bad("a gdrive URL takes no query or fragment")
	}
	var comps []string
	if p := strings.Trim(u.Path, "/"); p != "" {
		comps = strings.Split(p, "/")
	}
	for _, c := range comps {
		if c == "" || c == "." || c == ".." {
			return "", nil, bad(fmt.Sprintf("bad folder name %q in the path", c))
		}
	}
	switch u.Host {
	case "":
		if len(comps) == 0 {
			return "", nil, bad("no folder: the relay needs a folder of its own, not the whole of My Drive")
		}
		return "root", comps, nil
	case "id":
		if len(comps) == 0 {
			return "", nil, bad("no folder ID after gdrive://id/")
		}
		return comps[0], comps[1:], nil
	}
	return "", nil, bad(fmt.Sprintf("unknown host %q (for a path under My Drive write gdrive:///%s%s)", u.Host, u.Host, u.Path))
}

// OpenWithConfig is Open with settings for reaching Drive (or a fake of it).
func OpenWithConfig(ctx context.Context, u *url.URL, opts relay.Options, cfg Config) (*Relay, error) {
	baseID, basePath, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	loc := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	fail := func(err error) (*Relay, error) { return nil, relay.WrapOp("connect", loc, err) }
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	log := opts.Log()

	base := cfg.HTTPClient
	if base == nil {
		base, err = newHTTPClient(opts)
		if err != nil {
			return fail(err)
		}
	}
	hc := base
	if !cfg.NoAuth {
		file := opts.CredentialsFile
		if file == "" {
			getenv := opts.Getenv
			if getenv == nil {
				getenv = osGetenv
			}
			file = getenv("GOOGLE_APPLICATION_CREDENTIALS")
		}
		if file == "" {
			return fail(relay.Permanent(fmt.Errorf("%w: Google Drive needs a credentials file (a service-account key or an OAuth token file; see the gdrive backend's documentation)", relay.ErrAuth)))
		}
		// Token refreshes outlive Open's ctx, so they get their own,
		// carrying the base client.
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
		ts, err := LoadCredentials(tctx, file)
		if err != nil {
			return fail(relay.Permanent(err))
		}
		baseTransport := base.Transport
		if baseTransport == nil {
			baseTransport = http.DefaultTransport
		}
		hc = &http.Client{
			Transport: &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, namedSource{file, ts}), Base: baseTransport},
			Timeout:   base.Timeout,
		}
	}

	copts := []option.ClientOption{option.WithHTTPClient(hc), option.WithUserAgent("escalefs")}
	if cfg.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(cfg.Endpoint))
	}
	copts = append(copts, cfg.ClientOptions...)
	svc, err := drive.NewService(ctx, copts...)
	if err != nil {
		return fail(fmt.Errorf("creating the Drive client: %w", err))
	}

	r := &Relay{
		svc: svc, hc: hc, log: log, loc: loc, scheme: u.Scheme,
		baseID: baseID, basePath: basePath,
		chunkSize: cfg.ChunkSize, retryBase: cfg.RetryBase, attempts: cfg.MaxAttempts,
		timeout: opts.ConnTimeout(),
		dirs:    map[string]dirEntry{}, files: map[string]string{},
	}
	if r.chunkSize <= 0 {
		r.chunkSize = defaultChunkSize
	}
	if r.retryBase <= 0 {
		r.retryBase = defaultRetryBase
	}
	if r.attempts <= 0 {
		r.attempts = defaultMaxAttempts
	}
	if err := r.openRoot(ctx); err != nil {
		r.Close()
		return fail(err)
	}
	log.Debug("gdrive relay opened", "location", loc, "folder", r.rootIDs()[0], "sharedDrive", r.driveID)
	return r, nil
}

// openRoot checks the folder the URL starts from and creates the path
// below it.
func (r *Relay) openRoot(ctx context.Context) error {
	var f *drive.File
	err := r.retry(ctx, func() error {
		var err error
		f, err = r.svc.Files.Get(r.baseID).SupportsAllDrives(true).
			Fields("id,name,mimeType,driveId,trashed").Context(ctx).Do()
		return err
	})
	if err != nil {
		err = classify(err)
		if r.baseID != "root" && isNotExist(err) {
			return fmt.Errorf("folder ID %q not found, or not shared with this account: %w", r.baseID, err)
		}
		return err
	}
	if f.MimeType != folderMime {
		return relay.Permanent(fmt.Errorf("%q (ID %s) is a file of type %s, not a folder", f.Name, f.Id, f.MimeType))
	}
	if f.Trashed {
		return relay.Permanent(fmt.Errorf("folder %q (ID %s) is in the trash", f.Name, f.Id))
	}
	r.baseID = f.Id // "root" becomes My Drive's real ID, as parents name it
	r.driveID = f.DriveId
	r.mu.Lock()
	r.dirs[r.baseID] = dirEntry{ids: []string{f.Id}, checked: time.Now()}
	r.mu.Unlock()
	_, _, err = r.folders(ctx, "", true, false)
	return err
}

// rootIDs returns the cached IDs of the relay folder.
func (r *Relay) rootIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dirs[r.dirKey("")].ids
}

// FolderID is the Drive ID of the relay folder (of the oldest one, should
// there be several of its name), for diagnostics and tests.
func (r *Relay) FolderID() string { return r.rootIDs()[0] }

// newHTTPClient builds the client for Google's service from the options.
func newHTTPClient(opts relay.Options) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	timeout := opts.ConnTimeout()
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	if opts.MaxConns > 0 {
		t.MaxConnsPerHost = opts.MaxConns
		t.MaxIdleConnsPerHost = opts.MaxConns
	}
	if opts.TLS != (relay.TLSOptions{}) {
		tc, err := opts.TLS.Config("")
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = tc
	}
	return &http.Client{Transport: t}, nil
}

// Properties describes the backend. Puts are atomic: see the package doc.
func (r *Relay) Properties() relay.Properties {
	return relay.Properties{Scheme: r.scheme, Location: r.loc, AtomicPut: true}
}

// Close releases idle connections.
func (r *Relay) Close() error {
	r.hc.CloseIdleConnections()
	return nil
}
