package fs

import (
	"context"
	"os"
	"path"
	"strconv"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The loopback of go-fuse names a backing file by its absolute path, the
// backing directory's path followed by the file's path in the mount, so a
// path that a local file system takes (up to 4095 bytes) fails with
// ENAMETOOLONG once the two together pass the kernel's limit. The methods
// here reach the backing files relative to the backing directory, opened
// once (the *at system calls), and only the path in the mount counts.

// openRoot opens the backing directory for the *at calls of the nodes.
func openRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// at is the node's path relative to the backing directory ("." for the
// root).
func (n *node) at() string {
	if rel := n.rel(); rel != "" {
		return rel
	}
	return "."
}

// statAt stats p (relative to the backing directory) without following a
// final symbolic link, and returns the generation for its inode number: its
// birth time where the file system keeps one.
func (n *node) statAt(p string, st *syscall.Stat_t) (gen uint64, err error) {
	return statxFill(*n.rootFd, p, unix.AT_SYMLINK_NOFOLLOW, st)
}

// statxFill fills st from statx(2) of p relative to dirfd, with flags.
func statxFill(dirfd int, p string, flags int, st *syscall.Stat_t) (gen uint64, err error) {
	var x unix.Statx_t
	if err := unix.Statx(dirfd, p, flags|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x); err != nil {
		return 0, err
	}
	*st = syscall.Stat_t{
		Dev:     unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:     x.Ino,
		Nlink:   uint64(x.Nlink),
		Mode:    uint32(x.Mode),
		Uid:     x.Uid,
		Gid:     x.Gid,
		Rdev:    unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size:    int64(x.Size),
		Blksize: int64(x.Blksize),
		Blocks:  int64(x.Blocks),
		Atim:    syscall.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)},
		Mtim:    syscall.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)},
		Ctim:    syscall.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)},
	}
	gen = 1
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return gen, nil
}

// newChild makes the inode of the backing file name of n, which st
// describes.
func (n *node) newChild(ctx context.Context, st *syscall.Stat_t, gen uint64) *gofs.Inode {
	// The inode number is the backing file's, with the device mixed in
	// when it is not the backing directory's (a mount below it), as the
	// loopback of go-fuse does, so that numbers agree with the root's.
	swap := func(d uint64) uint64 { return d<<32 | d>>32 }
	id := gofs.StableAttr{
		Mode: st.Mode,
		Gen:  gen,
		Ino:  swap(st.Dev) ^ swap(n.RootData.Dev) ^ st.Ino,
	}
	ch := &node{
		LoopbackNode: &gofs.LoopbackNode{RootData: n.RootData},
		ev:           n.ev, mods: n.mods, writes: n.writes, view: n.view, rootFd: n.rootFd, local: n.local,
	}
	return n.NewInode(ctx, ch, id)
}

// entry stats the new backing file p, a child of n, fills out and makes
// its inode. When the stat fails, undo removes what was made.
func (n *node) entry(ctx context.Context, p string, out *fuse.EntryOut, undo func()) (*gofs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	gen, err := n.statAt(p, &st)
	if err != nil {
		if undo != nil {
			undo()
		}
		return nil, gofs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.newChild(ctx, &st, gen), 0
}

// keepOwner gives p the caller's owner when the mount runs as root, as a
// local file system would.
func (n *node) keepOwner(ctx context.Context, p string) {
	if os.Getuid() != 0 {
		return
	}
	if c, ok := fuse.FromContext(ctx); ok {
		_ = unix.Fchownat(*n.rootFd, p, int(c.Uid), int(c.Gid), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// shortPath calls fn with a short path to the node's backing file, for the
// calls that take only a path (the l*xattr family, truncate): its parent
// directory, opened relative to the backing directory, through
// /proc/self/fd.
func (n *node) shortPath(fn func(p string) error) error {
	rel := n.rel()
	if rel == "" {
		return fn(n.RootData.Path)
	}
	dir, name := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	dfd, err := unix.Openat(*n.rootFd, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return fn("/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name)
}

func (n *node) lookupAt(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.entry(ctx, n.child(name), out, nil)
}

func (n *node) mkdirAt(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := n.child(name)
	if err := unix.Mkdirat(*n.rootFd, p, mode); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.keepOwner(ctx, p)
	return n.entry(ctx, p, out, func() { _ = unix.Unlinkat(*n.rootFd, p, unix.AT_REMOVEDIR) })
}

// Mknod makes FIFOs, sockets and device nodes here; they are not
// synchronized.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := n.child(name)
	if err := unix.Mknodat(*n.rootFd, p, mode, int(rdev)); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.keepOwner(ctx, p)
	ch, errno := n.entry(ctx, p, out, func() { _ = unix.Unlinkat(*n.rootFd, p, 0) })
	if errno == 0 {
		n.view.apply(&out.Attr)
	}
	return ch, errno
}

func (n *node) symlinkAt(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := n.child(name)
	if err := unix.Symlinkat(target, *n.rootFd, p); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.keepOwner(ctx, p)
	return n.entry(ctx, p, out, func() { _ = unix.Unlinkat(*n.rootFd, p, 0) })
}

func (n *node) linkAt(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.RootData != n.RootData {
		return nil, syscall.EXDEV
	}
	if _, parent := t.EmbeddedInode().Parent(); parent == nil {
		// An O_TMPFILE file has no name to link from.
		return nil, syscall.EXDEV
	}
	p := n.child(name)
	if err := unix.Linkat(*n.rootFd, t.at(), *n.rootFd, p, 0); err != nil {
		return nil, gofs.ToErrno(err)
	}
	return n.entry(ctx, p, out, func() { _ = unix.Unlinkat(*n.rootFd, p, 0) })
}

func (n *node) createAt(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, syscall.Errno) {
	p := n.child(name)
	fd, err := unix.Openat(*n.rootFd, p, int(flags&^syscall.O_APPEND)|unix.O_CREAT|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, gofs.ToErrno(err)
	}
	n.keepOwner(ctx, p)
	var st syscall.Stat_t
	gen, err := statxFill(fd, "", unix.AT_EMPTY_PATH, &st)
	if err != nil {
		unix.Close(fd)
		return nil, nil, gofs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.newChild(ctx, &st, gen), gofs.NewLoopbackFile(fd), 0
}

// Tmpfile serves open(O_TMPFILE) in a directory of the mount.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	fd, err := unix.Openat(*n.rootFd, n.at(), int(flags&^syscall.O_APPEND)|unix.O_TMPFILE|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, 0, gofs.ToErrno(err)
	}
	var st syscall.Stat_t
	gen, err := statxFill(fd, "", unix.AT_EMPTY_PATH, &st)
	if err != nil {
		unix.Close(fd)
		return nil, nil, 0, gofs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	n.view.apply(&out.Attr)
	return n.newChild(ctx, &st, gen), gofs.NewLoopbackFile(fd), 0, 0
}

func (n *node) unlinkAt(name string, flags int) syscall.Errno {
	return gofs.ToErrno(unix.Unlinkat(*n.rootFd, n.child(name), flags))
}

func (n *node) renameAt(name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.RootData != n.RootData {
		return syscall.EXDEV
	}
	return gofs.ToErrno(unix.Renameat2(*n.rootFd, n.child(name), *n.rootFd, np.child(newName), uint(flags)))
}

// Readlink reads the target of a symbolic link.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		m, err := unix.Readlinkat(*n.rootFd, n.at(), buf)
		if err != nil {
			return nil, gofs.ToErrno(err)
		}
		if m < size {
			return buf[:m], 0
		}
	}
}

// OpendirHandle opens the backing directory of n for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fd, err := unix.Openat(*n.rootFd, n.at(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, gofs.ToErrno(err)
	}
	ds, errno := gofs.NewLoopbackDirStreamFd(fd)
	if errno != 0 {
		unix.Close(fd)
		return nil, 0, errno
	}
	return ds, 0, 0
}

// Readdir lists the backing directory of n.
func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	h, _, errno := n.OpendirHandle(ctx, 0)
	if errno != 0 {
		return nil, errno
	}
	return h.(gofs.DirStream), 0
}

// Statfs reports the file system of the backing directory.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Fstatfs(*n.rootFd, &s); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

func (n *node) getattrAt(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if g, ok := f.(gofs.FileGetattrer); ok && f != nil {
		return g.Getattr(ctx, out)
	}
	var st syscall.Stat_t
	if _, err := n.statAt(n.at(), &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// setattrAt changes what in asks of the backing file, through the handle f
// when there is one.
func (n *node) setattrAt(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if s, ok := f.(gofs.FileSetattrer); ok && f != nil {
		if errno := s.Setattr(ctx, in, out); errno != 0 {
			return errno
		}
		return n.getattrAt(ctx, f, out)
	}
	p := n.at()
	if m, ok := in.GetMode(); ok {
		if err := unix.Fchmodat(*n.rootFd, p, m, 0); err != nil {
			return gofs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchownat(*n.rootFd, p, u, g, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	// The size first, so that a time set with it is not overwritten.
	if sz, ok := in.GetSize(); ok {
		if err := n.shortPath(func(sp string) error { return syscall.Truncate(sp, int64(sz)) }); err != nil {
			return gofs.ToErrno(err)
		}
	}
	mt, mok := in.GetMTime()
	at, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(at.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mt.UnixNano())
		}
		if err := unix.UtimesNanoAt(*n.rootFd, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	return n.getattrAt(ctx, nil, out)
}

func (n *node) getxattrAt(attr string, dest []byte) (uint32, syscall.Errno) {
	var sz int
	err := n.shortPath(func(p string) (err error) {
		sz, err = unix.Lgetxattr(p, attr, dest)
		return err
	})
	return uint32(sz), gofs.ToErrno(err)
}

func (n *node) setxattrAt(attr string, data []byte, flags uint32) syscall.Errno {
	return gofs.ToErrno(n.shortPath(func(p string) error { return unix.Lsetxattr(p, attr, data, int(flags)) }))
}

func (n *node) removexattrAt(attr string) syscall.Errno {
	return gofs.ToErrno(n.shortPath(func(p string) error { return unix.Lremovexattr(p, attr) }))
}

func (n *node) listxattrAt(dest []byte) (uint32, syscall.Errno) {
	var sz int
	err := n.shortPath(func(p string) (err error) {
		sz, err = unix.Llistxattr(p, dest)
		return err
	})
	return uint32(sz), gofs.ToErrno(err)
}

// Statx serves statx(2) calls that ask for more than GETATTR carries (the
// birth time), with the same marks as Getattr.
func (n *node) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		f = h.LoopbackFile
	}
	if s, ok := f.(gofs.FileStatxer); ok && f != nil {
		if errno := s.Statx(ctx, flags, mask, out); errno != 0 {
			return errno
		}
	} else {
		var x unix.Statx_t
		if err := unix.Statx(*n.rootFd, n.at(), int(flags)|unix.AT_SYMLINK_NOFOLLOW, int(mask), &x); err != nil {
			return gofs.ToErrno(err)
		}
		out.FromStatx(&x)
	}
	a := fuse.Attr{Mode: uint32(out.Mode)}
	a.Owner.Uid, a.Owner.Gid = out.Uid, out.Gid
	n.mark(n.rel(), &a)
	out.Mode, out.Uid, out.Gid = uint16(a.Mode), a.Owner.Uid, a.Owner.Gid
	return 0
}
