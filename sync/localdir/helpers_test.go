package localdir_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/localdir/localdirtest"
)

// fixture is a folder, a cache and a fake clock for one test.
type fixture struct {
	t     *testing.T
	root  string
	d     *localdir.Dir
	store *cache.Store
	clock *localdirtest.Clock
	logs  *testserver.SyncBuffer
	skip  func(rel string, isDir bool) bool
}

// newFixture makes an empty folder and cache. The clock stands an hour
// ahead, so that no file written by the test is too recent to trust (see
// Change.Local); tests of that move it back.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "folder"), logs: &testserver.SyncBuffer{}}
	if err := os.Mkdir(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	f.clock = localdirtest.NewClock(time.Now().Add(time.Hour))
	d, err := localdir.New(f.root, localdir.Options{
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:  f.clock,
		Skip: func(rel string, isDir bool) bool {
			return f.skip != nil && f.skip(rel, isDir)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	st, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	return f
}

func (f *fixture) abs(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	p := f.abs(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) read(rel string) string {
	f.t.Helper()
	b, err := os.ReadFile(f.abs(rel))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) mkdir(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(f.abs(rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) symlink(target, rel string) {
	f.t.Helper()
	if err := os.Symlink(target, f.abs(rel)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(rel string) {
	f.t.Helper()
	if err := os.RemoveAll(f.abs(rel)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rename(from, to string) {
	f.t.Helper()
	if err := os.Rename(f.abs(from), f.abs(to)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) chmod(rel string, mode fs.FileMode) {
	f.t.Helper()
	if err := os.Chmod(f.abs(rel), mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) chtimes(rel string, mtime time.Time) {
	f.t.Helper()
	if err := os.Chtimes(f.abs(rel), time.Time{}, mtime); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) mtime(rel string) time.Time {
	f.t.Helper()
	fi, err := os.Lstat(f.abs(rel))
	if err != nil {
		f.t.Fatal(err)
	}
	return fi.ModTime()
}

// scan scans with opts and fails the test on error.
func (f *fixture) scan(opts localdir.ScanOptions) localdir.ScanResult {
	f.t.Helper()
	res, err := f.d.Scan(context.Background(), f.store, opts)
	if err != nil {
		f.t.Fatalf("Scan: %v", err)
	}
	return res
}

// sync scans everything and applies the changes to the cache as an engine
// would, then checks that a second scan finds nothing and hashes nothing.
func (f *fixture) sync() localdir.ScanResult {
	f.t.Helper()
	res := f.scan(localdir.ScanOptions{})
	f.apply(res.Changes)
	again := f.scan(localdir.ScanOptions{})
	if len(again.Changes) != 0 || again.HashedFiles != 0 {
		f.t.Fatalf("scan after applying its changes: %d changes, %d files hashed, want none:\n%s",
			len(again.Changes), again.HashedFiles, describe(again.Changes))
	}
	return res
}

// apply records changes in the cache the way the engine does: new state
// as an entry, removals as tombstones, renames moving the subtree.
func (f *fixture) apply(changes []localdir.Change) {
	f.t.Helper()
	put := func(tx *cache.Tx, ch localdir.Change) error {
		return tx.Put(cache.Entry{
			Path: ch.Path, Kind: ch.Kind, Hash: ch.Hash, Size: ch.Size, ModTime: ch.ModTime,
			Mode: ch.Mode, Target: ch.Target, Local: ch.Local, Origin: "test",
			Version: cache.VersionVector{"test": 1},
		})
	}
	err := f.store.Update(func(tx *cache.Tx) error {
		for _, ch := range changes {
			switch ch.Op {
			case localdir.OpDelete, localdir.OpRmdir:
				e, ok, err := tx.Get(ch.Path)
				if err != nil || !ok {
					return fmt.Errorf("%v %q: entry %v, %v", ch.Op, ch.Path, ok, err)
				}
				if err := tx.Put(cache.Entry{Path: ch.Path, Kind: e.Kind, Deleted: true, Version: e.Version.Bump("test")}); err != nil {
					return err
				}
			case localdir.OpRename:
				var moved []cache.Entry
				if err := tx.Walk(ch.From, func(e cache.Entry) error {
					if e.Path != ch.From && !e.Deleted {
						moved = append(moved, e)
					}
					return nil
				}); err != nil {
					return err
				}
				for _, e := range moved {
					if err := tx.Put(cache.Entry{Path: e.Path, Kind: e.Kind, Deleted: true}); err != nil {
						return err
					}
					e.Path = ch.Path + e.Path[len(ch.From):]
					if err := tx.Put(e); err != nil {
						return err
					}
				}
				if err := tx.Put(cache.Entry{Path: ch.From, Kind: ch.Kind, Deleted: true}); err != nil {
					return err
				}
				if err := put(tx, ch); err != nil {
					return err
				}
			default:
				if err := put(tx, ch); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("applying changes: %v", err)
	}
}

// describe renders changes one per line as "op path" or "rename from -> to".
func describe(changes []localdir.Change) string {
	var b strings.Builder
	for _, ch := range changes {
		b.WriteString(summary(ch))
		b.WriteByte('\n')
	}
	return b.String()
}

func summary(ch localdir.Change) string {
	if ch.Op == localdir.OpRename {
		return fmt.Sprintf("rename %s -> %s", ch.From, ch.Path)
	}
	return ch.Op.String() + " " + ch.Path
}

func summaries(changes []localdir.Change) []string {
	out := make([]string, len(changes))
	for i, ch := range changes {
		out[i] = summary(ch)
	}
	return out
}

// diskStat is the fingerprint of rel as the test sees it.
func diskStat(t *testing.T, p string) cache.LocalStat {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return cache.LocalStat{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano(), Inode: st.Ino, CTimeNs: st.Ctim.Nano()}
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// waitFor waits until cond holds, checking it whenever notify signals,
// and fails the test after a generous deadline.
func waitFor(t *testing.T, notify <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-notify:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// tempFiles lists the temporary files below root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if localdir.IsTemp(e.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// syscallUmask sets the process's umask and returns the old one. Tests
// that use it must not run in parallel.
func syscallUmask(m int) int { return syscall.Umask(m) }

// fsWalk calls fn with the relative path and Lstat of everything below
// root, in lexical order, without following symlinks.
func fsWalk(root string, fn func(rel string, fi fs.FileInfo)) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fn(filepath.ToSlash(rel), fi)
		return nil
	})
}
