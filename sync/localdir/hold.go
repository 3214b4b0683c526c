package localdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// A file that Install replaces or Remove deletes may still be open in a
// program, which would go on writing to an inode that no name reaches: its
// bytes would be lost. With Options.Hold, the file is kept instead: a hard
// link to it is made in the hold directory before the name goes, so the
// inode stays reachable, and Held tells whether it changed after it was
// replaced. The engine turns a changed one into a conflict copy and
// releases the others after a grace period.

// heldMeta is what the hold directory records of a held file, beside it.
type heldMeta struct {
	Path string // the path it was at, slash-separated from the root
	// Stat is the file as it was once replaced; Expect, what the caller
	// knew of it before (the last scan or install).
	Stat, Expect cache.LocalStat
	Since        time.Time
	Checks       int
	// Deleted: a Remove let it go, not an Install.
	Deleted bool `json:",omitempty"`
	// Origin is the change that replaced it (WithOrigin).
	Origin Origin `json:",omitzero"`
	// Copied: the hold directory is on another file system, and the
	// file was copied there, not linked (Options.HoldCopy).
	Copied bool `json:",omitempty"`
}

// Held is a file kept after Install replaced it or Remove deleted it.
type Held struct {
	ID   string
	Path string
	// Age is how long ago it was replaced (by the Dir's clock); Checks,
	// how often it was found unchanged after the grace period.
	Age    time.Duration
	Checks int
	// Changed reports that it was written after it was replaced, or
	// between the caller's last look and the replacement.
	Changed bool
	// ModTime and Mode are the file's now.
	ModTime time.Time
	Mode    fs.FileMode
	// Deleted: a pulled delete let it go; otherwise a pulled version
	// replaced it.
	Deleted bool
	// Origin is the change that replaced it, as the caller told.
	Origin Origin
}

// Origin is whose change Install or Remove makes: a file they hold
// records it.
type Origin struct {
	// Node names the node whose change it is (a pulled one).
	Node string `json:",omitempty"`
	// Local: a change made on this node (a restore).
	Local bool `json:",omitempty"`
}

type originKey struct{}

// WithOrigin returns a context telling Install and Remove whose change
// they make (Held.Origin).
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

func originOf(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

const heldMetaSuffix = ".json"

// hold links the regular file name of dir (rel) into the hold directory
// before it is replaced or deleted. It returns the function to call once
// that is done (ok: it was; otherwise the link goes again), or nil when
// nothing is held (no hold directory, or another file system without
// Options.HoldCopy).
func (d *Dir) hold(ctx context.Context, dir *os.Root, name, rel string, expect *cache.LocalStat, deleted bool) func(ok bool) {
	if d.holdDir == "" {
		return nil
	}
	id := strings.TrimPrefix(tempName(), TempPrefix)
	file := filepath.Join(d.holdDir, id)
	copied := false
	if err := d.linkOut(dir, name, file); err != nil {
		switch {
		case errors.Is(err, syscall.EXDEV) && d.holdCopy:
			if err := copyOut(dir, name, file); err != nil {
				d.log.Warn("keeping a copy of a file about to be replaced", "path", rel, "err", err)
				return nil
			}
			copied = true
		case errors.Is(err, syscall.EXDEV):
			d.log.Debug("the hold directory is on another file system: a replaced file is not kept", "path", rel)
			return nil
		default:
			d.log.Warn("keeping a file about to be replaced", "path", rel, "err", err)
			return nil
		}
	}
	return func(ok bool) {
		fi, err := os.Lstat(file)
		if !ok || err != nil {
			os.Remove(file)
			return
		}
		m := heldMeta{Path: rel, Stat: localStat(fi), Since: d.clock.Now(), Deleted: deleted, Origin: originOf(ctx), Copied: copied}
		if expect != nil {
			m.Expect = *expect
		}
		if err := writeHeldMeta(file, m); err != nil {
			d.log.Warn("keeping a replaced file", "path", rel, "err", err)
			os.Remove(file)
		}
	}
}

func writeHeldMeta(file string, m heldMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := file + heldMetaSuffix + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file+heldMetaSuffix)
}

// Held lists the files held, each with whether it changed after it was
// replaced. A held file without its record (a crash between the two) is
// released.
func (d *Dir) Held() ([]Held, error) {
	if d.holdDir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(d.holdDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Held
	for _, e := range ents {
		name := e.Name()
		if strings.Contains(name, ".") {
			continue // a record, or a record being written
		}
		file := filepath.Join(d.holdDir, name)
		m, err := readHeldMeta(file)
		if errors.Is(err, fs.ErrNotExist) {
			os.Remove(file)
			continue
		}
		if err != nil {
			return out, err
		}
		fi, err := os.Lstat(file)
		if err != nil {
			continue
		}
		now := localStat(fi)
		changed := now.Size != m.Stat.Size || now.MTimeNs != m.Stat.MTimeNs || now.CTimeNs != m.Stat.CTimeNs ||
			m.Expect != (cache.LocalStat{}) && (now.Size != m.Expect.Size || now.MTimeNs != m.Expect.MTimeNs)
		if m.Copied {
			// A copy: no program writes to it, and it was taken when
			// the file was replaced, after the caller's look.
			changed = false
		}
		out = append(out, Held{ID: name, Path: m.Path, Age: d.clock.Now().Sub(m.Since), Checks: m.Checks, Changed: changed,
			ModTime: fi.ModTime(), Mode: fi.Mode(), Deleted: m.Deleted, Origin: m.Origin})
	}
	return out, nil
}

func readHeldMeta(file string) (heldMeta, error) {
	var m heldMeta
	b, err := os.ReadFile(file + heldMetaSuffix)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", file+heldMetaSuffix, err)
	}
	return m, nil
}

// Checked records that h was found unchanged once more.
func (d *Dir) Checked(h Held) error {
	file := filepath.Join(d.holdDir, h.ID)
	m, err := readHeldMeta(file)
	if err != nil {
		return err
	}
	m.Checks++
	return writeHeldMeta(file, m)
}

// HeldFile is the held file h in the hold directory, for a caller that
// keeps it (a version store links it) before Release.
func (d *Dir) HeldFile(h Held) string { return filepath.Join(d.holdDir, h.ID) }

// OpenHeld opens the held file h for reading.
func (d *Dir) OpenHeld(h Held) (*os.File, error) {
	return os.Open(filepath.Join(d.holdDir, h.ID))
}

// Release lets go of the held file h.
func (d *Dir) Release(h Held) error {
	file := filepath.Join(d.holdDir, h.ID)
	err := os.Remove(file + heldMetaSuffix)
	if rerr := os.Remove(file); err == nil || errors.Is(err, fs.ErrNotExist) {
		err = rerr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// copyOut copies the regular file name of dir to dst (a new file), with
// its mode and modification time: a hold on another file system.
func copyOut(dir *os.Root, name, dst string) (err error) {
	in, err := dir.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()|0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(NewSparseWriter(out, 0), in); err != nil {
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	if err := out.Chmod(fi.Mode().Perm()); err != nil { // whatever the umask
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, time.Time{}, fi.ModTime())
}
