package cache

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder returns the ID of the process holding the flock on the file at
// path, as listed in /proc/locks, or 0 if it cannot tell. bbolt locks the
// database file with flock(2).
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseLocks(bufio.NewScanner(f), st.Dev, st.Ino)
}

// parseLocks finds the holder of a FLOCK on the file dev/ino in the lines of
// /proc/locks, e.g.
//
//	3: FLOCK  ADVISORY  WRITE 4711 fd:01:1837021 0 EOF
//
// Waiters ("3: -> FLOCK …") are skipped. When no line names the device
// exactly (overlay file systems report the lower one) a single line with the
// same inode number is taken.
func parseLocks(sc *bufio.Scanner, dev, ino uint64) int {
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	suffix := ":" + strconv.FormatUint(ino, 10)
	exact, byInode, inodeHits := 0, 0, 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			continue
		}
		switch {
		case f[5] == want:
			exact = pid
		case strings.HasSuffix(f[5], suffix):
			byInode = pid
			inodeHits++
		}
	}
	if exact != 0 {
		return exact
	}
	if inodeHits == 1 {
		return byInode
	}
	return 0
}
