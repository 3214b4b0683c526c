package localdir

import (
	"strings"
	"time"
	"unicode/utf8"
)

// conflictMark starts the part of a name that ConflictName adds.
const conflictMark = ".sync-conflict-"

// conflictTime is the layout of the time in a conflict name.
const conflictTime = "20060102-150405"

// maxNameLen is the longest file name (one component) that Linux
// filesystems accept, in bytes.
const maxNameLen = 255

// ConflictName returns the name under which the losing version of path is
// kept when two nodes changed it concurrently, as Syncthing names them:
// "dir/name.sync-conflict-YYYYMMDD-HHMMSS-<node>.ext", with t in UTC. ext is
// the last extension ("archive.tar.gz" becomes
// "archive.tar.sync-conflict-….gz"); a name without one, or a dotfile such
// as ".bashrc", gets the mark at the end (".bashrc.sync-conflict-…"). Bytes
// of node other than ASCII letters, digits, '-' and '_' become '_' (an
// empty node is "_"), so the name stays one component and IsConflictName
// can find the mark. Should the name exceed 255 bytes, the part before the
// extension is shortened (at a UTF-8 boundary). Two conflicts of the same
// path from the same node within one second get the same name: the caller
// must check that the name is free.
func ConflictName(path string, t time.Time, node string) string {
	dir, base := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i+1], path[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i > 0 && i < len(base)-1 {
		stem, ext = base[:i], base[i:]
	}
	mark := conflictMark + t.UTC().Format(conflictTime) + "-" + sanitizeNode(node)
	if over := len(stem) + len(mark) + len(ext) - maxNameLen; over > 0 {
		keep := max(len(stem)-over, 0)
		for keep > 0 && !utf8.RuneStart(stem[keep]) {
			keep--
		}
		stem = stem[:keep]
	}
	return dir + stem + mark + ext
}

// ConflictLabel is what node becomes in a conflict name.
func ConflictLabel(node string) string { return sanitizeNode(node) }

func sanitizeNode(node string) string {
	if node == "" {
		return "_"
	}
	b := []byte(node)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// IsConflictName reports whether the last component of path is a name
// ConflictName makes: it holds ".sync-conflict-", a date, a time and a
// node, followed by the end of the name or an extension.
func IsConflictName(path string) bool {
	base := path[strings.LastIndexByte(path, '/')+1:]
	for {
		i := strings.Index(base, conflictMark)
		if i < 0 {
			return false
		}
		rest := base[i+len(conflictMark):]
		if len(rest) > len(conflictTime)+1 && validTime(rest[:len(conflictTime)]) && rest[len(conflictTime)] == '-' {
			node := rest[len(conflictTime)+1:]
			if j := strings.IndexByte(node, '.'); j >= 0 {
				node = node[:j]
			}
			if node != "" && sanitizeNode(node) == node {
				return true
			}
		}
		base = base[i+1:]
	}
}

// validTime reports whether s is a time in conflictTime's layout.
func validTime(s string) bool {
	_, err := time.Parse(conflictTime, s)
	return err == nil
}
