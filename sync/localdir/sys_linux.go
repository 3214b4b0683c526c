//go:build linux

package localdir

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escalefs/escalefs/cache"
)

// openReadFlags open a file for hashing without blocking on a FIFO that
// replaced it since it was listed.
const openReadFlags = os.O_RDONLY | syscall.O_NONBLOCK

// localStat returns the fingerprint of an Lstat or Fstat result.
func localStat(fi fs.FileInfo) cache.LocalStat {
	ls := cache.LocalStat{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ls.Inode = st.Ino
		ls.CTimeNs = st.Ctim.Nano()
	}
	return ls
}

// isNotDir reports whether err says a path component was not a directory
// or was a symlink where none may be followed.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// isNotEmpty reports whether err says a directory was not empty.
func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// renameAt renames fromName in fromDir to toName in toDir with renameat2.
// With noReplace, an existing toName fails with an error wrapping
// fs.ErrExist, atomically where the filesystem supports RENAME_NOREPLACE
// and by a check just before the rename where it does not.
func (d *Dir) renameAt(fromDir *os.Root, fromName string, toDir *os.Root, toName string, noReplace bool) error {
	return withFd(fromDir, func(ffd int) error {
		return withFd(toDir, func(tfd int) error {
			if noReplace {
				err := unix.Renameat2(ffd, fromName, tfd, toName, unix.RENAME_NOREPLACE)
				if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
					return renameErr(fromName, toName, err)
				}
				var st unix.Stat_t
				err = unix.Fstatat(tfd, toName, &st, unix.AT_SYMLINK_NOFOLLOW)
				if err == nil {
					return renameErr(fromName, toName, unix.EEXIST)
				}
				if !errors.Is(err, unix.ENOENT) {
					return renameErr(fromName, toName, err)
				}
			}
			return renameErr(fromName, toName, unix.Renameat(ffd, fromName, tfd, toName))
		})
	})
}

func renameErr(from, to string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: "renameat", Old: from, New: to, Err: err}
}

// withFd calls fn with a file descriptor of dir, valid during fn.
func withFd(dir *os.Root, fn func(fd int) error) error {
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// linkInto makes the file at src (an absolute path outside the folder) a
// second name, tmp, in dir, without copying: a hard link, which works only
// within one filesystem. Any failure leaves nothing and the caller copies.
func linkInto(dir *os.Root, src, tmp string) error {
	return withFd(dir, func(fd int) error {
		return unix.Linkat(unix.AT_FDCWD, src, fd, tmp, 0)
	})
}

// linkOut makes dst (an absolute name) a hard link to name in dir, without
// following a symlink.
func linkOut(dir *os.Root, name, dst string) error {
	return withFd(dir, func(fd int) error {
		return unix.Linkat(fd, name, unix.AT_FDCWD, dst, 0)
	})
}

// setLinkTime sets the modification (and access) time of the symlink name
// in dir itself, not of its target.
func setLinkTime(dir *os.Root, name string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return withFd(dir, func(fd int) error {
		return unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}
