package fs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// mountServer mounts root on mnt and serves it. Root mounts with mount(2)
// itself and needs no fusermount; where the kernel refuses that (a user
// namespace, a seccomp profile), and for every other user, fusermount3
// mounts. The mount flags (ro, noatime, noexec) go to mount(2) as bits and
// to fusermount3 as options, since the kernel refuses them as strings.
func mountServer(mnt string, root gofs.InodeEmbedder, gopts *gofs.Options, opts Options) (*fuse.Server, error) {
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV)
	strs := []string{}
	for _, f := range []struct {
		on   bool
		bit  uintptr
		name string
	}{
		{opts.ReadOnly, syscall.MS_RDONLY, "ro"},
		{opts.NoATime, syscall.MS_NOATIME, "noatime"},
		{opts.NoExec, syscall.MS_NOEXEC, "noexec"},
	} {
		if f.on {
			flags |= f.bit
			strs = append(strs, f.name)
		}
	}
	var directErr error
	if os.Geteuid() == 0 {
		direct := *gopts
		direct.DirectMountStrict = true
		direct.DirectMountFlags = flags
		srv, err := serve(mnt, root, &direct, opts)
		if err == nil {
			return srv, nil
		}
		directErr = err
		if _, ferr := findFusermount(); ferr != nil {
			return nil, fmt.Errorf("mount(2): %w (and no fusermount3 to fall back on)", err)
		}
	}
	viaHelper := *gopts
	viaHelper.Options = append(append([]string{}, gopts.Options...), strs...)
	srv, err := serve(mnt, root, &viaHelper, opts)
	if err != nil && directErr != nil {
		return nil, errors.Join(fmt.Errorf("mount(2): %w", directErr), fmt.Errorf("fusermount3: %w", err))
	}
	return srv, err
}

// serve is gofs.Mount, with the allow_root check between the kernel and
// the node filesystem when asked for.
func serve(mnt string, root gofs.InodeEmbedder, gopts *gofs.Options, opts Options) (*fuse.Server, error) {
	var raw fuse.RawFileSystem = gofs.NewNodeFS(root, gopts)
	if opts.AllowRoot && !opts.AllowOther {
		raw = &ownerAndRoot{RawFileSystem: raw, owner: uint32(os.Geteuid())}
	}
	srv, err := fuse.NewServer(raw, mnt, &gopts.MountOptions)
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		return nil, err
	}
	return srv, nil
}

// attrView is what the uid=, gid= and umask= options change in the
// attributes shown; the zero value changes nothing.
type attrView struct {
	uid, gid, umask *uint32
}

func newAttrView(opts Options) *attrView {
	return &attrView{uid: opts.UID, gid: opts.GID, umask: opts.Umask}
}

// apply changes attr as the options say.
func (v *attrView) apply(attr *fuse.Attr) {
	if v == nil {
		return
	}
	if v.uid != nil {
		attr.Owner.Uid = *v.uid
	}
	if v.gid != nil {
		attr.Owner.Gid = *v.gid
	}
	if v.umask != nil {
		attr.Mode &^= *v.umask & 0o777
	}
}
