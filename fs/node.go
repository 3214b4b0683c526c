package fs

import (
	"context"
	"path"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/escalefs/escalefs/cache/meta"
)

// node is a loopback node that reports the changes made through it.
type node struct {
	*gofs.LoopbackNode
	ev   Events
	mods Modifiers // nil: no modifiers, the backing files' modes as they are
	// writers counts the node's handles open for writing (Server.Writing).
	writers atomic.Int32
	// writes counts the write requests the process served, for every
	// node of the mount (Server.WritesServed).
	writes *atomic.Int64
	// view is what the mount's options change in the attributes shown,
	// for every node of the mount.
	view *attrView
	// rootFd is the backing directory, open, for every node of the mount
	// (see at.go).
	rootFd *int
	// versions is set on the root only: its .escalefs/versions tree.
	versions VersionSource
	// local keeps what changes through the mount replace, for every node
	// of the mount (nil: nothing).
	local LocalVersions
	// kept is the file as it was when it was last kept, overwritten.
	kept atomic.Pointer[keptStat]
}

var (
	_ gofs.NodeWrapChilder   = (*node)(nil)
	_ gofs.NodeOpener        = (*node)(nil)
	_ gofs.NodeCreater       = (*node)(nil)
	_ gofs.NodeSetattrer     = (*node)(nil)
	_ gofs.NodeRenamer       = (*node)(nil)
	_ gofs.NodeUnlinker      = (*node)(nil)
	_ gofs.NodeRmdirer       = (*node)(nil)
	_ gofs.NodeMkdirer       = (*node)(nil)
	_ gofs.NodeSymlinker     = (*node)(nil)
	_ gofs.NodeLinker        = (*node)(nil)
	_ gofs.NodeGetattrer     = (*node)(nil)
	_ gofs.NodeLookuper      = (*node)(nil)
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(_ context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &node{LoopbackNode: ln, ev: n.ev, mods: n.mods, writes: n.writes, view: n.view, rootFd: n.rootFd, local: n.local}
	}
	return ops
}

// rel is the node's path from the root, slash-separated ("" for the root).
func (n *node) rel() string {
	return n.Path(n.RootData.RootNode.EmbeddedInode())
}

// child is the path of the entry name of the directory n.
func (n *node) child(name string) string {
	return path.Join(n.rel(), name)
}

func (n *node) changed(rel string) {
	if n.ev != nil && rel != "" {
		n.ev.Changed(rel)
	}
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if writeOpen(flags) && n.protected() {
		// w-: protected here, from the user as from the puller.
		return nil, 0, syscall.EACCES
	}
	if replacesContent(flags) {
		n.keepOverwritten()
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	return n.wrap(fh, flags), fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	// A file created with the sticky bit is r- from the start, before
	// anything of it can be pushed; the backing file never gets the bit.
	private := n.mods != nil && mode&syscall.S_ISVTX != 0
	ch, fh, errno := n.createAt(ctx, name, flags, mode&^syscall.S_ISVTX, out)
	if errno != 0 {
		return ch, fh, 0, errno
	}
	if private {
		u := meta.AccessUpdate{SetRead: true, Read: meta.PermDeny}
		if errno := n.setModifiers(ctx, n.child(name), u); errno != 0 {
			if r, ok := fh.(gofs.FileReleaser); ok {
				r.Release(ctx)
			}
			_ = n.unlinkAt(name, 0)
			return nil, nil, 0, errno
		}
		n.mark(n.child(name), &out.Attr)
	}
	// Reported when the handle is closed, not now: the engine would push
	// the empty file first.
	if cn, ok := ch.Operations().(*node); ok {
		fh = cn.wrap(fh, flags|syscall.O_WRONLY)
	}
	return ch, fh, 0, 0
}

// wrap returns fh reporting its node's path when it was opened for writing.
func (n *node) wrap(fh gofs.FileHandle, flags uint32) gofs.FileHandle {
	lf, ok := fh.(*gofs.LoopbackFile)
	if !ok || flags&syscall.O_ACCMODE == syscall.O_RDONLY && flags&syscall.O_TRUNC == 0 {
		return fh
	}
	n.writers.Add(1)
	return &handle{LoopbackFile: lf, n: n}
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	h, viaHandle := f.(*handle)
	if viaHandle {
		// The loopback's Setattr uses the handle's descriptor when it
		// is one of its own.
		f = h.LoopbackFile
	}
	if errno := n.accessSetattr(ctx, in); errno != 0 {
		return errno
	}
	if in.Valid&fuse.FATTR_SIZE != 0 && !viaHandle {
		n.keepOverwritten() // truncate(2), or the truncation of an open with O_TRUNC
	}
	errno := n.setattrAt(ctx, f, in, out)
	if errno == 0 {
		n.mark(n.rel(), &out.Attr)
	}
	if errno == 0 && !viaHandle {
		// Through a handle (ftruncate, the truncation of an open with
		// O_TRUNC), the file is being written: it is reported when it
		// is closed.
		n.changed(n.rel())
	}
	return errno
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	from := n.child(name)
	to := ""
	if p, ok := newParent.(*node); ok {
		to = p.child(newName)
	}
	if flags&(unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE) == 0 && to != from {
		n.keepLocal(to, RenamedOver)
	}
	errno := n.renameAt(name, newParent, newName, flags)
	if errno == 0 {
		n.changed(from)
		n.changed(to)
	}
	return errno
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.keepLocal(n.child(name), Unlinked)
	errno := n.unlinkAt(name, 0)
	if errno == 0 {
		n.changed(n.child(name))
	}
	return errno
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	errno := n.unlinkAt(name, unix.AT_REMOVEDIR)
	if errno == 0 {
		n.changed(n.child(name))
	}
	return errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, errno := n.mkdirAt(ctx, name, mode, out)
	if errno == 0 {
		n.view.apply(&out.Attr)
		n.changed(n.child(name))
	}
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, errno := n.symlinkAt(ctx, target, name, out)
	if errno == 0 {
		n.view.apply(&out.Attr)
		n.changed(n.child(name))
	}
	return ch, errno
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, errno := n.linkAt(ctx, target, name, out)
	if errno == 0 {
		n.mark(n.child(name), &out.Attr)
		n.changed(n.child(name))
	}
	return ch, errno
}

// handle is a file opened for writing through the mount: its node's path is
// reported when it is released (the last close), so the engine pushes it
// without a rescan. Under FUSE passthrough the kernel writes to the backing
// file itself, so the release cannot know whether anything was written: it
// reports the path anyway, and the engine finds out from the file's
// fingerprint.
type handle struct {
	*gofs.LoopbackFile
	n *node
}

var (
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileFlusher  = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
)

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.n.writes != nil {
		h.n.writes.Add(1)
	}
	return h.LoopbackFile.Write(ctx, data, off)
}

// Flush answers ENOSYS, so that the kernel stops sending FLUSH: a close
// then costs no round trip. The kernel still writes back a mapped file's
// dirty pages before close returns, releases POSIX locks with a SETLK of
// its own, and sends RELEASE (which reports the file) after the last close.
func (h *handle) Flush(context.Context) syscall.Errno {
	return syscall.ENOSYS
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	errno := h.LoopbackFile.Release(ctx)
	h.n.writers.Add(-1)
	h.n.changed(h.n.rel())
	return errno
}
