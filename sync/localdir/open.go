package localdir

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/escalefs/escalefs/cache"
)

// Open opens the regular file rel for reading, without following a symlink
// anywhere on the way, so that the engine can push what Scan saw. The open
// file must still match expect, the LocalStat that Scan reported for it;
// otherwise Open fails with an error wrapping ErrLocalChanged (the file
// changed since, and the engine scans it again). The caller closes the file.
func (d *Dir) Open(ctx context.Context, rel string, expect cache.LocalStat) (*os.File, error) {
	const op = "open"
	if err := checkPath(op, rel); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, rel, err)
	}
	dir, name, _, err := d.openParent(op, rel, false)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if _, _, err := checkExpect(op, rel, dir, name, &expect); err != nil {
		return nil, err
	}
	f, err := dir.OpenFile(name, os.O_RDONLY, 0) // a symlink swapped in is caught by the check below
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, rel, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %q: %w", op, rel, err)
	}
	if !fi.Mode().IsRegular() || !sameStat(localStat(fi), cache.KindFile, expect) {
		f.Close()
		return nil, localChanged(op, rel, "modified locally")
	}
	return f, nil
}

// Fingerprint returns the LocalStat of fi, as Scan records it; the engine
// compares it with the recorded one to tell whether a file changed.
func Fingerprint(fi fs.FileInfo) cache.LocalStat { return localStat(fi) }
