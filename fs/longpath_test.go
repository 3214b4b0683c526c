package fs

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountLongPaths: a path as long as a local file system takes (4095
// bytes, relative to a directory descriptor) works in the mount, whatever
// the length of the backing directory's own path.
func TestMountLongPaths(t *testing.T) {
	_, mnt, backing := mount(t, Options{})
	if len(backing) < 20 {
		t.Fatalf("backing directory %s: too short a path to show the limit", backing)
	}
	d, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	// Directories of 250-byte names, then a file whose path makes 4095
	// bytes: the longest path the kernel takes.
	var dirs []string
	p := ""
	for 4095-len(p) > 255 {
		p += strings.Repeat(string(rune('a'+len(dirs)%26)), 250) + "/"
		dirs = append(dirs, strings.TrimSuffix(p, "/"))
	}
	file := p + strings.Repeat("f", 4095-len(p))
	if len(file) != 4095 {
		t.Fatalf("file path of %d bytes", len(file))
	}
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, dir := range dirs {
		step("mkdir", unix.Mkdirat(d, dir, 0o755))
	}
	fd, err := unix.Openat(d, file, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o640)
	step("create", err)
	_, err = unix.Write(fd, []byte("deep"))
	step("write", err)
	step("close", unix.Close(fd))

	var st unix.Stat_t
	step("stat", unix.Fstatat(d, file, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Size != 4 || st.Mode&0o7777 != 0o640 {
		t.Errorf("stat: size %d mode %o, want 4 and 640", st.Size, st.Mode&0o7777)
	}
	step("chmod", unix.Fchmodat(d, file, 0o600, 0))
	step("utimes", unix.UtimesNanoAt(d, file, []unix.Timespec{{Sec: 1}, {Sec: 2}}, unix.AT_SYMLINK_NOFOLLOW))
	step("stat", unix.Fstatat(d, file, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Mode&0o7777 != 0o600 || st.Mtim.Sec != 2 {
		t.Errorf("after chmod and utimes: mode %o mtime %d, want 600 and 2", st.Mode&0o7777, st.Mtim.Sec)
	}
	step("open", func() error {
		fd, err := unix.Openat(d, file, unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 16)
		n, err := unix.Read(fd, buf)
		if err == nil && string(buf[:n]) != "deep" {
			t.Errorf("read %q, want deep", buf[:n])
		}
		return err
	}())
	// A name beside it, for links and renames (same length).
	other := p + strings.Repeat("g", len(file)-len(p))
	step("link", unix.Linkat(d, file, d, other, 0))
	step("unlink", unix.Unlinkat(d, other, 0))
	step("symlink", unix.Symlinkat("target", d, other))
	buf := make([]byte, 64)
	n, err := unix.Readlinkat(d, other, buf)
	step("readlink", err)
	if string(buf[:n]) != "target" {
		t.Errorf("readlink %q, want target", buf[:n])
	}
	step("unlink", unix.Unlinkat(d, other, 0))
	step("rename", unix.Renameat(d, file, d, other))
	step("rename back", unix.Renameat(d, other, d, file))
	last, err := unix.Openat(d, dirs[len(dirs)-1], unix.O_RDONLY|unix.O_DIRECTORY, 0)
	step("opendir", err)
	f := os.NewFile(uintptr(last), "last")
	names, err := f.Readdirnames(-1)
	f.Close()
	step("readdir", err)
	if len(names) != 1 || names[0] != file[len(p):] {
		t.Errorf("readdir: %d names, want the file", len(names))
	}
	// The extended attributes, through the descriptor of the directory.
	dir, err := unix.Openat(d, dirs[len(dirs)-1], unix.O_PATH|unix.O_DIRECTORY, 0)
	step("open the directory", err)
	defer unix.Close(dir)
	name := "/proc/self/fd/" + strconv.Itoa(dir) + "/" + file[len(p):]
	if err := unix.Lsetxattr(name, "user.x", []byte("v"), 0); err != nil && err != syscall.ENOTSUP {
		t.Errorf("setxattr: %v", err)
	} else if err == nil {
		v := make([]byte, 8)
		n, err := unix.Lgetxattr(name, "user.x", v)
		if err != nil || !bytes.Equal(v[:n], []byte("v")) {
			t.Errorf("getxattr: %q, %v", v[:n], err)
		}
	}
	step("truncate", unix.Truncate(name, 2))
	step("stat", unix.Fstatat(d, file, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Size != 2 {
		t.Errorf("size %d after truncate, want 2", st.Size)
	}
	step("unlink", unix.Unlinkat(d, file, 0))
	for i := len(dirs) - 1; i >= 0; i-- {
		step("rmdir", unix.Unlinkat(d, dirs[i], unix.AT_REMOVEDIR))
	}
}

// TestMountStatxMarks: statx asking for the birth time (which the kernel
// sends as a request of its own) shows the mode stat shows: the marks of
// the access modifiers, and 0000 as 0000.
func TestMountStatxMarks(t *testing.T) {
	_, mnt, backing := modsMount(t)
	for name, m := range map[string]os.FileMode{"protected": 0o444, "none": 0} {
		p := mnt + "/" + name
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		var x unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x); err != nil {
			t.Fatal(err)
		}
		if got := os.FileMode(x.Mode & 0o777); got != m {
			t.Errorf("%s: statx mode %v, want %v (backing file %v)", name, got, m, mode(t, backing+"/"+name))
		}
	}
}
