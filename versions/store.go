package versions

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Reason says what replaced a version.
type Reason string

// The reasons.
const (
	PulledEdit   Reason = "pulled edit"   // a peer's version replaced it
	PulledDelete Reason = "pulled delete" // a peer deleted it
	Conflict     Reason = "conflict"      // it lost a conflict (its copy is beside the file)
	Local        Reason = "local"         // a write on this node replaced it
	LocalDelete  Reason = "local delete"  // it was deleted on this node (versions-local)
)

// Version is one kept version of a file.
type Version struct {
	// ID names it in the store; IDs sort by the time they were kept.
	ID string `json:"-"`
	// Path is where the file was, slash-separated from the folder's root.
	Path string `json:"path"`
	// Time is when it was replaced or deleted.
	Time time.Time `json:"time"`
	// ModTime and Mode are the version's own.
	ModTime time.Time   `json:"mtime"`
	Mode    fs.FileMode `json:"mode"`
	Size    int64       `json:"size"`
	// Node is the name of the node whose change replaced it ("" for a
	// local one), and Reason what the change was.
	Node   string `json:"node,omitzero"`
	Reason Reason `json:"reason"`
}

// Clock tells the time; tests inject one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configure Open.
type Options struct {
	Clock  Clock        // nil: the system's
	Logger *slog.Logger // nil: discard
	// Shared opens an existing store beside the node that keeps versions
	// in it (escalefs versions): Open creates and clears nothing, since
	// what looks half kept may be the node's version being kept.
	Shared bool
}

// Store is a directory of kept versions: each version's content as a file
// named by its ID, and its Version beside it as ID.json. Content is kept
// by a hard link to the replaced file where the store is on the same file
// system (no I/O), by a copy otherwise.
type Store struct {
	dir   string
	clock Clock
	log   *slog.Logger
}

const metaSuffix = ".json"

// Open opens (creating) the store in dir, and removes what a crash left
// half kept: content without its metadata, and temporary files.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{dir: dir, clock: opts.Clock, log: opts.Logger}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.Shared {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("version store: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("version store: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("version store: %w", err)
	}
	metas, contents := make(map[string]bool), make(map[string]bool)
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), metaSuffix); ok {
			metas[id] = true
		} else {
			contents[e.Name()] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		id, isMeta := strings.CutSuffix(name, metaSuffix)
		switch {
		case strings.HasSuffix(name, ".tmp"): // a write cut short
		case isMeta && !contents[id]: // its content is gone
		case !isMeta && !metas[name]: // kept, but its metadata never written
		default:
			continue
		}
		s.log.Debug("version store: removing what an interrupted run left", "file", name)
		_ = os.Remove(filepath.Join(dir, name))
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// newID returns a new ID: the time, to the nanosecond, and a random suffix.
func (s *Store) newID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:])
}

// Keep keeps the regular file at src (an absolute path) as a version of
// path, replaced for reason by node's change, before its caller replaces
// or deletes it. The file is linked into the store; where that is not
// possible it is copied.
func (s *Store) Keep(src, path string, reason Reason, node string) (Version, error) {
	fi, err := os.Lstat(src)
	return s.keep(fi, err, path, reason, node, func(dst string) error {
		if os.Link(src, dst) == nil {
			return nil
		}
		return copyFile(src, dst)
	})
}

// KeepCopy keeps a copy of the open regular file src as a version of
// path, for content that stays where it is and may be edited there (a
// conflict copy): a clone where the file system shares blocks (btrfs,
// XFS), a byte copy otherwise.
func (s *Store) KeepCopy(src *os.File, path string, reason Reason, node string) (Version, error) {
	fi, err := src.Stat()
	return s.keep(fi, err, path, reason, node, func(dst string) error { return cloneFile(src, fi.Size(), dst) })
}

// KeepInode keeps the open regular file src, about to lose its name (an
// unlink, a rename over it), as a version of path: its inode is linked
// into the store where both are on one file system, so no byte is copied;
// it is cloned or copied otherwise.
func (s *Store) KeepInode(src *os.File, path string, reason Reason, node string) (Version, error) {
	fi, err := src.Stat()
	return s.keep(fi, err, path, reason, node, func(dst string) error {
		if linkOpen(src, dst) == nil {
			return nil
		}
		return cloneFile(src, fi.Size(), dst)
	})
}

// keep keeps the regular file fi (statErr: why it could not be looked
// at) as a version of path: put puts its content into the store at dst,
// then its metadata goes beside it.
func (s *Store) keep(fi fs.FileInfo, statErr error, path string, reason Reason, node string, put func(dst string) error) (Version, error) {
	failed := func(err error) (Version, error) {
		return Version{}, fmt.Errorf("keeping a version of %q: %w", path, err)
	}
	if statErr != nil {
		return failed(statErr)
	}
	if !fi.Mode().IsRegular() {
		return failed(errors.New("not a regular file"))
	}
	now := s.clock.Now()
	v := Version{ID: s.newID(now), Path: path, Time: now, ModTime: fi.ModTime(), Mode: fi.Mode().Perm(),
		Size: fi.Size(), Node: node, Reason: reason}
	dst := filepath.Join(s.dir, v.ID)
	if err := put(dst); err != nil {
		return failed(err)
	}
	if err := s.writeMeta(v); err != nil {
		_ = os.Remove(dst)
		return failed(err)
	}
	return v, nil
}

func (s *Store) writeMeta(v Version) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, v.ID+metaSuffix+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, v.ID+metaSuffix))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	return cloneFile(in, fi.Size(), dst)
}

// cloneFile writes the first size bytes of in to the new file dst: a
// clone of its blocks where the file system can (FICLONE), a copy
// otherwise. in's offset is left alone.
func cloneFile(in *os.File, size int64, dst string) (err error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(dst)
		}
	}()
	if clone(out, in) != nil {
		if _, err := io.Copy(out, io.NewSectionReader(in, 0, size)); err != nil {
			return err
		}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// List returns the versions of path, and of every file under it when it
// names a directory (or is ""), oldest first.
func (s *Store) List(path string) ([]Version, error) {
	all, err := s.all()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(v Version) bool {
		return path != "" && v.Path != path && !strings.HasPrefix(v.Path, path+"/")
	}), nil
}

// all reads every version's metadata, oldest first.
func (s *Store) all() ([]Version, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("version store: %w", err)
	}
	var out []Version
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), metaSuffix)
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("version store: %w", err)
		}
		var v Version
		if err := json.Unmarshal(b, &v); err != nil {
			s.log.Warn("version store: unreadable metadata; ignored", "file", e.Name(), "err", err)
			continue
		}
		v.ID = id
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Version) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// Get reads the version id.
func (s *Store) Get(id string) (Version, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") || strings.HasSuffix(id, metaSuffix) {
		return Version{}, fmt.Errorf("version %q: not a version ID (such as 20261206T101010.000000000Z-0a1b2c3d)", id)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id+metaSuffix))
	if err != nil {
		return Version{}, fmt.Errorf("version %s: %w", id, err)
	}
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return Version{}, fmt.Errorf("version %s: unreadable metadata: %w", id, err)
	}
	v.ID = id
	return v, nil
}

// Open opens a version's content for reading.
func (s *Store) Open(v Version) (*os.File, error) {
	f, err := os.Open(filepath.Join(s.dir, v.ID))
	if err != nil {
		return nil, fmt.Errorf("version %s of %q: %w", v.ID, v.Path, err)
	}
	return f, nil
}

// Remove drops a version.
func (s *Store) Remove(v Version) error {
	if err := os.Remove(filepath.Join(s.dir, v.ID+metaSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, v.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Usage is the store's size: the bytes of its versions, and the oldest.
type Usage struct {
	Versions int
	Bytes    int64
	Oldest   time.Time // zero when empty
}

// Usage sums the store's versions.
func (s *Store) Usage() (Usage, error) {
	all, err := s.all()
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Versions: len(all)}
	for _, v := range all {
		u.Bytes += v.Size
	}
	if len(all) > 0 {
		u.Oldest = all[0].Time
	}
	return u, nil
}

// Prune applies p: each file's versions by its age rules, then the size
// cap across files, oldest first. It returns how many versions it dropped.
func (s *Store) Prune(p Policy) (int, error) {
	all, err := s.all()
	if err != nil {
		return 0, err
	}
	now := s.clock.Now()
	byPath := make(map[string][]Version)
	for _, v := range all {
		byPath[v.Path] = append(byPath[v.Path], v)
	}
	dropped := make(map[string]bool)
	for _, vs := range byPath {
		for _, v := range p.Select(vs, now) {
			dropped[v.ID] = true
		}
	}
	if p.MaxSize > 0 {
		var total int64
		for _, v := range all {
			if !dropped[v.ID] {
				total += v.Size
			}
		}
		for _, v := range all { // oldest first
			if total <= p.MaxSize {
				break
			}
			if !dropped[v.ID] {
				dropped[v.ID] = true
				total -= v.Size
			}
		}
	}
	n := 0
	for _, v := range all {
		if !dropped[v.ID] {
			continue
		}
		if err := s.Remove(v); err != nil {
			return n, fmt.Errorf("pruning version %s of %q: %w", v.ID, v.Path, err)
		}
		n++
	}
	return n, nil
}
