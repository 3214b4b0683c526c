package fs

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/escalefs/escalefs/cache/meta"
)

// Modifiers keeps the access modifiers of the synchronized paths (the
// engine's): r- never pushes a file, w- keeps pulled versions of it beside
// it as conflict copies. Paths are relative to the root, slash-separated.
type Modifiers interface {
	// Access returns the modifiers of rel, and whether rel is known.
	Access(rel string) (meta.Access, bool, error)
	// SetAccess changes the modifiers of rel, which must be known.
	SetAccess(ctx context.Context, rel string, u meta.AccessUpdate) (meta.Access, error)
	// Known makes rel known (scans it) if it is not yet; the error wraps
	// fs.ErrNotExist when rel is not synchronized (e.g. filtered out).
	Known(ctx context.Context, rel string) error
}

// AccessXattr is the extended attribute that holds a path's modifiers in
// Escale's notation ("r-w+"; empty when none is set).
const AccessXattr = "user.escalefs.access"

// The modifiers of a regular file show in its mode: w- without any write
// bit, r- with the sticky bit, which ordinary permissions never set on a
// file. Directories and symbolic links are shown as they are.
const (
	writeBits  = 0o222
	ownerWrite = 0o200
)

func isRegular(mode uint32) bool { return mode&syscall.S_IFMT == syscall.S_IFREG }

// present returns the mode of a regular file as the mount shows it: the
// backing file's mode with the marks of a.
func present(mode uint32, a meta.Access) uint32 {
	if !isRegular(mode) {
		return mode
	}
	mode &^= syscall.S_ISVTX
	if a.Read == meta.PermDeny {
		mode |= syscall.S_ISVTX
	}
	if a.Write == meta.PermDeny {
		mode &^= writeBits
	}
	return mode
}

// access returns the modifiers of the node at rel (none without Modifiers,
// or when they cannot be read: the mode then shows the file as it is).
func (n *node) access(rel string) meta.Access {
	if n.mods == nil {
		return meta.Access{}
	}
	a, _, err := n.mods.Access(rel)
	if err != nil {
		return meta.Access{}
	}
	return a
}

// mark sets the marks of the modifiers of rel on attr, then what the
// uid=, gid= and umask= options change.
func (n *node) mark(rel string, attr *fuse.Attr) {
	if n.mods != nil && isRegular(attr.Mode) {
		attr.Mode = present(attr.Mode, n.access(rel))
	}
	n.view.apply(attr)
}

// protected reports whether the node is a w- file.
func (n *node) protected() bool {
	return n.mods != nil && n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFREG &&
		n.access(n.rel()).Write == meta.PermDeny
}

// writeOpen reports whether open flags write or truncate the file.
func writeOpen(flags uint32) bool {
	return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// chmodUpdate is what a chmod of a regular file to mode m means for its
// modifiers, given its backing mode and modifiers a, and the mode to give
// the backing file. Clearing every write bit sets w-, adding the owner's
// write bit sets w+; setting the sticky bit sets r-, clearing it unsets r
// (r?: the node's mode decides again). The marks themselves never reach the
// backing file: it keeps its write bits under w-, and never gets the sticky
// bit.
func chmodUpdate(m, backing uint32, a meta.Access) (meta.AccessUpdate, uint32) {
	shown := present(backing, a)
	var u meta.AccessUpdate
	switch {
	case m&writeBits == 0 && a.Write != meta.PermDeny:
		u.SetWrite, u.Write = true, meta.PermDeny
	case m&ownerWrite != 0 && shown&ownerWrite == 0:
		u.SetWrite, u.Write = true, meta.PermAllow
	}
	switch {
	case m&syscall.S_ISVTX != 0 && a.Read != meta.PermDeny:
		u.SetRead, u.Read = true, meta.PermDeny
	case m&syscall.S_ISVTX == 0 && a.Read == meta.PermDeny:
		u.SetRead, u.Read = true, meta.PermUnset
	}
	out := m &^ syscall.S_ISVTX
	if m&writeBits == 0 {
		out |= backing & writeBits
	}
	return u, out
}

// setModifiers applies u to rel, scanning rel first when the engine does
// not know it yet.
func (n *node) setModifiers(ctx context.Context, rel string, u meta.AccessUpdate) syscall.Errno {
	if err := n.mods.Known(ctx, rel); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			// Not synchronized (filtered out): it has no modifiers.
			return syscall.EPERM
		}
		return syscall.EIO
	}
	if _, err := n.mods.SetAccess(ctx, rel, u); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return syscall.EPERM
		}
		return syscall.EIO
	}
	return 0
}

// accessSetattr applies what in asks of the modifiers of the regular file
// n, and rewrites in's mode for the backing file. A size change of a w-
// file is refused.
func (n *node) accessSetattr(ctx context.Context, in *fuse.SetAttrIn) syscall.Errno {
	if n.mods == nil || n.StableAttr().Mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0
	}
	rel := n.rel()
	a := n.access(rel)
	if _, ok := in.GetSize(); ok && a.Write == meta.PermDeny {
		return syscall.EACCES
	}
	m, ok := in.GetMode()
	if !ok {
		return 0
	}
	var st syscall.Stat_t
	if _, err := n.statAt(n.at(), &st); err != nil {
		return gofs.ToErrno(err)
	}
	u, backing := chmodUpdate(m, st.Mode, a)
	if u.SetRead || u.SetWrite {
		if errno := n.setModifiers(ctx, rel, u); errno != 0 {
			return errno
		}
	}
	in.Mode = backing
	return 0
}

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		f = h.LoopbackFile
	}
	errno := n.getattrAt(ctx, f, out)
	if errno == 0 {
		n.mark(n.rel(), &out.Attr)
	}
	return errno
}

// Lookup also gives the attributes of the entries of READDIRPLUS.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.versions != nil && name == ControlDir && n.rel() == "" {
		out.Mode = syscall.S_IFDIR | 0o555
		return n.NewInode(ctx, &vdir{src: n.versions, top: true}, gofs.StableAttr{Mode: syscall.S_IFDIR}), 0
	}
	ch, errno := n.lookupAt(ctx, name, out)
	if errno == 0 {
		n.mark(n.child(name), &out.Attr)
	}
	return ch, errno
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != AccessXattr || n.mods == nil {
		return n.getxattrAt(attr, dest)
	}
	v := n.access(n.rel()).String()
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.mods == nil {
		return n.listxattrAt(dest)
	}
	var list []byte
	err := n.shortPath(func(p string) (err error) {
		list, err = backingXattrs(p)
		return err
	})
	if err != nil {
		return 0, gofs.ToErrno(err)
	}
	var names []string
	for _, name := range strings.Split(string(bytes.TrimSuffix(list, []byte{0})), "\x00") {
		if name != "" && name != AccessXattr {
			names = append(names, name)
		}
	}
	names = append(names, AccessXattr)
	all := strings.Join(names, "\x00") + "\x00"
	if len(dest) < len(all) {
		return uint32(len(all)), syscall.ERANGE
	}
	return uint32(copy(dest, all)), 0
}

// backingXattrs lists the extended attributes of the backing file p (none
// when its filesystem has none).
func backingXattrs(p string) ([]byte, error) {
	for {
		sz, err := unix.Llistxattr(p, nil)
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		list := make([]byte, sz)
		sz, err = unix.Llistxattr(p, list)
		if errors.Is(err, syscall.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return list[:sz], nil
	}
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr != AccessXattr || n.mods == nil {
		return n.setxattrAt(attr, data, flags)
	}
	v := strings.TrimSpace(strings.TrimRight(string(data), "\x00"))
	if v == "" {
		v = "r?w?"
	}
	u, err := meta.ParseAccess(v)
	if err != nil {
		return syscall.EINVAL
	}
	if errno := n.setModifiers(ctx, n.rel(), u); errno != 0 {
		return errno
	}
	n.attrChanged()
	return 0
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if attr != AccessXattr || n.mods == nil {
		return n.removexattrAt(attr)
	}
	rel := n.rel()
	if _, ok, err := n.mods.Access(rel); err != nil {
		return syscall.EIO
	} else if !ok {
		return 0
	}
	if _, err := n.mods.SetAccess(ctx, rel, meta.AccessUpdate{SetRead: true, SetWrite: true}); err != nil {
		return syscall.EIO
	}
	n.attrChanged()
	return 0
}

// attrChanged drops the kernel's cached attributes of n, whose marks
// changed. It is sent from a goroutine: the request that changed them is
// still being answered.
func (n *node) attrChanged() {
	go func() { _ = n.NotifyContent(-1, 0) }()
}
