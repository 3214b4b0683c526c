package meta

import "strconv"

// Kind is what an entry is.
type Kind uint8

// The kinds of entry. The zero Kind is invalid, so that an Entry whose Kind
// was forgotten is refused by Put.
const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

// String returns "file", "dir" or "symlink".
func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// LocalStat is the fingerprint of the file on this node's disk when the sync
// engine last looked at it. If a fresh stat differs, the file may have
// changed since. The zero LocalStat means "never looked".
type LocalStat struct {
	Size    int64  // st_size
	MTimeNs int64  // st_mtim in nanoseconds since the Unix epoch
	Inode   uint64 // st_ino
	CTimeNs int64  // st_ctim in nanoseconds since the Unix epoch
}
