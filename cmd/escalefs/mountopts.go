package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// fuseOptionNames are the mount options of -o that escalefs passes to the
// mount, as sshfs, rclone mount and gocryptfs take them.
var fuseOptionNames = []string{"allow_other", "allow_root", "default_permissions", "ro", "rw", "noatime", "atime",
	"noexec", "exec", "nonempty", "uid=N", "gid=N", "umask=OCTAL"}

// fstabOnlyOptions mean something to mount(8) or to /etc/fstab, not to
// the filesystem; they are accepted and ignored, so that an fstab line
// reaches escalefs whole.
var fstabOnlyOptions = []string{"auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail", "_netdev",
	"defaults", "suid", "nosuid", "dev", "nodev", "async", "sync", "relatime", "norelatime", "strictatime", "lazytime",
	"nolazytime", "diratime", "nodiratime", "silent", "loud"}

// mountOptionFlags are the flags of mount that -o cannot set: they are
// the option list itself and what makes no sense in a mount helper.
var mountOptionFlags = []string{"option", "help"}

// applyOptions reads the -o options: FUSE's (into f.fuse), those of
// /etc/fstab (ignored), and every flag of escalefs mount as NAME=VALUE
// (or NAME alone for a flag that is on or off), such as repo=laptop or
// key-file=/etc/escalefs/key. An option of none of these kinds is an
// error that names it.
func (f *mountFlags) applyOptions(cmd *cobra.Command) error {
	for _, list := range f.options {
		for _, opt := range strings.Split(list, ",") {
			if opt == "" {
				continue
			}
			if err := f.applyOption(cmd, opt); err != nil {
				return fmt.Errorf("-o %s: %w", opt, err)
			}
		}
	}
	// The kernel checks modes when other users may come in, as sshfs
	// recommends: without it any user could read any file of the mount.
	if f.fuse.AllowOther || f.fuse.AllowRoot {
		f.fuse.DefaultPermissions = true
	}
	return nil
}

func (f *mountFlags) applyOption(cmd *cobra.Command, opt string) error {
	key, val, hasVal := strings.Cut(opt, "=")
	if set, ok := f.switches()[key]; ok {
		if hasVal {
			return fmt.Errorf("%s takes no value", key)
		}
		set()
		return nil
	}
	switch key {
	case "uid", "gid":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || !hasVal {
			return fmt.Errorf("expected %s=N, a numeric user or group ID", key)
		}
		id := uint32(n)
		if key == "uid" {
			f.fuse.UID = &id
		} else {
			f.fuse.GID = &id
		}
		return nil
	case "umask":
		n, err := strconv.ParseUint(val, 8, 32)
		if err != nil || !hasVal || n > 0o777 {
			return fmt.Errorf("expected umask=OCTAL, such as umask=022 or umask=077")
		}
		m := uint32(n)
		f.fuse.Umask = &m
		return nil
	}
	if slices.Contains(fstabOnlyOptions, key) || strings.HasPrefix(key, "x-") || key == "comment" {
		return nil
	}
	return setFlagOption(cmd, key, val, hasVal)
}

// switches are the mount options without a value.
func (f *mountFlags) switches() map[string]func() {
	return map[string]func(){
		"allow_other":         func() { f.fuse.AllowOther = true },
		"allow_root":          func() { f.fuse.AllowRoot = true },
		"default_permissions": func() { f.fuse.DefaultPermissions = true },
		"ro":                  func() { f.fuse.ReadOnly = true },
		"rw":                  func() { f.fuse.ReadOnly = false },
		"noatime":             func() { f.fuse.NoATime = true },
		"atime":               func() { f.fuse.NoATime = false },
		"noexec":              func() { f.fuse.NoExec = true },
		"exec":                func() { f.fuse.NoExec = false },
		"nonempty":            func() { f.nonEmpty = true },
	}
}

// setFlagOption sets the flag of escalefs mount that the option key names
// (key=VALUE, or key alone for a boolean flag).
func setFlagOption(cmd *cobra.Command, key, val string, hasVal bool) error {
	fl := cmd.Flags().Lookup(key)
	if fl == nil || slices.Contains(mountOptionFlags, key) {
		return fmt.Errorf("unknown mount option %q; expected a FUSE option (%s), an fstab option (noauto, user, _netdev…) "+
			"or a flag of escalefs mount as NAME=VALUE (repo=NAME, config=FILE, key-file=FILE…)",
			key, strings.Join(fuseOptionNames, ", "))
	}
	if !hasVal {
		if fl.Value.Type() != "bool" {
			return fmt.Errorf("%s needs a value: %s=VALUE", key, key)
		}
		val = "true"
	}
	return cmd.Flags().Set(key, val)
}

// mountHelperNames are the names under which escalefs runs as a mount
// helper: mount -t fuse.escalefs looks for /sbin/mount.fuse.escalefs.
var mountHelperNames = []string{"mount.fuse.escalefs", "mount.escalefs"}

// helperArgs turns the command line of a mount helper into one of
// escalefs mount. mount(8) runs mount.fuse.escalefs SOURCE MOUNTPOINT
// [-sfnv] [-o OPTIONS] [-t TYPE] [-N NS], and mount.fuse3 runs escalefs
// SOURCE MOUNTPOINT -o OPTIONS, as for sshfs. SOURCE is the repository's
// table (the fstab line's first field), or a relay URL; "escalefs" or
// "none" leave it to -o repo= or to the only table. It returns ok false
// when args are not a helper's; fake is set for -f (mount -f: do
// nothing).
func helperArgs(argv0 string, args []string, isCommand func(string) bool, isDir func(string) bool) (out []string, fake, ok bool) {
	named := slices.Contains(mountHelperNames, filepath.Base(argv0))
	if !named && (len(args) < 2 || strings.HasPrefix(args[0], "-") || isCommand(args[0]) || !isDir(args[1])) {
		return nil, false, false
	}
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" && i+1 < len(args):
			opts = append(opts, args[i+1])
			i++
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, a[2:])
		case (a == "-t" || a == "-N") && i+1 < len(args):
			i++ // the type is ours; a namespace is mount(8)'s business
		case a == "-f":
			fake = true
		case strings.HasPrefix(a, "-") && strings.Trim(a[1:], "snv") == "":
			// sloppy, no mtab, verbose: mount(8)'s business
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return append([]string{"mount"}, args...), fake, true // mount says what is wrong
	}
	out = []string{"mount"}
	for _, o := range opts {
		out = append(out, "-o", o)
	}
	src, mnt := pos[0], pos[1]
	hasRepo := slices.ContainsFunc(opts, func(o string) bool {
		return slices.ContainsFunc(strings.Split(o, ","), func(kv string) bool { return strings.HasPrefix(kv, "repo=") })
	})
	switch {
	case strings.Contains(src, "://"):
		out = append(out, "--relay", src)
	case src == "escalefs" || src == "none" || hasRepo:
	default:
		out = append(out, "--repo", src)
	}
	return append(out, mnt), fake, true
}
