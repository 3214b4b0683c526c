package sync

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/chunks"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/sync/transfer"
	"github.com/escalefs/escalefs/versions"
)

// Defaults of Config.
const (
	DefaultRefresh      = 10 * time.Second
	DefaultLockTimeout  = 72 * time.Hour
	DefaultPackLimit    = 1 << 20
	DefaultMaxPackBytes = 64 << 20
	DefaultMaxPackFiles = 10000
	DefaultBatch        = 20000
	DefaultCompactAfter = 64
	DefaultCompactEvery = 10 * time.Minute
	DefaultStopGrace    = 5 * time.Second
	// MinPoll is the polling interval right after activity; it doubles
	// with every empty poll up to Config.Refresh.
	MinPoll = 250 * time.Millisecond
)

// Relay is the part of relay.Relay the engine uses.
type Relay interface {
	Stat(ctx context.Context, name string) (relay.ObjectInfo, error)
	List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error
	Put(ctx context.Context, name string, p relay.Payload) error
	Delete(ctx context.Context, name string) error
}

// Local is the folder the engine keeps in step: a plain directory
// (*localdir.Dir) for `escalefs sync`, the mount's backing store later.
// Every method is localdir.Dir's, with its guards: a path that changed since
// the engine last looked (expect) is left alone with an error wrapping
// localdir.ErrLocalChanged.
type Local interface {
	Scan(ctx context.Context, src localdir.Source, opts localdir.ScanOptions) (localdir.ScanResult, error)
	Open(ctx context.Context, rel string, expect cache.LocalStat) (*os.File, error)
	Install(ctx context.Context, rel string, src io.Reader, meta localdir.Meta, expect *cache.LocalStat) (cache.LocalStat, error)
	Mkdir(ctx context.Context, rel string, mode fs.FileMode) (cache.LocalStat, error)
	SetMeta(ctx context.Context, rel string, meta localdir.Meta, expect cache.LocalStat) (cache.LocalStat, error)
	Remove(ctx context.Context, rel string, expect cache.LocalStat) error
	Rename(ctx context.Context, from, to string, expect cache.LocalStat) (cache.LocalStat, error)
}

// Watchable is a Local that reports its changes (localdir.Dir does).
type Watchable interface {
	Watch(ctx context.Context, opts localdir.WatchOptions) (*localdir.Watcher, error)
}

// Clock is the engine's time source; localdir.Clock satisfies it, and tests
// inject localdirtest.Clock.
type Clock = localdir.Clock

// Config configures an Engine.
type Config struct {
	Relay Relay
	// Repo is the repository, from OpenRepository.
	Repo *Repository
	// Cache is the node's cache. The engine takes its node ID from it
	// (creating one on first use).
	Cache *cache.Store
	Local Local
	// Mode is the node's synchronization mode; empty means shared.
	Mode proto.Mode
	// Name is the node's human-readable name, sealed in its records.
	Name string
	// Scratch is a local directory for temporary files (uploads in
	// progress, downloaded packs); it is emptied at start.
	Scratch string
	// Control is the node's control directory (see AccessRequest); empty
	// means none.
	Control string
	// Skip, if set, excludes paths from synchronization (sync/filter):
	// pulled changes of skipped paths are not applied. The caller passes
	// the same function to the Local's scanner.
	Skip func(rel string, isDir bool) bool
	// Partial is a local directory for downloads of large files in
	// progress, kept across restarts; empty means "partial" beside
	// Scratch.
	Partial string
	// Refresh is the slowest polling interval, used when idle; zero means
	// DefaultRefresh.
	Refresh time.Duration
	// DiskQuota caps what the repository may hold on the relay, in bytes;
	// 0 means no cap. Pushes wait for pullers when it is reached.
	DiskQuota int64
	// Pullers is Escale's puller count: how many pullers must have a blob
	// before it is deleted. 0 means every registered puller.
	Pullers int
	// LockTimeout is how long a silent puller holds collection back; zero
	// means DefaultLockTimeout, negative never times out.
	LockTimeout time.Duration
	// PackLimit: files smaller than this go into packs. PartSize: the part
	// size of larger ones. MaxPackBytes, MaxPackFiles bound one pack.
	// Batch bounds the changes of one record. Zero means the defaults.
	PackLimit int64
	PartSize  int64
	// Chunks pushes files of PackLimit and more as content-defined chunks
	// (format version 2, docs/format.md §8.2) instead of parts, and
	// rebuilds pulled chunked files from the chunks held here.
	Chunks       bool
	MaxPackBytes int64
	MaxPackFiles int
	Batch        int
	// CompactAfter and CompactEvery: collected records are compacted into a
	// snapshot once this many are waiting or this long after the last
	// compaction. Zero means the defaults.
	CompactAfter int
	CompactEvery time.Duration
	// AllowEmpty lets a scan that finds every synchronized file gone
	// propagate their deletion; by default such a scan fails with
	// ErrFolderEmptied.
	AllowEmpty bool
	// StopGrace is how long Run, when its context ends, keeps pushing what
	// the queue holds; zero means DefaultStopGrace, negative none. What
	// is not pushed then stays queued on disk for the next start.
	StopGrace time.Duration
	// OnChange, if set, is called with each path the engine changed in the
	// folder (installed, removed, moved, or its metadata set), after the
	// change: the mount invalidates the kernel's caches of it.
	OnChange func(path string)
	// Reported says that every change made to the folder by others than
	// the engine is reported through Notify (the folder is the mount's):
	// Run then does not watch the folder. Reports lost to an overflow
	// make it scan the whole folder.
	Reported bool
	// InUse, if set, reports whether the file at path is open for writing
	// (through the mount). Such a file is pushed once closed, not while
	// written. A pulled version never replaces it under its writer: it is
	// kept beside it as a conflict copy, and a pulled delete is not
	// applied; the local file is pushed again over the peer's version, so
	// that every node ends alike.
	InUse func(path string) bool
	// OnStatus, if set, is called when Status may have changed: after each
	// round (or push between rounds) and when Run returns. It is called
	// from Run's goroutine and must not block; it may call Status from
	// another goroutine.
	OnStatus func()
	// MinFree is the room a download must leave on the local disk; a
	// file that does not fit waits, and smaller ones go on (space.go).
	// The zero value is the smaller of 1 GiB and 5 % of the disk.
	MinFree units.MinFree
	// Watch configures the folder's watcher in Run.
	Watch localdir.WatchOptions
	// Versions, if set, keeps the content that pulls replace or delete
	// (once the files the pulls let go are released, held.go), and
	// VersionPolicy prunes it at most hourly. Nil keeps none.
	Versions      *versions.Store
	VersionPolicy versions.Policy
	// Clock is the time source; nil means the system clock.
	Clock  Clock
	Logger *slog.Logger
}

// Engine keeps one folder in step through a relay. Its methods must not be
// called concurrently; Run calls them from one goroutine.
type Engine struct {
	cfg     Config
	r       Relay
	store   *cache.Store
	local   Local
	log     *slog.Logger
	clock   Clock
	self    crypto.NodeID
	selfID  string
	partial string
	sealer  *crypto.RecordSealer
	up      *transfer.Uploader
	down    *transfer.Downloader
	// chunker cuts content into chunks (Config.Chunks, and reading
	// chunked files).
	chunker *chunks.Chunker

	// usage is the repository's size on the relay at the last listing, -1
	// before the first.
	usage atomic.Int64
	// full is set while pushes wait for room on the relay (Status reads
	// it from any goroutine); failing while rounds fail (the relay is
	// down). Each is logged when it starts and when it ends.
	full    atomic.Bool
	failing bool
	// ownTempCleared is set once this node's temporary objects left on
	// the relay by a killed run were removed.
	ownTempCleared bool
	// wanting is set when this node may have outstanding requests.
	wanting atomic.Bool
	// usageKnown is set once a listing measured the relay's usage.
	usageKnown bool
	// postRequests is set while a record being written is to carry this
	// node's outstanding requests.
	postRequests bool
	// cleared are the silent peers whose stale objects were cleared.
	cleared map[crypto.NodeID]bool
	// unreadable are the node IDs whose first record did not open,
	// reported once.
	unreadable map[crypto.NodeID]bool
	// lastPrune is when the version store was last pruned (held.go).
	lastPrune time.Time
	// mass counts what the pull under way does to local files (mass.go);
	// massChange is the last mass change seen, under mu.
	mass       massCounts
	massChange *MassChange
	// configSeen is escale.json as the last listing showed it.
	configSeen *relay.ObjectInfo
	// accessWritten is set once access.json was written.
	accessWritten bool
	// tooLarge are the files larger than the disk quota, by path, with
	// their size: reported once, and listed by Status. Guarded by mu.
	tooLarge map[string]int64
	// transfers are the uploads and downloads under way, for Status.
	transfers transfers
	// forgets are the forget records of the last listing, by name;
	// forgotten, the peers they make forgotten, with their up_to.
	forgets   map[string]forgetSeen
	forgotten map[crypto.NodeID]uint64

	// notify carries the paths that Notify reported to Run.
	notify chan []string
	// lostReports is set when Notify dropped paths (notify was full): Run
	// then scans the whole folder.
	lostReports atomic.Bool
	// scanMu serializes Scan: Run's scans and those of Known, called
	// from the mount's goroutines.
	scanMu gosync.Mutex

	mu    gosync.Mutex
	stats Stats
	round roundStatus
	// names are the nodes' names by ID, read from the cache at first
	// use and kept up to date by learnName; labels are what nodeLabel
	// makes of them, nil until needed (names.go).
	names, labels map[string]string
}

// Stats count what the engine did since it started.
type Stats struct {
	Records     int   // records published (log and snapshot)
	FilesPushed int   // files whose content was uploaded
	BytesPushed int64 // plaintext bytes uploaded
	Blobs       int   // blobs uploaded
	FilesPulled int   // files installed from peers
	BytesPulled int64 // plaintext bytes downloaded (chunks held here are not)
	// BytesHashed counts the bytes of file content hashed: by scans, by
	// uploads and downloads that check what they send or write. A new
	// file pushed as chunks is hashed once on each side.
	BytesHashed  int64
	Conflicts    int // conflict copies made
	BlobsDeleted int // own blobs collected
	RecsDeleted  int // own records compacted away
}

// New returns an engine for cfg. It reads or creates the node's ID in the
// cache, checks that the cache belongs to cfg.Repo and clears temporary
// files a crash left in Scratch.
func New(cfg Config) (*Engine, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if err := cfg.makeDirs(); err != nil {
		return nil, err
	}
	self, err := nodeID(cfg.Cache, cfg.Repo)
	if err == nil {
		err = storeName(cfg.Cache, cfg.Name)
	}
	if err != nil {
		return nil, err
	}
	chunker, err := chunks.New(cfg.Repo.Keys)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:        cfg,
		r:          cfg.Relay,
		store:      cfg.Cache,
		local:      cfg.Local,
		log:        cfg.Logger,
		clock:      cfg.Clock,
		self:       self,
		selfID:     self.String(),
		partial:    cfg.Partial,
		tooLarge:   make(map[string]int64),
		unreadable: make(map[crypto.NodeID]bool),
		notify:     make(chan []string, 1024),
		cleared:    make(map[crypto.NodeID]bool),
		sealer:     crypto.NewRecordSealer(cfg.Repo.Keys, cfg.Repo.ID, rand.Reader),
		chunker:    chunker,
		up:         transfer.NewUploader(cfg.Relay, cfg.Repo.Keys, self, cfg.Scratch, cfg.Logger),
		down:       transfer.NewDownloader(cfg.Relay, cfg.Repo.Keys, cfg.Logger),
	}
	e.usage.Store(-1) // unknown until the first listing
	e.transfers.changed = e.statusChanged
	e.cleanScratch()
	e.cleanPartial()
	if err := e.requeueDirty(); err != nil {
		return nil, err
	}
	if err := e.store.View(func(tx *cache.Tx) error {
		w, err := loadWanted(tx)
		e.wanting.Store(len(w) > 0)
		return err
	}); err != nil {
		return nil, err
	}
	return e, nil
}

// normalize checks cfg and fills in the defaults of what it leaves zero.
func (cfg *Config) normalize() error {
	if cfg.Relay == nil || cfg.Repo == nil || cfg.Cache == nil || cfg.Local == nil {
		return errors.New("sync: Config needs Relay, Repo, Cache and Local")
	}
	if cfg.Scratch == "" {
		return errors.New("sync: Config needs a Scratch directory")
	}
	if _, err := proto.EncodeLog(proto.Log{Version: proto.FormatVersion, NodeName: cfg.Name}); err != nil {
		return fmt.Errorf("sync: node name %q: %w", cfg.Name, err)
	}
	mode, err := proto.ParseMode(string(cfg.Mode))
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	cfg.Mode = mode
	if cfg.DiskQuota < 0 {
		return fmt.Errorf("sync: disk quota %d: expected 0 (none) or more", cfg.DiskQuota)
	}
	if cfg.Pullers < 0 {
		return fmt.Errorf("sync: pullers %d: expected 0 (all) or more", cfg.Pullers)
	}
	orDefault(&cfg.Refresh, DefaultRefresh)
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	orDefault(&cfg.PackLimit, DefaultPackLimit)
	orDefault(&cfg.PartSize, transfer.DefaultPartSize)
	orDefault(&cfg.MaxPackBytes, DefaultMaxPackBytes)
	orDefault(&cfg.MaxPackFiles, DefaultMaxPackFiles)
	orDefault(&cfg.Batch, DefaultBatch)
	orDefault(&cfg.CompactAfter, DefaultCompactAfter)
	orDefault(&cfg.CompactEvery, DefaultCompactEvery)
	if cfg.StopGrace == 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.Clock == nil {
		cfg.Clock = localdir.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// makeDirs makes the scratch and partial directories (Partial defaults to
// "partial" beside Scratch) and makes both absolute.
func (cfg *Config) makeDirs() error {
	if err := os.MkdirAll(cfg.Scratch, 0o700); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	if cfg.Partial == "" {
		cfg.Partial = filepath.Join(filepath.Dir(filepath.Clean(cfg.Scratch)), "partial")
	}
	for _, d := range []*string{&cfg.Scratch, &cfg.Partial} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return err
		}
		*d = abs
	}
	if err := os.MkdirAll(cfg.Partial, 0o700); err != nil {
		return fmt.Errorf("partial downloads directory: %w", err)
	}
	return nil
}

// nodeID returns the node's ID from the cache, making one on first use, and
// binds the cache to the repository: a cache made for another repository
// (or for an escale.json that was replaced) is refused.
func nodeID(store *cache.Store, repo *Repository) (crypto.NodeID, error) {
	var id crypto.NodeID
	err := store.Update(func(tx *cache.Tx) error {
		b, ok, err := tx.Meta(cache.MetaConfigHash)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			if err := tx.SetMeta(cache.MetaConfigHash, repo.Hash[:]); err != nil {
				return err
			}
		case string(b) != string(repo.Hash[:]):
			return fmt.Errorf("the cache %s belongs to another repository, or the relay's %s was replaced since this node joined: %w",
				store.Path(), crypto.ConfigName, ErrRepoChanged)
		}
		if err := keepConfig(tx, repo); err != nil {
			return err
		}
		b, ok, err = tx.Meta(cache.MetaNodeID)
		if err != nil {
			return err
		}
		if ok {
			id, err = crypto.ParseNodeID(string(b))
			if err != nil {
				return fmt.Errorf("cache node ID: %w: %w", err, cache.ErrCorrupt)
			}
			return nil
		}
		id = crypto.NewNodeID()
		return tx.SetMeta(cache.MetaNodeID, []byte(id.String()))
	})
	return id, err
}

// StoredName returns the name the node of store last ran under (see
// Config.Name), or "" if it never ran.
func StoredName(store *cache.Store) (string, error) {
	var name string
	err := store.View(func(tx *cache.Tx) error {
		b, _, err := tx.Meta(cache.MetaNodeName)
		name = string(b)
		return err
	})
	return name, err
}

// storeName keeps name as the one the node runs under, for StoredName.
func storeName(store *cache.Store, name string) error {
	if old, err := StoredName(store); err != nil || old == name || name == "" {
		return err
	}
	return store.Update(func(tx *cache.Tx) error { return tx.SetMeta(cache.MetaNodeName, []byte(name)) })
}

// ErrRepoChanged means the cache was made for another repository.
var ErrRepoChanged = errors.New("repository changed")

// Node returns the node's ID.
func (e *Engine) Node() crypto.NodeID { return e.self }

// Stats returns what the engine did so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Engine) count(f func(s *Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// Notify tells a running engine that paths changed in the folder (a file
// written and closed in the mount), so that it scans and pushes them without
// waiting for the watcher. It never blocks; when too many reports wait, the
// periodic rescan still finds the change.
func (e *Engine) Notify(paths ...string) {
	if len(paths) == 0 {
		return
	}
	select {
	case e.notify <- paths:
	default:
		e.lostReports.Store(true)
		e.log.Debug("change reports overflow; the next scan of the whole folder finds them", "paths", len(paths))
	}
}

// scanAndPush scans paths (nil: the whole folder) between rounds and pushes
// what the scan recorded; pushed reports that it recorded something. A
// failure that retrying can fix is reported and dropped (the changes stay
// queued); the others are returned, and end Run.
func (e *Engine) scanAndPush(ctx context.Context, paths []string) (pushed bool, err error) {
	n, err := e.Scan(ctx, paths)
	if err == nil && n > 0 {
		_, err = e.Push(ctx)
	}
	if fatal(err) {
		return false, err
	}
	if err != nil || n > 0 {
		// A scan that found nothing did not try the relay.
		e.reportRound(err)
	}
	return n > 0, nil
}

// Reports from the mount are scanned once they pause for reportQuiet, or
// reportMaxDelay after the first of them when they never pause: a close
// reaches the relay well within a second, and a burst of them (tar x,
// cp -r) becomes one scan, one pack and one record instead of hundreds.
const (
	reportQuiet    = 100 * time.Millisecond
	reportMaxDelay = time.Second
)

// reportBatch gathers the paths Notify reported until they are due.
type reportBatch struct {
	paths []string
	first time.Time      // when the first of paths was reported
	timer localdir.Timer // nil while nothing is gathered
}

func (b *reportBatch) add(c localdir.Clock, paths []string) {
	now := c.Now()
	if b.timer == nil {
		b.first = now
	} else {
		b.timer.Stop()
	}
	b.paths = append(b.paths, paths...)
	wait := min(reportQuiet, max(b.first.Add(reportMaxDelay).Sub(now), 0))
	b.timer = c.NewTimer(wait)
}

// due delivers when the gathered paths are to be scanned; nil (never)
// while nothing is gathered.
func (b *reportBatch) due() <-chan time.Time {
	if b.timer == nil {
		return nil
	}
	return b.timer.C()
}

// take returns the gathered paths and starts afresh.
func (b *reportBatch) take() []string {
	b.stop()
	p := b.paths
	b.paths = nil
	return p
}

func (b *reportBatch) stop() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
}

// reportedPaths returns what to scan for the paths Notify reported: paths
// and whatever else is waiting, or nil (the whole folder) when reports
// were lost.
func (e *Engine) reportedPaths(paths []string) []string {
	for more := true; more; {
		select {
		case p := <-e.notify:
			paths = append(paths, p...)
		default:
			more = false
		}
	}
	if e.lostReports.Swap(false) {
		return nil
	}
	return paths
}

// changed reports a change the engine made in the folder to OnChange.
func (e *Engine) changed(paths ...string) {
	if e.cfg.OnChange == nil {
		return
	}
	for _, p := range paths {
		e.cfg.OnChange(p)
	}
}

// cleanScratch removes what a crashed run left in the scratch directory.
func (e *Engine) cleanScratch() {
	ents, err := os.ReadDir(e.cfg.Scratch)
	if err != nil {
		return
	}
	for _, d := range ents {
		_ = os.RemoveAll(e.cfg.Scratch + string(os.PathSeparator) + d.Name())
	}
}

// cleanPartial removes partial downloads that no progress record names.
func (e *Engine) cleanPartial() {
	var keep map[string]downloadProgress
	if e.store.View(func(tx *cache.Tx) error {
		var err error
		keep, err = loadMap[downloadProgress](tx, metaDownloads)
		return err
	}) != nil {
		return
	}
	ents, err := os.ReadDir(e.partial)
	if err != nil {
		return
	}
	for _, d := range ents {
		if _, ok := keep[d.Name()]; !ok {
			_ = os.RemoveAll(filepath.Join(e.partial, d.Name()))
		}
	}
}

// RoundResult tells what a round did.
type RoundResult struct {
	Scanned int // local changes recorded
	Pushed  int // changes published
	Pulled  int // peer records applied
	Applied int // peer changes that changed something here
}

// Active reports whether the round moved anything.
func (r RoundResult) Active() bool {
	return r.Scanned > 0 || r.Pushed > 0 || r.Pulled > 0 || r.Applied > 0
}

// Round scans the whole folder, pushes, pulls and collects once.
func (e *Engine) Round(ctx context.Context) (RoundResult, error) {
	var res RoundResult
	if err := e.controlRequests(ctx); err != nil {
		return res, err
	}
	n, err := e.Scan(ctx, nil)
	res.Scanned = n
	if err != nil {
		return res, err
	}
	return e.exchange(ctx, res)
}

// exchange pushes, pulls, pushes what pulling produced (conflict copies,
// acknowledgements) and collects.
func (e *Engine) exchange(ctx context.Context, res RoundResult) (RoundResult, error) {
	var errs []error
	if err := e.checkHeld(ctx); err != nil {
		e.log.Warn("looking at the files a pull replaced", "err", err)
	}
	pushed, err := e.Push(ctx)
	res.Pushed += pushed
	errs = append(errs, err)
	pr, err := e.Pull(ctx)
	res.Pulled += pr.Records
	res.Applied += pr.Applied
	errs = append(errs, err)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	pushed, err = e.Push(ctx)
	res.Pushed += pushed
	errs = append(errs, err)
	errs = append(errs, e.Collect(ctx))
	err = errors.Join(errs...)
	e.noteRound(err, true)
	return res, err
}

// Run keeps the folder in step until ctx is cancelled: it cleans up after a
// crash, starts watching the folder (if Local is Watchable), scans it, and
// then pushes what the watcher reports and pulls on a timer that is fast
// after activity and slows down to Refresh when idle. Errors of one round
// (the relay is down, a file cannot be read) are logged and retried; Run
// returns only when ctx ends, or on an error that retrying cannot fix.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer func() { e.noteStopped(err) }()
	e.cleanLocalTemp(ctx)
	r := &runLoop{e: e, poll: MinPoll}
	if w, ok := e.local.(Watchable); ok && !e.cfg.Reported {
		watcher, err := w.Watch(ctx, e.cfg.Watch)
		if err != nil {
			return err
		}
		defer watcher.Close()
		r.batches = watcher.Batches()
	}
	defer r.rb.stop()
	res, err := e.Round(ctx)
	if fatal(err) {
		return err
	}
	e.roundDone(res, err, &r.poll)
	r.t = e.clock.NewTimer(r.poll)
	defer func() { r.t.Stop() }()
	for {
		done, err := r.next(ctx)
		if done || err != nil {
			return err
		}
	}
}

// cleanLocalTemp removes the temporary files a killed run left in the
// folder, where the folder can tell them.
func (e *Engine) cleanLocalTemp(ctx context.Context) {
	c, ok := e.local.(interface {
		CleanTemp(context.Context) (int, error)
	})
	if !ok {
		return
	}
	if n, err := c.CleanTemp(ctx); err != nil {
		e.log.Warn("removing temporary files", "err", err)
	} else if n > 0 {
		e.log.Info("removed temporary files of an interrupted run", "count", n)
	}
}

// runLoop is the state of Run between rounds.
type runLoop struct {
	e       *Engine
	poll    time.Duration // until the next round
	t       localdir.Timer
	rb      reportBatch
	batches <-chan localdir.Batch // the watcher's; nil without one
}

// soon makes the next round come soon, after a push: peers answer (acks,
// their own edits).
func (r *runLoop) soon() {
	if r.poll > MinPoll {
		r.poll = MinPoll
		r.t.Stop()
		r.t = r.e.clock.NewTimer(r.poll)
	}
}

// next waits for the next thing to do and does it; done: Run ends.
func (r *runLoop) next(ctx context.Context) (done bool, err error) {
	e := r.e
	select {
	case <-ctx.Done():
		e.drain(ctx, r.batches, r.rb.take())
		return true, nil
	case paths := <-e.notify:
		// Paths reported by the mount: gathered until the reports pause,
		// so that a burst (tar x, cp -r) is scanned and pushed as one
		// batch.
		r.rb.add(e.clock, paths)
	case <-r.rb.due():
		pushed, err := e.scanAndPush(ctx, e.reportedPaths(r.rb.take()))
		if err != nil {
			return true, err
		}
		if pushed {
			r.soon()
		}
	case b, ok := <-r.batches:
		return r.batch(ctx, b, ok)
	case <-r.t.C():
		return r.round(ctx)
	}
	return false, nil
}

// batch scans and pushes what the watcher reported (b; !ok: it stopped).
func (r *runLoop) batch(ctx context.Context, b localdir.Batch, ok bool) (done bool, err error) {
	e := r.e
	if !ok {
		if ctx.Err() != nil {
			e.drain(ctx, nil, r.rb.take())
			return true, nil
		}
		return true, errors.New("the folder's watcher stopped")
	}
	var paths []string
	if !b.Rescan {
		paths = b.Paths
	}
	if err := e.controlRequests(ctx); err != nil {
		e.log.Warn("access requests", "err", err)
	}
	pushed, err := e.scanAndPush(ctx, paths)
	if err != nil {
		return true, err
	}
	if pushed {
		r.soon()
	}
	return false, nil
}

// round runs a round when the timer fires.
func (r *runLoop) round(ctx context.Context) (done bool, err error) {
	e := r.e
	if err := e.controlRequests(ctx); err != nil {
		e.log.Warn("access requests", "err", err)
	}
	res, err := e.exchange(ctx, RoundResult{})
	if ctx.Err() != nil {
		e.drain(ctx, r.batches, r.rb.take())
		return true, nil
	}
	if fatal(err) {
		return true, err
	}
	e.roundDone(res, err, &r.poll)
	r.t = e.clock.NewTimer(r.poll)
	return false, nil
}

// recordGrace bounds how long a stop without a grace period (StopGrace <
// 0) takes to record the changes reported last.
const recordGrace = 5 * time.Second

// drain runs when Run's context has ended: within StopGrace it records what
// the watcher already reported and pushes the queue, so that a file closed
// just before the stop leaves with it. Whatever does not make it stays
// queued on disk (or is found by the next start's scan).
func (e *Engine) drain(parent context.Context, batches <-chan localdir.Batch, reported []string) {
	// What was reported is recorded in the queue on disk even when
	// nothing is to be pushed now (StopGrace < 0), so that escalefs
	// status counts it: it is local work, bounded by recordGrace.
	grace := e.cfg.StopGrace
	if grace < 0 {
		grace = recordGrace
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), grace)
	defer cancel()
	var paths []string
	for more := true; more; {
		select {
		case b, ok := <-batches:
			if !ok {
				more = false
			} else if !b.Rescan {
				paths = append(paths, b.Paths...)
			}
		default:
			more = false
		}
	}
	reported = e.reportedPaths(append([]string{}, reported...))
	if reported == nil || len(paths)+len(reported) > 0 {
		if reported != nil {
			reported = append(paths, reported...)
		}
		if _, err := e.Scan(ctx, reported); err != nil {
			e.log.Warn("stopping: recording the last local changes", "err", err)
		}
	}
	if e.cfg.StopGrace < 0 {
		return
	}
	n, err := e.store.QueueLen()
	if err != nil || n == 0 {
		return
	}
	e.log.Info("stopping: pushing queued changes", "queued", n, "within", e.cfg.StopGrace)
	if _, err := e.Push(ctx); err != nil {
		if left, _ := e.store.QueueLen(); left > 0 {
			e.log.Warn("stopped with changes still queued; they are pushed at the next start", "queued", left, "err", err)
		}
	}
}

// reportRound logs a failed round once, not every poll: the first failure
// at warning level (local work goes on, changes queue on disk), repeats at
// debug level, and the first success after failures at info level.
func (e *Engine) reportRound(err error) {
	e.noteRound(err, false)
	switch {
	case err != nil && !e.failing:
		e.failing = true
		e.log.Warn("sync round failed; local changes stay queued on disk, retrying with backoff", "err", err)
	case err != nil:
		e.log.Debug("sync round failed again", "err", err)
	case e.failing:
		e.failing = false
		e.log.Info("sync works again")
	}
}

// fatal reports whether err is one that retrying cannot fix.
func fatal(err error) bool {
	return errors.Is(err, cache.ErrCorrupt) || errors.Is(err, ErrRepoChanged) || errors.Is(err, cache.ErrClosed)
}

// roundDone logs a failed round and sets the next polling interval: MinPoll
// after activity, doubling up to Refresh while idle (or failing).
func (e *Engine) roundDone(res RoundResult, err error, poll *time.Duration) {
	if res.Active() && err == nil {
		*poll = MinPoll
	} else {
		*poll = min(2**poll, e.cfg.Refresh)
	}
	e.reportRound(err)
}
