package fs

import (
	"context"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/escalefs/escalefs/versions"
)

// VersionSource lists and opens the old versions the node kept of the
// folder's files (its version store), for the read-only tree
// .escalefs/versions of the mount's root.
type VersionSource interface {
	// List returns the versions of rel and of everything under it ("":
	// all), oldest first.
	List(rel string) ([]versions.Version, error)
	Open(v versions.Version) (*os.File, error)
}

// ControlDir is the name, in the mount's root, of the directory that
// holds versions/. It is not listed (as ZFS's .zfs), only looked up, and
// it is never synchronized.
const ControlDir = ".escalefs"

// versionName is how a version of a file named base shows in the tree:
// name~20261206-101010.ext.
func versionName(base string, t time.Time) string {
	ext := path.Ext(base)
	if ext == base {
		ext = "" // a dot file: .bashrc~20261206-101010
	}
	return strings.TrimSuffix(base, ext) + "~" + t.Local().Format("20060102-150405") + ext
}

// vdir is a directory of the read-only tree: the control directory itself
// (top), or versions/ and its subdirectories (rel: their path in the
// folder).
type vdir struct {
	gofs.Inode
	src VersionSource
	top bool
	rel string
}

// ventry is one entry of a vdir: a subdirectory or a version.
type ventry struct {
	dir bool
	v   versions.Version
}

// entries lists d's entries by name.
func (d *vdir) entries() (map[string]ventry, error) {
	if d.top {
		return map[string]ventry{"versions": {dir: true}}, nil
	}
	list, err := d.src.List(d.rel)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ventry)
	prefix := ""
	if d.rel != "" {
		prefix = d.rel + "/"
	}
	for _, v := range list {
		rest, ok := strings.CutPrefix(v.Path, prefix)
		if !ok || rest == "" {
			continue
		}
		if first, _, sub := strings.Cut(rest, "/"); sub {
			out[first] = ventry{dir: true}
			continue
		}
		name := versionName(rest, v.Time)
		if _, taken := out[name]; !taken {
			out[name] = ventry{v: v}
		}
	}
	return out, nil
}

var (
	_ gofs.NodeLookuper  = (*vdir)(nil)
	_ gofs.NodeReaddirer = (*vdir)(nil)
	_ gofs.NodeGetattrer = (*vdir)(nil)
	_ gofs.NodeCreater   = (*vdir)(nil)
	_ gofs.NodeMkdirer   = (*vdir)(nil)
	_ gofs.NodeUnlinker  = (*vdir)(nil)
	_ gofs.NodeRmdirer   = (*vdir)(nil)
	_ gofs.NodeRenamer   = (*vdir)(nil)
	_ gofs.NodeSymlinker = (*vdir)(nil)
	_ gofs.NodeSetattrer = (*vdir)(nil)
)

func (d *vdir) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	return 0
}

func (d *vdir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ents, err := d.entries()
	if err != nil {
		return nil, syscall.EIO
	}
	e, ok := ents[name]
	switch {
	case !ok:
		return nil, syscall.ENOENT
	case e.dir:
		rel := path.Join(d.rel, name)
		if d.top {
			rel = ""
		}
		out.Mode = syscall.S_IFDIR | 0o555
		return d.NewInode(ctx, &vdir{src: d.src, rel: rel}, gofs.StableAttr{Mode: syscall.S_IFDIR}), 0
	}
	f := &vfile{src: d.src, v: e.v}
	f.attr(&out.Attr)
	return d.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG}), 0
}

func (d *vdir) Readdir(context.Context) (gofs.DirStream, syscall.Errno) {
	ents, err := d.entries()
	if err != nil {
		return nil, syscall.EIO
	}
	var list []fuse.DirEntry
	for _, name := range slices.Sorted(maps.Keys(ents)) {
		mode := uint32(syscall.S_IFREG)
		if ents[name].dir {
			mode = syscall.S_IFDIR
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode})
	}
	return gofs.NewListDirStream(list), 0
}

// The tree is read-only.

func (d *vdir) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (d *vdir) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (d *vdir) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (d *vdir) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (d *vdir) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (d *vdir) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (d *vdir) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// vfile is a version, read-only.
type vfile struct {
	gofs.Inode
	src VersionSource
	v   versions.Version
}

var (
	_ gofs.NodeGetattrer = (*vfile)(nil)
	_ gofs.NodeOpener    = (*vfile)(nil)
	_ gofs.NodeSetattrer = (*vfile)(nil)
)

func (f *vfile) attr(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | uint32(f.v.Mode.Perm())&0o555
	a.Size = uint64(f.v.Size)
	a.SetTimes(nil, &f.v.ModTime, &f.v.Time)
}

func (f *vfile) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

func (f *vfile) Open(_ context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if writeOpen(flags) {
		return nil, 0, syscall.EROFS
	}
	file, err := f.src.Open(f.v)
	if err != nil {
		return nil, 0, syscall.EIO
	}
	return gofs.NewLoopbackFileFromOS(file), 0, 0
}

func (f *vfile) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
