package decide

import (
	"bytes"
	"strconv"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
)

// Action is what the engine does with a pulled change.
type Action int

// The actions of a Decision. The zero Action is Invalid, so that a forgotten
// Decision is not mistaken for one.
const (
	// Invalid: Resolve does not handle the change's op (rmdir, rename or an
	// unknown op); the engine decides those elsewhere. Nothing is changed.
	Invalid Action = iota
	// Ignore: this node already has the remote version or a newer one.
	// Nothing changes; Decision.Version is nil.
	Ignore
	// Apply: install the remote change at the path (write its content,
	// create the directory or symlink, apply its metadata, or delete the
	// file and keep a tombstone) and set the entry's version to
	// Decision.Version.
	Apply
	// Merge: keep the local content as it is and only set the entry's
	// version to Decision.Version. Either both sides hold the same state
	// (same content, both deleted) or the local modification beats a
	// concurrent remote delete or a concurrent content-less meta change; no
	// copy is needed because nothing with content is lost. When Winner is
	// Remote (the same file or directory on both sides, the remote version
	// winning the tie-break of Conflict), the local one takes the remote's
	// mode and modification time, so that every node ends with the same.
	Merge
	// Conflict: concurrent modifications with different content. The winner
	// is installed at the path, the loser is kept at Decision.LoserName, and
	// the entry's version becomes Decision.Version. See Decision.
	Conflict
)

// String returns the action's name in lower case.
func (a Action) String() string {
	switch a {
	case Invalid:
		return "invalid"
	case Ignore:
		return "ignore"
	case Apply:
		return "apply"
	case Merge:
		return "merge"
	case Conflict:
		return "conflict"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Side names one of the two versions Resolve compares.
type Side int

// The sides. The zero Side is None: no version (Invalid decisions, and the
// loser of a decision that has none).
const (
	None Side = iota
	Local
	Remote
)

// String returns "none", "local" or "remote".
func (s Side) String() string {
	switch s {
	case None:
		return "none"
	case Local:
		return "local"
	case Remote:
		return "remote"
	}
	return "Side(" + strconv.Itoa(int(s)) + ")"
}

// Decision is the result of Resolve.
type Decision struct {
	Action Action
	// Order is how the remote version relates to the local one, as the
	// decision saw it: a Dirty local entry makes any remote version that is
	// not Before or Equal count as Concurrent. Equal's zero value is
	// meaningless when Action is Invalid.
	Order cache.Order
	// Winner is the side whose state the path holds afterwards: Remote for
	// Apply, Local for Ignore, either for Merge and Conflict.
	Winner Side
	// Loser is, for Conflict only, the side that is kept at LoserName:
	//   - Local: rename the local file to LoserName, then install the remote
	//     change at the path;
	//   - Remote: install the remote change's content at LoserName and keep
	//     the local file at the path.
	// It is None for every other action (a losing delete or a losing
	// content-less meta change leaves nothing to keep).
	Loser Side
	// LoserName is localdir.ConflictName(path, loser's ModTime, loser's
	// origin node); empty unless Action is Conflict. The engine must check
	// that the name is free (see ConflictName) and push the copy as a new
	// local file.
	LoserName string
	// Version is the version vector the path ends with: remote.Version for
	// Apply on a clean entry, the merge of both vectors otherwise; nil for
	// Ignore and Invalid. It is a fresh map the caller may keep.
	Version cache.VersionVector
	// Reason says in a few words why; for logs and tests only.
	Reason string
}

// version is one side of a comparison, reduced to what the rules look at.
type version struct {
	deleted bool
	kind    cache.Kind // 0 for a meta change: content unknown
	meta    bool
	hash    [32]byte
	target  string
	modTime time.Time
	origin  string
}

func fromEntry(e *cache.Entry) version {
	return version{
		deleted: e.Deleted,
		kind:    e.Kind,
		hash:    e.Hash,
		target:  e.Target,
		modTime: e.ModTime,
		origin:  e.Origin,
	}
}

// fromChange returns the version of a content-bearing change, and false for
// any other op.
func fromChange(c proto.Change, node string) (version, bool) {
	v := version{modTime: c.ModTime, origin: node}
	switch c.Op {
	case proto.OpPut:
		v.kind, v.hash = cache.KindFile, c.Hash
	case proto.OpMkdir:
		v.kind = cache.KindDir
	case proto.OpSymlink:
		v.kind, v.target = cache.KindSymlink, c.Target
	case proto.OpDelete:
		v.deleted = true
	case proto.OpMeta:
		v.meta = true
	default:
		return version{}, false
	}
	return v, true
}

// same reports whether a and b hold the same state, so that concurrent
// versions of them merge without a conflict.
func same(a, b version) bool {
	switch {
	case a.deleted || b.deleted:
		return a.deleted && b.deleted
	case a.meta || b.meta:
		return false
	case a.kind != b.kind:
		return false
	}
	switch a.kind {
	case cache.KindFile:
		return a.hash == b.hash
	case cache.KindSymlink:
		return a.target == b.target
	}
	return true // two directories
}

// metaOf reports whether a live entry of kind k has a mode and a time that
// the nodes keep in step (files and directories; a symlink's are not
// synced).
func metaOf(k cache.Kind) bool { return k == cache.KindFile || k == cache.KindDir }

// beats reports whether a wins over b; both are live (not deleted) and
// neither is a meta change. The later ModTime wins, then the larger origin
// node ID, then the larger hash, kind and target: a total order on the
// fields both nodes see, so both pick the same winner.
func beats(a, b version) bool {
	if c := a.modTime.Compare(b.modTime); c != 0 {
		return c > 0
	}
	if a.origin != b.origin {
		return a.origin > b.origin
	}
	if c := bytes.Compare(a.hash[:], b.hash[:]); c != 0 {
		return c > 0
	}
	if a.kind != b.kind {
		return a.kind > b.kind
	}
	return a.target > b.target
}

// Resolve decides what to do with remote, a change to one path pulled from
// remoteNode's log, given local, this node's cache entry for the path (nil
// if the path is unknown here). It handles the content-bearing ops put,
// delete, mkdir, symlink and meta; any other op gives Invalid.
//
// remoteNode is taken as the author of the remote version (its origin) and
// local.Origin as the author of the local one; both feed the tie-break and
// the conflict name. For a Dirty entry, local.Origin must be this node's ID,
// as this node authored the unpushed change.
//
// The rules, with remote.Version compared to local.Version:
//   - local is nil: Apply.
//   - Before or Equal: Ignore; this node has that version or a newer one.
//     This holds for a Dirty entry too: its unpushed change is newer still.
//   - After, and local is not Dirty: Apply with remote.Version.
//   - After with local Dirty, or Concurrent: see below. local.Dirty means
//     the local change has not had its version bump yet, so it is
//     concurrent with any remote version that is not already covered.
//
// Concurrent versions, with Version the merge of both vectors:
//   - both sides hold the same state (two puts of the same Hash, two
//     symlinks to the same Target, two directories, two deletes): Merge.
//     For two files or two directories the winner of the tie-break below
//     gives its mode and time to the other (Winner).
//   - one side deleted, the other not: a delete never beats a
//     modification. A remote modification is applied (Apply); a local one
//     is kept (Merge).
//   - a remote meta change against a live local entry: the meta carries no
//     content, so the local state is kept (Merge) and the meta dropped.
//   - otherwise two modifications: the one with the later ModTime wins,
//     ties broken by the larger origin node ID, then the larger Hash
//     (then kind and target). Conflict; the loser is kept at LoserName.
//
// When the local entry is Dirty and stays (Merge, or Conflict with the
// local side winning), Version does not yet include the local change: the
// engine pushes it with Version bumped by this node, as for any local
// change. A conflict copy at LoserName is a new local file to push.
//
// Every node that holds one version and pulls the other reaches the same
// winner and the same LoserName, with one documented gap: the cache does
// not know whether its own last change was a meta change, so a local
// content-less meta change is compared as a modification of the content it
// holds while the peer sees a meta change.
func Resolve(local *cache.Entry, remote proto.Change, remoteNode string) Decision {
	r, ok := fromChange(remote, remoteNode)
	if !ok {
		return Decision{Action: Invalid, Reason: "op " + string(remote.Op) + " is not decided here"}
	}
	if local == nil {
		return Decision{Action: Apply, Order: cache.After, Winner: Remote,
			Version: remote.Version.Clone(), Reason: "path unknown here"}
	}
	order := remote.Version.Compare(local.Version)
	switch {
	case order == cache.Before || order == cache.Equal:
		return Decision{Action: Ignore, Order: order, Winner: Local, Reason: "remote version already covered"}
	case order == cache.After && !local.Dirty:
		return Decision{Action: Apply, Order: order, Winner: Remote,
			Version: remote.Version.Clone(), Reason: "remote version newer"}
	}
	order = cache.Concurrent
	merged := local.Version.Merge(remote.Version)
	d := Decision{Order: order, Version: merged}
	l := fromEntry(local)
	switch {
	case same(l, r) && !l.deleted && metaOf(l.kind) && beats(r, l):
		d.Action, d.Winner, d.Reason = Merge, Remote, "concurrent versions hold the same content; the remote's mode and time win"
	case same(l, r):
		d.Action, d.Winner, d.Reason = Merge, Local, "concurrent versions hold the same state"
	case r.deleted:
		d.Action, d.Winner, d.Reason = Merge, Local, "local modification beats concurrent delete"
	case l.deleted:
		d.Action, d.Winner, d.Reason = Apply, Remote, "remote modification beats concurrent delete"
	case r.meta:
		d.Action, d.Winner, d.Reason = Merge, Local, "concurrent meta change carries no content; local kept"
	case beats(r, l):
		d.Action, d.Winner, d.Loser, d.Reason = Conflict, Remote, Local, "concurrent modifications; remote wins"
		d.LoserName = localdir.ConflictName(remote.Path, l.modTime, l.origin)
	default:
		d.Action, d.Winner, d.Loser, d.Reason = Conflict, Local, Remote, "concurrent modifications; local wins"
		d.LoserName = localdir.ConflictName(remote.Path, r.modTime, r.origin)
	}
	return d
}
