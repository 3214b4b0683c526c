package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/internal/testserver"
)

// The command lines of mount(8) and mount.fuse3 become escalefs mount
// command lines.
func TestHelperArgs(t *testing.T) {
	isCmd := func(s string) bool { return slices.Contains([]string{"mount", "sync", "status"}, s) }
	dir := t.TempDir()
	isDir := func(p string) bool { return p == dir }
	for _, tc := range []struct {
		name  string
		argv0 string
		args  []string
		want  []string // nil: not a helper's command line
		fake  bool
	}{
		{"mount(8) helper", "/sbin/mount.fuse.escalefs", []string{"laptop", dir, "-o", "rw,noauto,user"},
			[]string{"mount", "-o", "rw,noauto,user", "--repo", "laptop", dir}, false},
		{"mount.fuse3", "escalefs", []string{"laptop", dir, "-o", "allow_other"},
			[]string{"mount", "-o", "allow_other", "--repo", "laptop", dir}, false},
		{"repo in options", "mount.fuse.escalefs", []string{"escalefs", dir, "-n", "-o", "ro,repo=work"},
			[]string{"mount", "-o", "ro,repo=work", dir}, false},
		{"relay URL as source", "mount.fuse.escalefs", []string{"ftp://me@host/sync", dir, "-okey-file=/k"},
			[]string{"mount", "-o", "key-file=/k", "--relay", "ftp://me@host/sync", dir}, false},
		{"fake", "mount.fuse.escalefs", []string{"laptop", dir, "-f", "-t", "fuse.escalefs"},
			[]string{"mount", "--repo", "laptop", dir}, true},
		{"a command", "escalefs", []string{"sync", dir}, nil, false},
		{"a flag first", "escalefs", []string{"--config", dir}, nil, false},
		{"not a directory", "escalefs", []string{"laptop", "/nonexistent"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, fake, ok := helperArgs(tc.argv0, tc.args, isCmd, isDir)
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) || fake != tc.fake {
				t.Errorf("helperArgs(%q, %q) = %q, fake %v, ok %v; want %q, fake %v", tc.argv0, tc.args, got, fake, ok,
					tc.want, tc.fake)
			}
		})
	}
}

// Each -o option sets what it names; an unknown one, or a malformed
// value, is an error that names it.
func TestMountOptions(t *testing.T) {
	newCmd := func() (*cobra.Command, *mountFlags) {
		f := &mountFlags{}
		cmd := &cobra.Command{Use: "mount"}
		f.register(cmd)
		cmd.Flags().BoolVar(&f.nonEmpty, "nonempty", false, "")
		return cmd, f
	}
	cmd, f := newCmd()
	f.options = []string{"allow_root,ro,noatime,uid=1000,gid=100,umask=027", "noauto,user,_netdev,x-systemd.automount",
		"name=laptop,mode=download,refresh=5s,no-encryption"}
	if err := f.applyOptions(cmd); err != nil {
		t.Fatal(err)
	}
	o := f.fuse
	if !o.AllowRoot || o.AllowOther || !o.ReadOnly || !o.NoATime || !o.DefaultPermissions || *o.UID != 1000 || *o.GID != 100 || *o.Umask != 0o27 {
		t.Errorf("FUSE options: %+v", o)
	}
	if f.name != "laptop" || f.mode != "download" || f.refresh != 5*time.Second || !f.noEncryption {
		t.Errorf("flags from -o: name %q, mode %q, refresh %s, no-encryption %v", f.name, f.mode, f.refresh, f.noEncryption)
	}
	for _, tc := range []struct{ opt, want string }{
		{"frobnicate", `-o frobnicate: unknown mount option "frobnicate"`},
		{"uid=me", "-o uid=me: expected uid=N"},
		{"umask=999", "-o umask=999: expected umask=OCTAL"},
		{"ro=1", "-o ro=1: ro takes no value"},
		{"name", "-o name: name needs a value: name=VALUE"},
		{"refresh=soon", `-o refresh=soon: invalid argument "soon"`},
		{"option=x", `unknown mount option "option"`},
	} {
		cmd, f := newCmd()
		f.options = []string{tc.opt}
		if err := f.applyOptions(cmd); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("-o %s: error %v, want %q", tc.opt, err, tc.want)
		}
	}
	_, errOut, code := run(t, "mount", "--relay", "file://"+t.TempDir(), "--no-encryption", "-o", "frobnicate", t.TempDir())
	if code != exitUsage || !strings.Contains(errOut, `unknown mount option "frobnicate"`) {
		t.Errorf("mount -o frobnicate: exit %d, want %d\n%s", code, exitUsage, errOut)
	}
}

// rootUsable skips (locally) or fails (in CI) a test that mounts as root
// without fusermount.
func rootUsable(t *testing.T) {
	t.Helper()
	mountUsable(t)
	if os.Geteuid() != 0 {
		testserver.Unavailable(t, "not root: only root mounts without fusermount")
	}
}

// As root, escalefs mount mounts with mount(2) itself: with no fusermount
// on $PATH (a fresh machine without fuse3), it mounts, serves, applies
// -o ro, uid=, gid= and umask=, and umount stops it.
func TestMountWithoutFusermount(t *testing.T) {
	rootUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	mnt, xdg := t.TempDir(), t.TempDir()
	emptyPath := t.TempDir()

	mountCmd := func(opts string) (string, int) {
		cmd := exec.Command(bin, "mount", "--relay", relay, "--key-file", key, "--name", "alice", "-o", opts, mnt)
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+xdg, "PATH="+emptyPath)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	umount := func() {
		t.Helper()
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Fatalf("umount %s: %v", mnt, err)
		}
		waitFor(t, 30*time.Second, "the mount process to exit", func() bool { return len(processesWith(t, mnt)) == 0 })
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })

	if out, code := mountCmd("rw"); code != 0 {
		t.Fatalf("escalefs mount without fusermount: exit %d\n%s", code, out)
	}
	if !isMounted(t, mnt) {
		t.Fatal("not mounted")
	}
	writeFile(t, filepath.Join(mnt, "hello.txt"), []byte("hello\n"), 0o640)
	umount()
	// Another node gets the file.
	bob := t.TempDir()
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", key, "--name", "bob", bob); code != 0 {
		t.Fatalf("bob's sync --once: exit %d\n%s", code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(bob, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("bob's hello.txt: %q, %v", b, err)
	}

	if out, code := mountCmd("ro,uid=4321,gid=4322,umask=027"); code != 0 {
		t.Fatalf("escalefs mount -o ro,uid=,gid=,umask=: exit %d\n%s", code, out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "hello.txt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 4321 || st.Gid != 4322 || st.Mode&0o777 != 0o640 {
		t.Errorf("hello.txt: uid %d gid %d mode %o; want 4321, 4322, 640 (0640 under umask 027)", st.Uid, st.Gid, st.Mode&0o777)
	}
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o027 != 0 {
		t.Errorf("the mount's root shows mode %o under umask=027", st.Mode&0o777)
	}
	err := os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing in a -o ro mount: %v, want EROFS", err)
	}
	umount()
}

// mountNS runs script with sh in a private mount namespace (unshare -m),
// where the escalefs binary is bound over /usr/local/bin (mount.fuse3 finds
// it there) and fstab, if not empty, over /etc/fstab; it returns the
// script's output.
func mountNS(t *testing.T, bin, fstab, script string) string {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		testserver.Unavailable(t, "no unshare: %v", err)
	}
	if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		testserver.Unavailable(t, "no /sbin/mount.fuse3 (install fuse3): %v", err)
	}
	binDir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(binDir, "escalefs"), data, 0o755)
	pre := "set -eu\nmount --make-rprivate /\nmount --bind " + binDir + " /usr/local/bin\n"
	if fstab != "" {
		f := writeFile(t, filepath.Join(t.TempDir(), "fstab"), []byte(fstab), 0o644)
		pre += "mount --bind " + f + " /etc/fstab\n"
	}
	cmd := exec.Command("unshare", "-m", "sh", "-c", pre+script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a private mount namespace: %v\n%s\n%s", err, pre+script, out)
	}
	return string(out)
}

// mount -t fuse.escalefs REPO MOUNTPOINT -o …, and mount MOUNTPOINT over an
// /etc/fstab line, mount the repository's table; umount stops the node.
func TestMountTypeAndFstab(t *testing.T) {
	rootUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	mnt, xdg := t.TempDir(), t.TempDir()
	cfg := writeFile(t, filepath.Join(t.TempDir(), "config.toml"),
		[]byte("[laptop]\nrelay = \""+relay+"\"\nkey-file = \""+key+"\"\nname = \"laptop\"\n"), 0o600)

	// wait for the node's process to be gone after umount, in the
	// namespace (it keeps the namespace alive).
	waitGone := "for i in $(seq 300); do pgrep -f 'escalefs.* " + mnt + "' >/dev/null || break; sleep 0.1; done\n"
	script := "export XDG_STATE_HOME=" + xdg + "\n" +
		"mount -t fuse.escalefs laptop " + mnt + " -o config=" + cfg + ",noatime\n" +
		"grep ' " + mnt + " ' /proc/self/mountinfo\n" +
		"echo 'through mount -t' > " + mnt + "/typed.txt\n" +
		"umount " + mnt + "\n" + waitGone
	out := mountNS(t, bin, "", script)
	if !strings.Contains(out, "fuse.escalefs") || !strings.Contains(out, "noatime") {
		t.Errorf("mount -t fuse.escalefs: the mount table shows no noatime escalefs mount:\n%s", out)
	}

	fstab := "laptop " + mnt + " fuse.escalefs noauto,user,config=" + cfg + " 0 0\n"
	script = "export XDG_STATE_HOME=" + xdg + "\n" +
		"mount " + mnt + "\n" +
		"cat " + mnt + "/typed.txt\n" +
		"echo 'through fstab' > " + mnt + "/fstab.txt\n" +
		"umount " + mnt + "\n" + waitGone
	out = mountNS(t, bin, fstab, script)
	if !strings.Contains(out, "through mount -t") {
		t.Errorf("mount over fstab: typed.txt is not there:\n%s", out)
	}
	bob := t.TempDir()
	if _, errOut, code := run(t, "sync", "--once", "--relay", relay, "--key-file", key, "--name", "bob", bob); code != 0 {
		t.Fatalf("bob's sync --once: exit %d\n%s", code, errOut)
	}
	for f, want := range map[string]string{"typed.txt": "through mount -t\n", "fstab.txt": "through fstab\n"} {
		if b, err := os.ReadFile(filepath.Join(bob, f)); err != nil || string(b) != want {
			t.Errorf("bob's %s: %q, %v; want %q", f, b, err, want)
		}
	}
}

// -o allow_root lets root in beside the owner and no one else; -o
// allow_other lets every user in, with the kernel checking the modes.
func TestMountAllowRootOther(t *testing.T) {
	rootUsable(t)
	needSetpriv(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	base := sharedTempDir(t)
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	nobody := func(args ...string) error {
		return asNobody(args...).Run()
	}
	for _, tc := range []struct {
		opt         string
		othersEnter bool
	}{
		{"allow_root", false},
		{"allow_other", true},
	} {
		t.Run(tc.opt, func(t *testing.T) {
			xdg := t.TempDir()
			n := startMountAt(t, bin, "alice", relay, key, mnt, xdg, "-o", tc.opt)
			if err := os.Chmod(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(mnt, "open.txt"), []byte("for all\n"), 0o644)
			writeFile(t, filepath.Join(mnt, "private.txt"), []byte("mine\n"), 0o600)
			if err := nobody("cat", filepath.Join(mnt, "open.txt")); (err == nil) != tc.othersEnter {
				t.Errorf("-o %s: another user reading a 0644 file: %v", tc.opt, err)
			}
			if err := nobody("cat", filepath.Join(mnt, "private.txt")); err == nil {
				t.Errorf("-o %s: another user read a 0600 file", tc.opt)
			}
			n.unmount(t)
		})
	}
}

// needSetpriv skips, or fails in CI, where setpriv is missing.
func needSetpriv(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		testserver.Unavailable(t, "no setpriv (util-linux): %v", err)
	}
}

// asNobody is a command run as the user and group nobody (65534), without
// supplementary groups.
func asNobody(args ...string) *exec.Cmd {
	return exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}, args...)...)
}

// sharedTempDir is a directory every user may enter and write, removed at
// the end of the test: t.TempDir's parent is private to root.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "escalefs-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s is not searchable by other users: %v", d, err)
		}
	}
	return dir
}

// An ordinary user without fuse3 is told, in one line, which package to
// install.
func TestMountWithoutFuse3AsUser(t *testing.T) {
	rootUsable(t)
	needSetpriv(t)
	bin := buildEscalefs(t)
	base := sharedTempDir(t)
	copyTo := filepath.Join(base, "escalefs")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, copyTo, data, 0o755)
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := asNobody(copyTo, "mount", "--relay", "file://"+filepath.Join(base, "relay"), "--no-encryption", mnt)
	cmd.Env = []string{"PATH=" + filepath.Join(base, "empty"), "HOME=" + base, "XDG_STATE_HOME=" + filepath.Join(base, "state")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("mount without fuse3 as a user: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "fusermount3 is not installed; install the fuse3 package") {
		t.Errorf("want one line naming the fuse3 package, got:\n%s", out)
	}
}

// Another user works in a mount made with -o allow_other: the kernel
// checks permissions (default_permissions). The user creates, chmods,
// renames and unlinks its own files, and gets EACCES where the modes
// forbid; its files reach a peer.
func TestMountOtherUser(t *testing.T) {
	rootUsable(t)
	needSetpriv(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	mnt := filepath.Join(sharedTempDir(t), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	n := startMountAt(t, bin, "alice", relay, key, mnt, t.TempDir(), "-o", "allow_other")
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "shared"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(mnt, "shared"), 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "root-only.txt"), []byte("root's\n"), 0o600)
	as := func(script string) (string, error) {
		out, err := asNobody("sh", "-c", "cd "+mnt+" && "+script).CombinedOutput()
		return string(out), err
	}
	if out, err := as("echo mine > shared/a.txt && chmod 0640 shared/a.txt && mv shared/a.txt shared/b.txt && " +
		"echo gone > shared/c.txt && rm shared/c.txt && stat -c '%u %a' shared/b.txt"); err != nil ||
		strings.TrimSpace(out) != "65534 640" {
		t.Errorf("the other user's create, chmod, rename and unlink: %v\n%s", err, out)
	}
	for _, script := range []string{"cat root-only.txt", "echo x > new.txt", "rm root-only.txt", "chmod 0666 root-only.txt"} {
		if out, err := as(script); err == nil || !strings.Contains(out, "ermission denied") && !strings.Contains(out, "not permitted") {
			t.Errorf("%s as another user: %v, want permission denied\n%s", script, err, out)
		}
	}
	bob := newSyncNode(t, "bob", bin, relay, key)
	waitFor(t, 30*time.Second, "shared/b.txt to reach bob", func() bool {
		bob.once(t)
		return bob.has("shared/b.txt", "mine\n")
	})
	if fi, err := os.Stat(bob.path("shared/b.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("bob's shared/b.txt: %v, %v; want mode 0640", fi, err)
	}
	if _, err := os.Stat(bob.path("shared/c.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bob has shared/c.txt, which was deleted: %v", err)
	}
	n.unmount(t)
}
