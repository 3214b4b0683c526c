// Package fs presents a synchronized folder as a FUSE filesystem: a
// loopback over a backing directory (the node's cache of plaintext files)
// that tells the sync engine which paths changed through the mount, and
// lets the engine invalidate the kernel's caches of the paths it changed.
//
// The node methods stay thin: they call go-fuse's loopback and report the
// change; what a change means is the engine's business.
package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Events receives the paths changed through the mount, relative to its root
// and slash-separated (the engine's Notify).
type Events interface {
	Changed(rel string)
}

// Options configure Mount.
type Options struct {
	// Events receives the changes made through the mount; nil drops them.
	Events Events
	// Modifiers keeps the access modifiers that the mount shows as mode
	// bits and as the user.escalefs.access attribute, and that chmod and
	// setfattr set; nil shows the backing files as they are.
	Modifiers Modifiers
	// NonEmpty allows mounting over a directory that holds files (which
	// the mount hides until it is unmounted).
	NonEmpty bool
	// Name is the filesystem's name in the mount table (default escalefs).
	Name string
	// Debug logs every FUSE request.
	Debug bool
	// ReadOnly mounts read-only (ro): every change through the mount
	// fails with EROFS; pulled files still appear.
	ReadOnly bool
	// AllowOther lets every user use the mount (allow_other); AllowRoot
	// lets root use it beside the user who mounted it (allow_root). A
	// user who is not root may ask for either only where /etc/fuse.conf
	// says user_allow_other.
	AllowOther, AllowRoot bool
	// DefaultPermissions has the kernel check every access against the
	// modes and owners shown, as on a local filesystem
	// (default_permissions).
	DefaultPermissions bool
	// NoATime and NoExec are the mount flags noatime and noexec.
	NoATime, NoExec bool
	// UID and GID, when set, are shown as the owner and group of every
	// file (uid=, gid=). Umask, when set, clears its bits from every mode
	// shown (umask=); the files themselves keep theirs.
	UID, GID, Umask *uint32
	// Versions, if set, shows the node's old versions in the read-only
	// tree .escalefs/versions of the root (versions.go).
	Versions VersionSource
	// LocalVersions, if set, keeps what changes through the mount replace
	// or delete (localversions.go).
	LocalVersions LocalVersions
}

// MaxWrite is the largest write the kernel sends at once: 1 MiB, the limit
// of Linux 4.20 and later, so that sequential writes cost few round trips.
const MaxWrite = 1 << 20

// Timeouts of the kernel's caches. Only two parties change the backing
// directory: the mount itself, whose answers carry the new entries and
// attributes, and the engine, which invalidates every path it changes
// (Invalidate, from Config.OnChange: pulled files, deletions, conflict
// copies, access modifiers set with escalefs access). So the kernel may
// keep what it learned for long: a LOOKUP or GETATTR round trip per path
// component on every open or stat costs more than the whole operation on a
// local disk. A minute bounds how long a missed invalidation (a failed
// notify) could show stale names or attributes; new content always comes
// from the backing file (passthrough, or reads of a fresh open).
const (
	entryTimeout    = time.Minute
	attrTimeout     = time.Minute
	negativeTimeout = time.Minute
)

// Server is a mounted filesystem.
type Server struct {
	*fuse.Server
	root       *node
	mountpoint string
	backing    string
}

// ErrFUSEUnavailable is wrapped by the error of Mount when the kernel's
// FUSE device cannot be used.
var ErrFUSEUnavailable = errors.New("FUSE is unavailable")

// Mount mounts a loopback of backing on mountpoint and serves it until it is
// unmounted (Unmount, fusermount -u).
func Mount(ctx context.Context, mountpoint, backing string, opts Options) (*Server, error) {
	mnt, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, err
	}
	if err := Check(mnt, opts.NonEmpty); err != nil {
		return nil, err
	}
	backing, err = filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	lroot, err := gofs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("backing directory %s: %w", backing, err)
	}
	ln := lroot.(*gofs.LoopbackNode)
	rootFd, err := openRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("backing directory %s: %w", backing, err)
	}
	root := &node{LoopbackNode: ln, ev: opts.Events, mods: opts.Modifiers, writes: new(atomic.Int64), view: newAttrView(opts),
		rootFd: &rootFd, versions: opts.Versions, local: opts.LocalVersions}
	ln.RootData.RootNode = root

	name := opts.Name
	if name == "" {
		name = "escalefs"
	}
	et, at, nt := entryTimeout, attrTimeout, negativeTimeout
	gopts := &gofs.Options{
		EntryTimeout:    &et,
		AttrTimeout:     &at,
		NegativeTimeout: &nt,
		// A mode of 0000 is what the file has, not a mode to fill in.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			MaxWrite:   MaxWrite,
			FsName:     backing,
			Name:       name,
			Debug:      opts.Debug,
			AllowOther: opts.AllowOther || opts.AllowRoot,
			// flock and fcntl locks are taken on the backing files,
			// so that they hold against the engine's installs and
			// other programs on this node, not only within the mount.
			EnableLocks: true,
		},
	}
	if opts.DefaultPermissions {
		gopts.Options = append(gopts.Options, "default_permissions")
	}
	srv, err := mountServer(mnt, root, gopts, opts)
	if err != nil {
		unix.Close(rootFd)
		return nil, mountFailed(mnt, err)
	}
	go func() {
		srv.Wait()
		unix.Close(rootFd)
	}()
	return &Server{Server: srv, root: root, mountpoint: mnt, backing: backing}, nil
}

// Passthrough reports whether the kernel offered FUSE passthrough (Linux
// 6.9 and later): reads and writes of an open file then go from the kernel
// to the backing file without the process, when it may register backing
// files (CAP_SYS_ADMIN); otherwise the process serves them (loopback).
// WritesServed tells which happened.
func (s *Server) Passthrough() bool {
	ks := s.KernelSettings()
	return ks != nil && ks.Flags64()&fuse.CAP_PASSTHROUGH != 0
}

// WritesServed is how many write requests the process has served: none
// while passthrough carries every write.
func (s *Server) WritesServed() int64 { return s.root.writes.Load() }

// Writing reports whether the file at rel (slash-separated, relative to the
// root) is open for writing through the mount. It follows the kernel's
// view: a file renamed while open is found under its new name.
func (s *Server) Writing(rel string) bool {
	rel = strings.Trim(path.Clean("/"+rel), "/")
	if rel == "" {
		return false
	}
	in := s.root.EmbeddedInode()
	for _, c := range strings.Split(rel, "/") {
		if in = in.GetChild(c); in == nil {
			return false
		}
	}
	n, ok := in.Operations().(*node)
	return ok && n.writers.Load() > 0
}

// Mountpoint is the absolute path of the mount.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Invalidate tells the kernel that rel (slash-separated, relative to the
// root) changed in the backing directory: its entry in its parent is looked
// up again and its cached content and attributes dropped. When a directory
// on the way is unknown to the kernel, its own entry is dropped instead (it
// may be new, its absence cached). Errors are ignored: the timeouts bound a
// missed invalidation.
func (s *Server) Invalidate(rel string) {
	rel = strings.Trim(path.Clean("/"+rel), "/")
	if rel == "" {
		_ = s.root.NotifyContent(0, 0)
		return
	}
	parent := s.root.EmbeddedInode()
	dir, name := path.Split(rel)
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		next := parent.GetChild(c)
		if next == nil {
			// A directory the kernel does not know, or knows to
			// be missing: forget that.
			_ = parent.NotifyEntry(c)
			return
		}
		parent = next
	}
	if child := parent.GetChild(name); child != nil {
		_ = child.NotifyContent(0, 0)
	}
	_ = parent.NotifyEntry(name)
}

// Check reports what would keep Mount from mounting on mountpoint (an
// absolute path): the mountpoint missing, not a directory, already mounted
// or not empty (unless nonEmpty), or FUSE unavailable. Each error says how
// to fix it.
func Check(mountpoint string, nonEmpty bool) error {
	if err := checkMountpoint(mountpoint, nonEmpty); err != nil {
		return err
	}
	return checkFUSE()
}

// Stop unmounts the filesystem and waits up to grace for the server to
// finish. A busy mount (a process working in it) is detached instead (a
// lazy unmount): it disappears from the namespace at once and is served
// until its last open file closes or grace ends.
func (s *Server) Stop(grace time.Duration) error {
	err := s.Unmount()
	if err != nil {
		err = fmt.Errorf("unmounting %s: %w", s.mountpoint, err)
		if fm, ferr := findFusermount(); ferr == nil {
			if out, lerr := exec.Command(fm, "-u", "-z", s.mountpoint).CombinedOutput(); lerr != nil {
				err = fmt.Errorf("%w; lazy unmount: %v %s", err, lerr, strings.TrimSpace(string(out)))
			} else {
				err = nil
			}
		} else if os.Geteuid() == 0 {
			if lerr := syscall.Unmount(s.mountpoint, syscall.MNT_DETACH); lerr != nil {
				err = fmt.Errorf("%w; lazy unmount: %v", err, lerr)
			} else {
				err = nil
			}
		}
	}
	done := make(chan struct{})
	go func() {
		s.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		if err == nil {
			err = fmt.Errorf("%s still busy %s after unmounting", s.mountpoint, grace)
		}
	}
	return err
}

// checkMountpoint explains what is wrong with mnt as a mountpoint.
func checkMountpoint(mnt string, nonEmpty bool) error {
	fi, err := os.Stat(mnt)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("%s is a FUSE mount whose process is gone: unmount it first (fusermount -u %s)", mnt, mnt)
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("mountpoint %s does not exist: create it first (mkdir -p %s)", mnt, mnt)
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", mnt, err)
	case !fi.IsDir():
		return fmt.Errorf("mountpoint %s is not a directory: give an empty directory (mkdir -p DIR)", mnt)
	}
	if mounted, fstype := isMounted(mnt); mounted {
		return fmt.Errorf("%s is already mounted (%s): unmount it first (fusermount -u %s), or choose another mountpoint",
			mnt, fstype, mnt)
	}
	if !nonEmpty {
		d, err := os.Open(mnt)
		if err != nil {
			return fmt.Errorf("mountpoint %s: %w", mnt, err)
		}
		names, err := d.Readdirnames(1)
		d.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("mountpoint %s: %w", mnt, err)
		}
		if len(names) > 0 {
			return fmt.Errorf("mountpoint %s is not empty (it holds %s): mounting would hide its files; "+
				"use an empty directory, or give --nonempty to mount over them", mnt, names[0])
		}
	}
	return nil
}

// isMounted reports whether mnt is the mountpoint of a mount of this
// process's namespace, and that mount's filesystem type.
func isMounted(mnt string) (bool, string) {
	fstype, ok := Mounts()[mnt]
	return ok, fstype
}

// Mounts returns the mountpoints of this process's mount namespace, each
// with its filesystem type ("fuse.escalefs", "ext4"), from
// /proc/self/mountinfo; none where that cannot be read. Where mounts are
// stacked, the type is the topmost one's.
func Mounts() map[string]string {
	mounts := make(map[string]string)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mounts
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		fstype := ""
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
			}
		}
		mounts[unescapeMountinfo(fields[4])] = fstype
	}
	return mounts
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a path in
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

const fuseHelp = "install fuse3 (apt install fuse3, dnf install fuse3), check that /dev/fuse exists and that you may read " +
	"and write it (ls -l /dev/fuse), and in a container run it with --device /dev/fuse --cap-add SYS_ADMIN"

// fuseDevice is the kernel's FUSE device (a variable for the tests).
var fuseDevice = "/dev/fuse"

// checkFUSE reports ErrFUSEUnavailable when /dev/fuse cannot be opened, or
// when an unprivileged user has no fusermount to mount with.
func checkFUSE() error {
	// The package first: without it, nothing else matters to a user.
	if os.Geteuid() != 0 {
		if _, err := findFusermount(); err != nil {
			return fmt.Errorf("%w: fusermount3 is not installed; install the fuse3 package (sudo apt install fuse3, "+
				"or sudo dnf install fuse3)", ErrFUSEUnavailable)
		}
	}
	f, err := os.OpenFile(fuseDevice, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w (%v): %s", ErrFUSEUnavailable, err, fuseHelp)
	}
	f.Close()
	return nil
}

func findFusermount() (string, error) {
	for _, n := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no fusermount")
}

// mountFailed adds what to do to an error of the mount itself.
func mountFailed(mnt string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fusermount") || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.ENODEV) || errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mounting %s: %w (%v): %s", mnt, ErrFUSEUnavailable, err, fuseHelp)
	}
	return fmt.Errorf("mounting %s: %w", mnt, err)
}
