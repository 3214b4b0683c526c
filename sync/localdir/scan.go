package localdir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// racyWindow is how close to the scan a file's last change (its ctime) may
// be before its timestamps are not trusted to reveal a later write: a write
// within the same timestamp tick keeps size, mtime and ctime. Such a
// fingerprint is reported smudged (CTimeNs zero), so the next scan hashes
// the file again and then reports the real one (OpRestat).
//
// A file system whose ctime has a part below the second (ext4, XFS,
// Btrfs, tmpfs…) stamps it from the kernel's coarse clock, which ticks
// every 1 to 10 ms: racyWindowFine leaves ten ticks of margin. A ctime in
// whole seconds may come from a file system that counts in seconds.
const (
	racyWindow     = time.Second
	racyWindowFine = 100 * time.Millisecond
)

// hashBufSize is the read buffer of hashing: memory per scan, whatever the
// size of the files.
const hashBufSize = 256 << 10

// Source is the cache as Scan reads it; *cache.Store satisfies it. Scan
// reads every entry it needs in one View and holds no transaction while it
// walks the disk or hashes.
type Source interface {
	View(fn func(tx *cache.Tx) error) error
}

// ScanOptions configure one Scan.
type ScanOptions struct {
	// Paths restricts the scan to these paths, each with its subtree: a
	// Watcher's Batch.Paths. Duplicates and paths inside others are
	// folded. nil or empty scans the whole folder.
	Paths []string
	// Chunks, if set, hashes the files of ChunksFrom bytes and more by
	// their chunks, each byte once (the engine's chunker, for the files
	// it pushes as chunks): their Hash is the content hash of their
	// chunks, which Change.Chunks lists. Other files are hashed with
	// SHA-256.
	Chunks     ChunkHasher
	ChunksFrom int64
}

// ChunkHasher cuts a file of size bytes into chunks and returns them with
// the content hash they make.
type ChunkHasher interface {
	HashChunks(ctx context.Context, r io.ReaderAt, size int64) ([32]byte, []cache.ChunkSpan, error)
}

// Op is the kind of a Change.
type Op uint8

// The kinds of change. Each Change carries the complete new state of its
// path, so Op only names the most significant difference: content (Modify)
// before mtime (Touch) before mode (Chmod) before the fingerprint alone
// (Restat).
const (
	// OpCreate: a regular file appeared where the cache has nothing (or a
	// tombstone, or another kind: then an OpDelete or OpRmdir precedes it).
	OpCreate Op = iota + 1
	// OpModify: a file's content (hash or size) differs from the cache's.
	OpModify
	// OpTouch: a file's mtime changed, its content did not.
	OpTouch
	// OpChmod: the mode (ModeMask bits) of a file or directory changed,
	// nothing else that matters did.
	OpChmod
	// OpRestat: content, mtime and mode are the cache's; only the
	// fingerprint changed (a copy saved over the file, a hard link, an
	// xattr, a smudged fingerprint). The engine updates Entry.Local and
	// has nothing to push.
	OpRestat
	// OpDelete: a file or symlink the cache has (not a tombstone) is gone.
	OpDelete
	// OpMkdir: a directory appeared.
	OpMkdir
	// OpRmdir: a directory is gone; the removal of everything the cache
	// has inside it precedes it.
	OpRmdir
	// OpSymlink: a symlink appeared.
	OpSymlink
	// OpRetarget: a symlink's target changed.
	OpRetarget
	// OpRename: the path From is gone and Path appeared with the same
	// content (same size and hash, and same inode where known; for a
	// symlink, same target). For a directory, its whole subtree moved: every
	// entry the cache has below From is found at the same place below Path,
	// and moves along. Entries below it keep their Local fingerprints (a
	// directory rename changes neither their inode nor their ctime); any
	// other difference of theirs follows as its own change.
	OpRename
)

// String returns the lower-case name of the Op, e.g. "create".
func (o Op) String() string {
	names := [...]string{"", "create", "modify", "touch", "chmod", "restat", "delete",
		"mkdir", "rmdir", "symlink", "retarget", "rename"}
	if int(o) < len(names) && o != 0 {
		return names[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Change is one difference between the disk and the cache.
type Change struct {
	Op Op
	// Path is the changed path; for OpRename the new one.
	Path string
	// From is the old path of an OpRename; empty otherwise.
	From string
	// Kind is what Path is on disk; for OpDelete and OpRmdir, what the
	// cache had there.
	Kind cache.Kind
	// Size, ModTime (UTC), Mode (ModeMask bits only), Target (symlinks) and
	// Hash (SHA-256 of a file's content) are the new state. They are zero
	// for OpDelete and OpRmdir. Directories report Size 0, symlinks Mode 0.
	Size    int64
	ModTime time.Time
	Mode    fs.FileMode
	Target  string
	Hash    [32]byte
	// Chunks are the file's chunks when Hash is their content hash
	// (ScanOptions.Chunks); nil otherwise, and when the file was not read.
	Chunks []cache.ChunkSpan
	// Local is the fingerprint of Path on disk that the rest of the Change
	// describes; the engine stores it in Entry.Local so that the next scan
	// skips hashing the file if it is untouched. Zero for OpDelete and
	// OpRmdir. CTimeNs is zero (smudged) when the file changed less than a
	// second before it was hashed: a write in the same timestamp tick could
	// go unseen, so the next scan hashes it again.
	Local cache.LocalStat
}

// Failure is a path Scan could not read.
type Failure struct {
	Path string
	Err  error
}

// ScanResult is what Scan found.
type ScanResult struct {
	// Changes are in an order in which the engine can apply them one by one
	// to its cache: a directory is created (or renamed into place) before
	// anything inside it, a path is deleted before something of another
	// kind is created there, and a directory is removed only after
	// everything inside it is deleted or renamed away. Otherwise they are
	// in path order, removals last.
	Changes []Change
	// Unstable lists files that changed while they were hashed, or were
	// swapped for something else while being looked at. Nothing is
	// reported about them (not even a deletion): scan them again later,
	// e.g. with ScanOptions.Paths, when they have settled.
	Unstable []string
	// Failed lists paths that could not be read (permission denied, I/O
	// error). Nothing is reported about them or their subtrees; in
	// particular the cache's entries there are not reported deleted.
	Failed []Failure
	// HashedFiles and HashedBytes count the files hashed (successfully or
	// not) and the bytes read for it.
	HashedFiles int
	HashedBytes int64
}

// cached is the part of a cache entry a scan compares.
type cached struct {
	kind    cache.Kind
	deleted bool
	hash    [32]byte
	size    int64
	mtime   time.Time
	mode    fs.FileMode
	target  string
	local   cache.LocalStat
}

// ondisk is a path found on disk.
type ondisk struct {
	kind   cache.Kind
	mode   fs.FileMode
	mtime  time.Time
	size   int64
	target string
	hash   [32]byte
	chunks []cache.ChunkSpan // when hash is their content hash
	local  cache.LocalStat
}

// scanner is the state of one Scan.
type scanner struct {
	d      *Dir
	ctx    context.Context
	opts   ScanOptions
	cache  map[string]*cached
	cpaths []string // keys of cache, in path order
	disk   map[string]*ondisk
	// opaque marks paths whose state is unknown (skipped, unreadable,
	// unstable, invalid): nothing at or below them is reported.
	opaque  map[string]bool
	skipped map[string]bool // memo of Skip(dir, true) for cache entries' ancestors
	res     ScanResult
	buf     []byte
}

// errUnstable and errVanished classify a file that could not be hashed.
var (
	errUnstable = errors.New("changed while being read")
	errVanished = errors.New("vanished")
)

// Scan compares the folder (or the parts named by opts.Paths) with the
// cache's view read from src, and reports every difference (see Op and
// ScanResult). It does not write to the cache or the folder.
//
// A file is hashed only if its fingerprint (size, mtime, inode, ctime)
// differs from the cache entry's Local, or it is new; hashing streams it
// through a fixed buffer, whatever its size. A cache entry whose Local is
// zero was never seen on this disk (e.g. a pulled file not yet installed):
// its absence is not reported as a deletion. Names that Options.Skip
// excludes, temporary files (TempPrefix), special files (FIFOs, sockets,
// devices) and names that are not valid cache paths are never reported;
// a special file standing where the cache has an entry counts as that
// entry's deletion.
//
// Scan fails if the root cannot be opened or is not a directory, if src
// fails, if a path in opts.Paths is invalid (wrapping cache.ErrInvalidPath)
// or if ctx is cancelled (wrapping ctx.Err()); it returns no partial result
// then. Problems with single paths go to ScanResult.Failed.
func (d *Dir) Scan(ctx context.Context, src Source, opts ScanOptions) (ScanResult, error) {
	scopes, err := foldScopes(opts.Paths)
	if err != nil {
		return ScanResult{}, fmt.Errorf("scan %s: %w", d.root, err)
	}
	s := &scanner{
		d: d, ctx: ctx, opts: opts,
		cache:   make(map[string]*cached),
		disk:    make(map[string]*ondisk),
		opaque:  make(map[string]bool),
		skipped: make(map[string]bool),
	}
	if err := s.load(src, scopes); err != nil {
		return ScanResult{}, fmt.Errorf("scan %s: reading the cache: %w", d.root, err)
	}
	root, err := d.openRoot()
	if err != nil {
		return ScanResult{}, fmt.Errorf("scan: %w", err)
	}
	defer root.Close()
	for _, sc := range scopes {
		if err := s.walkScope(root, sc); err != nil {
			return ScanResult{}, fmt.Errorf("scan %s: %w", d.root, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return ScanResult{}, fmt.Errorf("scan %s: %w", d.root, err)
	}
	s.res.Changes = s.diff()
	return s.res, nil
}

// foldScopes validates and sorts the scan's paths and drops those inside
// another; nil or empty means the whole tree ("").
func foldScopes(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return []string{""}, nil
	}
	ps := slices.Clone(paths)
	for _, p := range ps {
		if err := cache.ValidPath(p); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(ps, pathCompare)
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && (out[n-1] == p || under(p, out[n-1])) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// load reads the cache entries of every scope in one transaction.
func (s *scanner) load(src Source, scopes []string) error {
	return src.View(func(tx *cache.Tx) error {
		for _, sc := range scopes {
			err := tx.Walk(sc, func(e cache.Entry) error {
				s.cache[e.Path] = &cached{
					kind: e.Kind, deleted: e.Deleted, hash: e.Hash, size: e.Size,
					mtime: e.ModTime, mode: e.Mode & ModeMask, target: e.Target, local: e.Local,
				}
				s.cpaths = append(s.cpaths, e.Path)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// walkScope records what is on disk at scope and below it.
func (s *scanner) walkScope(root *os.Root, scope string) error {
	if scope == "" {
		return s.walkDir(root, "")
	}
	// Open the scope's parent one component at a time; a missing,
	// non-directory or skipped ancestor means the scope is not there (or,
	// if skipped, not to be looked at).
	parentRel, name := splitRel(scope)
	cur := ""
	if parentRel != "" {
		for c := range strings.SplitSeq(parentRel, "/") {
			cur = joinRel(cur, c)
			if s.d.skip(cur, true) {
				s.opaque[scope] = true
				return nil
			}
		}
	}
	dir, _, err := s.d.openDir(parentRel, false)
	switch {
	case errors.Is(err, errNotDir):
		return nil
	case err != nil:
		s.fail(scope, err)
		return nil
	}
	defer dir.Close()
	fi, err := dir.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		s.fail(scope, err)
		return nil
	case IsTemp(name):
		return nil
	}
	return s.visit(dir, name, scope, fi)
}

// walkDir records the entries of the directory dir, at rel, and below.
func (s *scanner) walkDir(dir *os.Root, rel string) error {
	f, err := dir.Open(".")
	var names []string
	if err == nil {
		names, err = f.Readdirnames(-1)
		f.Close()
	}
	if err != nil {
		if rel == "" {
			// Never guess about the whole folder: everything would look
			// deleted.
			return fmt.Errorf("listing the root: %w", err)
		}
		s.fail(rel, err)
		return nil
	}
	slices.Sort(names)
	for _, name := range names {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if IsTemp(name) {
			continue
		}
		child := joinRel(rel, name)
		if err := cache.ValidPath(child); err != nil {
			s.d.log.Warn("skipping a name that cannot be synced", "dir", s.d.abs(rel), "name", name, "err", err)
			s.opaque[child] = true
			continue
		}
		fi, err := dir.Lstat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // gone since the listing
		case err != nil:
			s.fail(child, err)
			continue
		}
		if err := s.visit(dir, name, child, fi); err != nil {
			return err
		}
	}
	return nil
}

// visit records the path rel, named name in parent, whose Lstat is fi.
func (s *scanner) visit(parent *os.Root, name, rel string, fi fs.FileInfo) error {
	k := statKind(fi.Mode())
	if s.d.skip(rel, k == cache.KindDir) {
		s.opaque[rel] = true
		return nil
	}
	od := &ondisk{kind: k, mode: fi.Mode() & ModeMask, mtime: fi.ModTime().UTC(), local: localStat(fi)}
	switch k {
	case cache.KindDir:
		sub, err := openVerified(parent, name, fi)
		switch {
		case errors.Is(err, errNotDir):
			s.unstable(rel) // replaced by something else since the Lstat
			return nil
		case err != nil:
			s.fail(rel, err)
			return nil
		}
		defer sub.Close()
		s.disk[rel] = od
		return s.walkDir(sub, rel)
	case cache.KindSymlink:
		target, err := parent.Readlink(name)
		if err != nil {
			s.fail(rel, err)
			return nil
		}
		od.mode, od.target = 0, target
		s.disk[rel] = od
	case cache.KindFile:
		od.size = fi.Size()
		if c := s.cache[rel]; c != nil && !c.deleted && c.kind == cache.KindFile &&
			c.local != (cache.LocalStat{}) && c.local == od.local {
			od.hash = c.hash // untouched since the engine last looked
			s.disk[rel] = od
			return nil
		}
		err := s.hash(parent, name, rel, fi, od)
		switch {
		case errors.Is(err, errVanished):
		case errors.Is(err, errUnstable):
			s.unstable(rel)
		case err != nil:
			if ctxErr := s.ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			s.fail(rel, err)
		default:
			s.disk[rel] = od
		}
	default:
		s.d.log.Debug("skipping a special file", "path", s.d.abs(rel), "mode", fi.Mode().String())
	}
	return nil
}

// hash reads the file name in parent, whose Lstat was before, and fills in
// od's hash and its state as of the end of the read. The file must not
// change while it is read: size, mtime and ctime before and after, the
// byte count and the inode behind the name must all agree, or the result
// is errUnstable.
func (s *scanner) hash(parent *os.Root, name, rel string, before fs.FileInfo, od *ondisk) error {
	s.res.HashedFiles++
	f, err := parent.OpenFile(name, openReadFlags, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errVanished
	case err != nil && isNotDir(err): // became a symlink
		return errUnstable
	case err != nil:
		return err
	}
	defer f.Close()
	fi1, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi1.Mode().IsRegular() || !os.SameFile(before, fi1) ||
		fi1.Size() != before.Size() || !fi1.ModTime().Equal(before.ModTime()) {
		return errUnstable
	}
	if s.d.onHash != nil {
		s.d.onHash(rel)
	}
	n, err := s.read(f, fi1.Size(), od)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errUnstable // shorter than it was
	case err != nil:
		return err
	}
	fi2, err := f.Stat()
	if err != nil {
		return err
	}
	st1, st2 := localStat(fi1), localStat(fi2)
	if n != st1.Size || st2 != st1 {
		return errUnstable
	}
	if now, err := parent.Lstat(name); err != nil || !os.SameFile(now, fi2) {
		return errUnstable // renamed over or removed meanwhile
	}
	od.size, od.mode, od.mtime = n, fi2.Mode()&ModeMask, fi2.ModTime().UTC()
	od.local = s.smudge(st2)
	return nil
}

// read hashes the content of f, of size bytes as of its Stat, into od,
// and returns the bytes read: by its chunks (ScanOptions.Chunks) if it is
// large enough, else with SHA-256 up to its end.
func (s *scanner) read(f *os.File, size int64, od *ondisk) (int64, error) {
	if s.opts.Chunks != nil && s.opts.ChunksFrom > 0 && size >= s.opts.ChunksFrom {
		sum, spans, err := s.opts.Chunks.HashChunks(s.ctx, f, size)
		if err != nil {
			return 0, err
		}
		s.res.HashedBytes += size
		od.hash, od.chunks = sum, spans
		return size, nil
	}
	if s.buf == nil {
		s.buf = make([]byte, hashBufSize)
	}
	h := sha256.New()
	var n int64
	for {
		if err := s.ctx.Err(); err != nil {
			return n, err
		}
		m, err := f.Read(s.buf)
		h.Write(s.buf[:m])
		n += int64(m)
		s.res.HashedBytes += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	h.Sum(od.hash[:0])
	return n, nil
}

// smudge clears CTimeNs of a fingerprint taken within racyWindow of the
// file's last change (see racyWindow).
func (s *scanner) smudge(st cache.LocalStat) cache.LocalStat {
	changed := st.CTimeNs
	if changed == 0 {
		changed = st.MTimeNs
	}
	if racy(changed, s.d.clock.Now().UnixNano()) {
		st.CTimeNs = 0
	}
	return st
}

// racy says whether a file last changed at changed (ns since the epoch)
// has a fingerprint that cannot be trusted now (see racyWindow).
func racy(changed, now int64) bool {
	window := racyWindow
	if changed%int64(time.Second) != 0 {
		window = racyWindowFine
	}
	return now-changed < int64(window)
}

func (s *scanner) fail(rel string, err error) {
	s.d.log.Warn("cannot read a local path", "path", s.d.abs(rel), "err", err)
	s.res.Failed = append(s.res.Failed, Failure{Path: rel, Err: err})
	s.opaque[rel] = true
}

func (s *scanner) unstable(rel string) {
	s.res.Unstable = append(s.res.Unstable, rel)
	s.opaque[rel] = true
}

// hidden reports whether nothing may be said about the cache's entry at p:
// p or an ancestor is opaque or skipped.
func (s *scanner) hidden(p string, k cache.Kind) bool {
	if s.opaque[p] || s.opaque[""] || s.d.skip(p, k == cache.KindDir) {
		return true
	}
	for q := p; ; {
		dir, _ := splitRel(q)
		if dir == "" {
			return false
		}
		if s.opaque[dir] {
			return true
		}
		sk, ok := s.skipped[dir]
		if !ok {
			sk = s.d.skip(dir, true) || IsTemp(dir)
			s.skipped[dir] = sk
		}
		if sk {
			return true
		}
		q = dir
	}
}
