package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of the cache that this package reads and
// writes. Open migrates older caches and refuses newer ones.
const SchemaVersion = 2

// DefaultTimeout is how long Open waits for the cache's file lock when
// Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Bucket names. Each holds one kind of record (see the package doc).
var (
	bucketSys        = []byte("sys")
	bucketMeta       = []byte("meta")
	bucketEntries    = []byte("entries")
	bucketQueue      = []byte("queue")
	bucketQueuePaths = []byte("queue-paths")
	bucketPeerSeq    = []byte("peer-seq")
	bucketPeerState  = []byte("peer-state")

	keySchema   = []byte("schema")
	keyQueueLen = []byte("queue-len")
)

// allBuckets lists every bucket of the current schema.
func allBuckets() [][]byte {
	return [][]byte{bucketSys, bucketMeta, bucketEntries, bucketQueue, bucketQueuePaths, bucketPeerSeq, bucketPeerState,
		bucketChunks, bucketPathChunks, bucketSentChunks}
}

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives debug messages and notes about migrations; nil
	// discards them.
	Logger *slog.Logger
	// Timeout is how long Open waits for another process to release the
	// cache before failing with ErrInUse; zero or less means
	// DefaultTimeout. Open never waits without limit.
	Timeout time.Duration
	// Now returns the current time, stamped on queue items; nil means
	// time.Now. Tests inject a clock here.
	Now func() time.Time
	// ReadOnly opens an existing cache for reading only, as escalefs
	// status does: it shares the lock with other readers, so it still
	// fails with ErrInUse while a process has the cache open for writing,
	// creates and migrates nothing, and fails every Update with
	// ErrReadOnly.
	ReadOnly bool
}

// Store is an open cache database. It is safe for concurrent use: any number
// of View transactions run in parallel with each other and with at most one
// Update at a time. Each committed Update is durable (fsynced) and atomic, so
// a crash leaves either all of it or none of it.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
	now  func() time.Time

	// decoded counts entries decoded, so that tests can check that
	// Children does not read subtrees it skips.
	decoded atomic.Int64
}

// Open opens the cache database at path, creating it (mode 0600) if it does
// not exist. Only one Store may have a cache open at a time, across all
// processes: if another holds it for longer than opts.Timeout, Open fails
// with an error wrapping ErrInUse that names the holder's process ID where
// the system tells it. A cache of an older schema is migrated in place (in
// one transaction); a newer one fails with ErrSchemaTooNew; a file that is
// not a cache fails with ErrCorrupt.
func Open(path string, opts Options) (*Store, error) {
	return open(path, opts, SchemaVersion, schemaMigrations())
}

// open is Open with the schema version to reach and the migrations that
// lead there, so that tests can exercise migration.
func open(path string, opts Options, target uint64, steps []migration) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// NoSync stays false: every commit is fsynced before Update returns.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, &InUseError{Path: path, PID: lockHolder(path)}
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
			return nil, fmt.Errorf("open cache %s: not a cache database (%w): %w", path, err, ErrCorrupt)
		}
		return nil, fmt.Errorf("open cache %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: log, now: now}
	if opts.ReadOnly {
		if err := db.View(func(tx *bolt.Tx) error { return s.checkSchema(tx, target) }); err != nil {
			_ = db.Close()
			return nil, err
		}
		log.Debug("cache opened read-only", "path", path, "schema", target)
		return s, nil
	}
	var from uint64
	err = db.Update(func(tx *bolt.Tx) error {
		from, err = s.upgrade(tx, target, steps)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if from != target {
		log.Info("cache migrated", "path", path, "from", from, "to", target)
	}
	log.Debug("cache opened", "path", path, "schema", target)
	return s, nil
}

// migration moves a cache from one schema version to the next, within the
// transaction of Open.
type migration func(tx *bolt.Tx) error

// schemaMigrations returns the migration from version i+1 to i+2 at index i.
func schemaMigrations() []migration {
	return []migration{
		// 1 → 2: the chunk index, empty (upgrade creates its buckets);
		// files are indexed as they are pushed and pulled.
		func(*bolt.Tx) error { return nil },
	}
}

// upgrade brings the cache to schema version target: it creates a fresh
// one, refuses a newer or foreign one, or runs the migrations from its
// version on. It returns the version found (target for a fresh cache).
func (s *Store) upgrade(tx *bolt.Tx, target uint64, steps []migration) (uint64, error) {
	sys := tx.Bucket(bucketSys)
	if sys == nil {
		foreign := false
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { foreign = true; return nil })
		if foreign {
			return 0, fmt.Errorf("open cache %s: a bbolt database but not an escalefs cache: %w", s.path, ErrCorrupt)
		}
		if err := createBuckets(tx); err != nil {
			return 0, fmt.Errorf("create cache %s: %w", s.path, err)
		}
		return target, putUint64(tx.Bucket(bucketSys), keySchema, target)
	}
	v, ok, err := getUint64(sys, keySchema)
	switch {
	case err != nil:
		return 0, fmt.Errorf("open cache %s: schema version: %w", s.path, err)
	case !ok || v == 0:
		return 0, fmt.Errorf("open cache %s: no schema version: %w", s.path, ErrCorrupt)
	case v > target:
		return v, fmt.Errorf("open cache %s: schema version %d, this escalefs supports up to %d; upgrade escalefs: %w",
			s.path, v, target, ErrSchemaTooNew)
	}
	if err := migrate(tx, v, target, steps); err != nil {
		return v, fmt.Errorf("migrate cache %s: %w", s.path, err)
	}
	// A migration may add buckets; creating the missing ones is idempotent.
	if err := createBuckets(tx); err != nil {
		return v, fmt.Errorf("open cache %s: %w", s.path, err)
	}
	return v, nil
}

// checkSchema checks, for a read-only Store, that the cache is one of
// schema version target: one that needs creating or migrating cannot be
// read without writing it.
func (s *Store) checkSchema(tx *bolt.Tx, target uint64) error {
	sys := tx.Bucket(bucketSys)
	if sys == nil {
		return fmt.Errorf("open cache %s: not an escalefs cache: %w", s.path, ErrCorrupt)
	}
	v, ok, err := getUint64(sys, keySchema)
	switch {
	case err != nil:
		return fmt.Errorf("open cache %s: schema version: %w", s.path, err)
	case !ok || v == 0:
		return fmt.Errorf("open cache %s: no schema version: %w", s.path, ErrCorrupt)
	case v > target:
		return fmt.Errorf("open cache %s: schema version %d, this escalefs supports up to %d; upgrade escalefs: %w",
			s.path, v, target, ErrSchemaTooNew)
	case v < target:
		return fmt.Errorf("open cache %s: schema version %d must be migrated to %d, which opening it read-only cannot do; "+
			"start the node once", s.path, v, target)
	}
	return nil
}

// migrate runs steps[from-1] … steps[to-2] and records version to.
func migrate(tx *bolt.Tx, from, to uint64, steps []migration) error {
	if from == to {
		return nil
	}
	if to-1 > uint64(len(steps)) {
		return fmt.Errorf("no migration from schema version %d to %d", from, to)
	}
	for v := from; v < to; v++ {
		if err := steps[v-1](tx); err != nil {
			return fmt.Errorf("schema version %d to %d: %w", v, v+1, err)
		}
	}
	return putUint64(tx.Bucket(bucketSys), keySchema, to)
}

func createBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// Path returns the file name the Store was opened with.
func (s *Store) Path() string { return s.path }

// Close closes the database and releases its lock. It waits for running
// transactions to finish. Closing twice is harmless; any other use after
// Close fails with ErrClosed.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close cache %s: %w", s.path, err)
	}
	s.log.Debug("cache closed", "path", s.path)
	return nil
}

// View runs fn in a read-only transaction that sees one consistent
// snapshot, unaffected by concurrent Updates. The Tx is valid only until fn
// returns, and only in fn's goroutine. fn must not call View or Update of
// the same Store: bbolt can deadlock on nested transactions in one
// goroutine. View returns fn's error as is.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.run(false, fn)
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil: all of fn's changes (entries, queue, peers, metadata) become durable
// together, or, if fn returns an error or panics, or the commit fails, none
// of them do. Updates are serialized. The Tx is valid only until fn
// returns, and only in fn's goroutine; fn must not call View or Update of
// the same Store. fn's error is returned as is; a failed commit returns
// bbolt's error. Keep fn short: it holds the single writer lock and ends
// with an fsync.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.run(true, fn)
}

func (s *Store) run(write bool, fn func(tx *Tx) error) error {
	inner := func(btx *bolt.Tx) error {
		t := &Tx{s: s, tx: btx}
		defer func() { t.tx = nil }()
		return fn(t)
	}
	var err error
	if write {
		err = s.db.Update(inner)
	} else {
		err = s.db.View(inner)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("cache %s: %w", s.path, ErrClosed)
	}
	if errors.Is(err, berrors.ErrDatabaseReadOnly) {
		return fmt.Errorf("cache %s: opened read-only: %w", s.path, ErrReadOnly)
	}
	// fn's errors pass through unchanged; bbolt's commit errors already
	// say what failed.
	return err
}

// Get returns the entry at path in a one-shot read transaction.
func (s *Store) Get(path string) (e Entry, ok bool, err error) {
	err = s.View(func(tx *Tx) error {
		e, ok, err = tx.Get(path)
		return err
	})
	return e, ok, err
}

// Put stores e in a one-shot write transaction.
func (s *Store) Put(e Entry) error {
	return s.Update(func(tx *Tx) error { return tx.Put(e) })
}

// Delete removes the entry at path in a one-shot write transaction.
func (s *Store) Delete(path string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(path) })
}

// QueueLen returns the number of items in the push queue.
func (s *Store) QueueLen() (n int, err error) {
	err = s.View(func(tx *Tx) error {
		n, err = tx.QueueLen()
		return err
	})
	return n, err
}

func putUint64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

// getUint64 reads an 8-byte big-endian value.
func getUint64(b *bolt.Bucket, k []byte) (uint64, bool, error) {
	v := b.Get(k)
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("value of %q: %d bytes, want 8: %w", k, len(v), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), true, nil
}
