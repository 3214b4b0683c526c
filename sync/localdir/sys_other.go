//go:build !linux

package localdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/escalefs/escalefs/cache"
)

// openReadFlags open a file for hashing.
const openReadFlags = os.O_RDONLY

// localStat returns the fingerprint of an Lstat or Fstat result. Where the
// platform's stat is not known here, Inode and CTimeNs stay zero (unknown).
func localStat(fi fs.FileInfo) cache.LocalStat {
	return cache.LocalStat{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano()}
}

func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// renameAt renames fromName in fromDir to toName in toDir by name, after
// checking, with noReplace, that toName does not exist (not atomically).
func (d *Dir) renameAt(fromDir *os.Root, fromName string, toDir *os.Root, toName string, noReplace bool) error {
	if noReplace {
		if _, err := toDir.Lstat(toName); err == nil {
			return &os.LinkError{Op: "rename", Old: fromName, New: toName, Err: fs.ErrExist}
		}
	}
	return os.Rename(filepath.Join(fromDir.Name(), fromName), filepath.Join(toDir.Name(), toName))
}

// linkInto is not available here; the caller copies.
func linkInto(dir *os.Root, src, tmp string) error { return errors.ErrUnsupported }

// linkOut is not done here: nothing is held.
func linkOut(dir *os.Root, name, dst string) error { return errors.ErrUnsupported }

// setLinkTime leaves a symlink's time as the system gives it.
func setLinkTime(dir *os.Root, name string, t time.Time) error { return nil }
