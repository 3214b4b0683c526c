package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ownerAndRoot serves only the mount's owner and root (allow_root): the
// kernel lets every user through (allow_other), and each request that
// names a path or opens a file is refused with EACCES for the others, as
// libfuse does. Requests on a file handle need an open that passed.
type ownerAndRoot struct {
	fuse.RawFileSystem
	owner uint32
}

func (o *ownerAndRoot) denied(h *fuse.InHeader) bool {
	return h.Caller.Uid != o.owner && h.Caller.Uid != 0
}

func (o *ownerAndRoot) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Lookup(c, h, name, out)
}

func (o *ownerAndRoot) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.GetAttr(c, in, out)
}

func (o *ownerAndRoot) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.SetAttr(c, in, out)
}

func (o *ownerAndRoot) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Mknod(c, in, name, out)
}

func (o *ownerAndRoot) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Mkdir(c, in, name, out)
}

func (o *ownerAndRoot) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Unlink(c, h, name)
}

func (o *ownerAndRoot) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Rmdir(c, h, name)
}

func (o *ownerAndRoot) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Rename(c, in, oldName, newName)
}

func (o *ownerAndRoot) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Link(c, in, name, out)
}

func (o *ownerAndRoot) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Symlink(c, h, target, name, out)
}

func (o *ownerAndRoot) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if o.denied(h) {
		return nil, fuse.EACCES
	}
	return o.RawFileSystem.Readlink(c, h)
}

func (o *ownerAndRoot) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Access(c, in)
}

func (o *ownerAndRoot) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if o.denied(h) {
		return 0, fuse.EACCES
	}
	return o.RawFileSystem.GetXAttr(c, h, attr, dest)
}

func (o *ownerAndRoot) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if o.denied(h) {
		return 0, fuse.EACCES
	}
	return o.RawFileSystem.ListXAttr(c, h, dest)
}

func (o *ownerAndRoot) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.SetXAttr(c, in, attr, data)
}

func (o *ownerAndRoot) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.RemoveXAttr(c, h, attr)
}

func (o *ownerAndRoot) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Create(c, in, name, out)
}

func (o *ownerAndRoot) Tmpfile(c <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Tmpfile(c, in, out)
}

func (o *ownerAndRoot) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Open(c, in, out)
}

func (o *ownerAndRoot) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.OpenDir(c, in, out)
}

func (o *ownerAndRoot) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if o.denied(h) {
		return fuse.EACCES
	}
	return o.RawFileSystem.StatFs(c, h, out)
}

func (o *ownerAndRoot) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if o.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return o.RawFileSystem.Statx(c, in, out)
}
