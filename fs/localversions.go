package fs

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// LocalVersions keeps what a change made through the mount is about to
// replace (escalefs mount --versions-local). The mount calls Keep before
// the change, with the backing file open for reading; Keep must not
// block for long, as the caller waits for it.
type LocalVersions interface {
	Keep(rel string, f *os.File, how Replaced)
}

// Replaced says how a change through the mount replaces a file.
type Replaced int

const (
	// Overwritten: it is opened for writing, or truncated; its content
	// changes in place, so only a copy can keep it.
	Overwritten Replaced = iota + 1
	// RenamedOver: a rename puts another file at its name; its inode
	// loses the name and can be kept as it is.
	RenamedOver
	// Unlinked: it is deleted.
	Unlinked
)

// keptStat is what a file was when it was last overwritten and kept.
type keptStat struct {
	ino, size, mtime, ctime int64
}

// keepOverwritten keeps n's own file before it is overwritten, unless it
// is as it was when it was last kept: the kernel truncates a file opened
// with O_TRUNC after the open (which kept it), with a SETATTR of its own.
func (n *node) keepOverwritten() {
	n.keepIf(n.rel(), Overwritten, func(st *syscall.Stat_t) bool {
		now := keptStat{int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano()}
		if last := n.kept.Swap(&now); last != nil && *last == now {
			return false
		}
		return true
	})
}

// keepLocal hands the regular, non-empty backing file rel to the mount's
// LocalVersions before a change replaces it. A file that cannot be
// opened (gone, a symbolic link, mode 0000) is not kept.
func (n *node) keepLocal(rel string, how Replaced) { n.keepIf(rel, how, nil) }

// keepIf is keepLocal, when ok (if set) agrees given the file's stat.
func (n *node) keepIf(rel string, how Replaced, ok func(*syscall.Stat_t) bool) {
	if n.local == nil || rel == "" {
		return
	}
	fd, err := unix.Openat(*n.rootFd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size == 0 {
		return
	}
	if ok != nil && !ok(&st) {
		return
	}
	n.local.Keep(rel, f, how)
}

// replacesContent reports whether an open with flags may change what the
// file holds (an append only adds to it).
func replacesContent(flags uint32) bool {
	return writeOpen(flags) && (flags&syscall.O_APPEND == 0 || flags&syscall.O_TRUNC != 0)
}
