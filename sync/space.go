package sync

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/units"
	"github.com/escalefs/escalefs/sync/proto"
)

// Default room a download leaves on the local disk, as Syncthing's
// minDiskFree: the smaller of these (Config.MinFree).
const (
	defaultMinFreeBytes   = 1 << 30
	defaultMinFreePercent = 5
)

// minFreeOf returns the room to leave on a disk of total bytes.
func minFreeOf(m units.MinFree, total int64) int64 {
	if n, ok := m.Of(total); ok {
		return n
	}
	return min(defaultMinFreeBytes, total*defaultMinFreePercent/100)
}

// errNoRoom means the local disk has too little room for a download.
var errNoRoom = errors.New("not enough free space on the local disk")

// noRoomError says how much room a download needs and how much there is.
type noRoomError struct {
	need, free int64
}

func (e *noRoomError) Error() string {
	return fmt.Sprintf("%v: %d bytes needed, %d free", errNoRoom, e.need, e.free)
}

func (e *noRoomError) Unwrap() error { return errNoRoom }

// room is what downloads may still take of the local disks they write to
// (the scratch and partial directories, and the folder), leaving
// Config.MinFree: measured once (statfs) for a record's changes, then
// lowered by each download it lets through. A nil room lets everything
// through.
type room []disk

// disk is the free space of one disk and what must stay free of it.
type disk struct{ free, reserve int64 }

// measureRoom measures the room of the local disks; nil when the check is
// off. A disk that does not answer is left out: the write itself tells.
func (e *Engine) measureRoom() room {
	if e.cfg.MinFree.Off {
		return nil
	}
	dirs := []string{e.cfg.Scratch}
	if r, ok := e.local.(interface{ Root() string }); ok {
		dirs = append(dirs, r.Root())
	}
	var out room
	for _, d := range dirs {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			out = append(out, disk{free: int64(st.Bavail) * st.Bsize,
				reserve: minFreeOf(e.cfg.MinFree, int64(st.Blocks)*st.Bsize)})
		}
	}
	return out
}

// take reserves size bytes for a download, or says that they do not fit.
func (r room) take(size int64) error {
	for _, d := range r {
		if d.free < size+d.reserve {
			return &noRoomError{need: size + d.reserve, free: d.free}
		}
	}
	for i := range r {
		r[i].free -= size
	}
	return nil
}

// isNoSpace reports whether err is the local disk's "no space" (or quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// deferred is a pulled change whose content did not fit on the local disk:
// it waits, and is applied once there is room. While it waits, this node
// acknowledges its peer's log only up to the record before it, so that the
// content stays on the relay.
type deferred struct {
	Peer   string
	Seq    uint64
	Change proto.Change
	// Need and Free are the room the download needed and what the disk
	// had, when it was last tried.
	Need, Free int64
}

// metaDeferred is the cache's meta key of the deferred changes (JSON).
const metaDeferred = "sync/deferred"

func loadDeferred(tx *cache.Tx) ([]deferred, error) {
	b, ok, err := tx.Meta(metaDeferred)
	if err != nil || !ok {
		return nil, err
	}
	var d []deferred
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("engine state %q: %w: %w", metaDeferred, err, cache.ErrCorrupt)
	}
	return d, nil
}

func saveDeferred(tx *cache.Tx, d []deferred) error {
	if len(d) == 0 {
		return tx.DeleteMeta(metaDeferred)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.SetMeta(metaDeferred, b)
}

// deferChange keeps the change c of peer's record seq for later, the
// local disk lacking room (err, a *noRoomError or the disk's ENOSPC). It
// replaces an older deferred change of the same path.
func (e *Engine) deferChange(peer string, seq uint64, c proto.Change, err error) error {
	d := deferred{Peer: peer, Seq: seq, Change: c, Need: c.Size}
	var nr *noRoomError
	if errors.As(err, &nr) {
		d.Need, d.Free = nr.need, nr.free
	}
	return e.store.Update(func(tx *cache.Tx) error {
		list, err := loadDeferred(tx)
		if err != nil {
			return err
		}
		known := slices.ContainsFunc(list, func(o deferred) bool { return o.Change.Path == c.Path && o.Change.Hash == c.Hash })
		list = slices.DeleteFunc(list, func(o deferred) bool { return o.Change.Path == c.Path })
		if !known {
			e.log.Warn("not enough room on the local disk to download a file: it waits, and the files that fit go on",
				"path", c.Path, "size", c.Size, "needed", d.Need, "free", d.Free)
		}
		return saveDeferred(tx, append(list, d))
	})
}

// retryDeferred applies the deferred changes that fit now, smallest first.
// A change that still does not fit stays deferred.
func (e *Engine) retryDeferred(ctx context.Context) error {
	var list []deferred
	if err := e.store.View(func(tx *cache.Tx) (err error) {
		list, err = loadDeferred(tx)
		return err
	}); err != nil || len(list) == 0 {
		return err
	}
	slices.SortFunc(list, func(a, b deferred) int { return cmp.Compare(a.Change.Size, b.Change.Size) })
	rm := e.measureRoom()
	for _, d := range list {
		if rm.take(d.Change.Size) != nil {
			continue
		}
		id, err := crypto.ParseNodeID(d.Peer)
		if err != nil {
			continue
		}
		// Taken off the list first: applying it again defers it anew
		// should the room have gone meanwhile. The acknowledgements it
		// held back are due.
		if err := e.store.Update(func(tx *cache.Tx) error {
			cur, err := loadDeferred(tx)
			if err != nil {
				return err
			}
			cur = slices.DeleteFunc(cur, func(o deferred) bool { return o.Change.Path == d.Change.Path && o.Seq == d.Seq })
			if err := saveDeferred(tx, cur); err != nil {
				return err
			}
			return tx.SetMeta(metaAckDue, []byte{1})
		}); err != nil {
			return err
		}
		if _, err := e.applyChanges(ctx, id, d.Seq, []proto.Change{d.Change}, false); err != nil {
			return err
		}
	}
	return nil
}

// deferredAcks lowers acks, per peer, below its oldest deferred change.
func deferredAcks(tx *cache.Tx, acks map[crypto.NodeID]uint64) error {
	list, err := loadDeferred(tx)
	if err != nil {
		return err
	}
	for _, d := range list {
		id, err := crypto.ParseNodeID(d.Peer)
		if err != nil {
			continue
		}
		switch a, ok := acks[id]; {
		case !ok || a < d.Seq:
		case d.Seq == 0:
			delete(acks, id) // nothing of its log is wholly here
		default:
			acks[id] = d.Seq - 1
		}
	}
	return nil
}

// NoRoom is a pulled file that waits for room on the local disk.
type NoRoom struct {
	Path       string
	Size       int64
	Need, Free int64
}

// ReadNoRoom lists the files of store that wait for room on the local disk.
func ReadNoRoom(store *cache.Store) ([]NoRoom, error) {
	var out []NoRoom
	err := store.View(func(tx *cache.Tx) error {
		list, err := loadDeferred(tx)
		for _, d := range list {
			out = append(out, NoRoom{Path: d.Change.Path, Size: d.Change.Size, Need: d.Need, Free: d.Free})
		}
		return err
	})
	slices.SortFunc(out, func(a, b NoRoom) int { return cmp.Compare(a.Path, b.Path) })
	return out, err
}
