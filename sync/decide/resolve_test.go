package decide_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/decide"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
)

const (
	nodeA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	nodeB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	nodeC = "cccccccccccccccccccccccccccccccc"
)

var (
	t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
	h1 = [32]byte{1}
	h2 = [32]byte{2}
)

type vv = cache.VersionVector

// side is one version of a path, convertible to either a cache entry (held
// locally) or a change (pulled from its origin).
type side struct {
	op      proto.Op
	version vv
	hash    [32]byte
	target  string
	modTime time.Time
	origin  string
	dirty   bool
}

func (s side) entry() *cache.Entry {
	e := &cache.Entry{Path: "dir/f.txt", Version: s.version, Hash: s.hash, Target: s.target,
		ModTime: s.modTime, Origin: s.origin, Dirty: s.dirty}
	switch s.op {
	case proto.OpPut:
		e.Kind = cache.KindFile
	case proto.OpMkdir:
		e.Kind = cache.KindDir
	case proto.OpSymlink:
		e.Kind = cache.KindSymlink
	case proto.OpDelete:
		e.Kind, e.Deleted, e.Hash = cache.KindFile, true, [32]byte{}
	}
	return e
}

func (s side) change() proto.Change {
	return proto.Change{Op: s.op, Path: "dir/f.txt", Version: s.version, Hash: s.hash,
		Target: s.target, ModTime: s.modTime}
}

func put(v vv, h [32]byte, t time.Time, origin string) side {
	return side{op: proto.OpPut, version: v, hash: h, modTime: t, origin: origin}
}

func del(v vv, t time.Time, origin string) side {
	return side{op: proto.OpDelete, version: v, modTime: t, origin: origin}
}

func TestResolve(t *testing.T) {
	conflictA := localdir.ConflictName("dir/f.txt", t0, nodeA)
	conflictB := localdir.ConflictName("dir/f.txt", t0, nodeB)
	for _, tc := range []struct {
		name          string
		local         *side
		remote        side
		action        decide.Action
		winner, loser decide.Side
		loserName     string
		version       vv
	}{
		{name: "unknown path", remote: put(vv{nodeB: 1}, h1, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeB: 1}},
		{name: "unknown path delete", remote: del(vv{nodeB: 1}, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeB: 1}},
		{name: "equal", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: put(vv{nodeA: 1}, h1, t0, nodeA),
			action: decide.Ignore, winner: decide.Local},
		{name: "before", local: new(put(vv{nodeA: 2}, h2, t1, nodeA)), remote: put(vv{nodeA: 1}, h1, t0, nodeA),
			action: decide.Ignore, winner: decide.Local},
		{name: "before, local dirty", local: &side{op: proto.OpPut, version: vv{nodeA: 2}, hash: h2, modTime: t1, origin: nodeA, dirty: true},
			remote: put(vv{nodeA: 1}, h1, t0, nodeA), action: decide.Ignore, winner: decide.Local},
		{name: "equal, local dirty", local: &side{op: proto.OpPut, version: vv{nodeA: 1}, hash: h2, modTime: t1, origin: nodeA, dirty: true},
			remote: put(vv{nodeA: 1}, h1, t0, nodeA), action: decide.Ignore, winner: decide.Local},
		{name: "after", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: put(vv{nodeA: 1, nodeB: 1}, h2, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "after, remote delete", local: new(put(vv{nodeA: 1}, h1, t1, nodeA)), remote: del(vv{nodeA: 1, nodeB: 1}, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "after, local tombstone", local: new(del(vv{nodeA: 2}, t1, nodeA)), remote: put(vv{nodeA: 2, nodeB: 1}, h1, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 2, nodeB: 1}},
		{name: "after, local dirty: concurrent, remote later",
			local:  &side{op: proto.OpPut, version: vv{nodeA: 1}, hash: h1, modTime: t0, origin: nodeA, dirty: true},
			remote: put(vv{nodeA: 1, nodeB: 1}, h2, t1, nodeB),
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "after, local dirty, same hash: merge, the later time wins",
			local:  &side{op: proto.OpPut, version: vv{nodeA: 1}, hash: h2, modTime: t0, origin: nodeA, dirty: true},
			remote: put(vv{nodeA: 1, nodeB: 1}, h2, t1, nodeB),
			action: decide.Merge, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent same hash, remote later", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: put(vv{nodeB: 1}, h1, t1, nodeB),
			action: decide.Merge, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent same hash, local later", local: new(put(vv{nodeA: 1}, h1, t1, nodeA)), remote: put(vv{nodeB: 1}, h1, t0, nodeB),
			action: decide.Merge, winner: decide.Local, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent same hash, same time: larger origin", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: put(vv{nodeB: 1}, h1, t0, nodeB),
			action: decide.Merge, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent both deleted", local: new(del(vv{nodeA: 2}, t0, nodeA)), remote: del(vv{nodeA: 1, nodeB: 1}, t1, nodeB),
			action: decide.Merge, winner: decide.Local, version: vv{nodeA: 2, nodeB: 1}},
		{name: "concurrent both dirs", local: &side{op: proto.OpMkdir, version: vv{nodeA: 1}, modTime: t0, origin: nodeA},
			remote: side{op: proto.OpMkdir, version: vv{nodeB: 1}, modTime: t1, origin: nodeB},
			action: decide.Merge, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent same symlink", local: &side{op: proto.OpSymlink, version: vv{nodeA: 1}, target: "x", modTime: t0, origin: nodeA},
			remote: side{op: proto.OpSymlink, version: vv{nodeB: 1}, target: "x", modTime: t1, origin: nodeB},
			action: decide.Merge, winner: decide.Local, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent symlinks differ", local: &side{op: proto.OpSymlink, version: vv{nodeA: 1}, target: "x", modTime: t0, origin: nodeA},
			remote: side{op: proto.OpSymlink, version: vv{nodeB: 1}, target: "y", modTime: t1, origin: nodeB},
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent remote delete loses", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: del(vv{nodeB: 1}, t1, nodeB),
			action: decide.Merge, winner: decide.Local, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent local delete loses", local: new(del(vv{nodeA: 1}, t1, nodeA)), remote: put(vv{nodeB: 1}, h1, t0, nodeB),
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent local dir beats remote delete", local: &side{op: proto.OpMkdir, version: vv{nodeA: 1}, modTime: t0, origin: nodeA},
			remote: del(vv{nodeB: 1}, t1, nodeB), action: decide.Merge, winner: decide.Local, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent remote later", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)), remote: put(vv{nodeB: 1}, h2, t1, nodeB),
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent local later", local: new(put(vv{nodeA: 1}, h1, t1, nodeA)), remote: put(vv{nodeB: 1}, h2, t0, nodeB),
			action: decide.Conflict, winner: decide.Local, loser: decide.Remote, loserName: conflictB, version: vv{nodeA: 1, nodeB: 1}},
		{name: "tie: larger origin wins (remote)", local: new(put(vv{nodeA: 1}, h2, t0, nodeA)), remote: put(vv{nodeB: 1}, h1, t0, nodeB),
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "tie: larger origin wins (local)", local: new(put(vv{nodeB: 1}, h1, t0, nodeB)), remote: put(vv{nodeA: 1}, h2, t0, nodeA),
			action: decide.Conflict, winner: decide.Local, loser: decide.Remote, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "tie: same origin, larger hash wins", local: new(put(vv{nodeA: 2}, h1, t0, nodeB)), remote: put(vv{nodeA: 1, nodeC: 1}, h2, t0, nodeB),
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictB, version: vv{nodeA: 2, nodeC: 1}},
		{name: "file against dir", local: &side{op: proto.OpMkdir, version: vv{nodeA: 1}, modTime: t0, origin: nodeA},
			remote: put(vv{nodeB: 1}, h1, t1, nodeB),
			action: decide.Conflict, winner: decide.Remote, loser: decide.Local, loserName: conflictA, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent remote meta keeps local", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)),
			remote: side{op: proto.OpMeta, version: vv{nodeB: 1}, modTime: t1, origin: nodeB},
			action: decide.Merge, winner: decide.Local, version: vv{nodeA: 1, nodeB: 1}},
		{name: "concurrent remote meta beats tombstone", local: new(del(vv{nodeA: 1}, t1, nodeA)),
			remote: side{op: proto.OpMeta, version: vv{nodeB: 1}, modTime: t0, origin: nodeB},
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "after, meta", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)),
			remote: side{op: proto.OpMeta, version: vv{nodeA: 1, nodeB: 1}, modTime: t1, origin: nodeB},
			action: decide.Apply, winner: decide.Remote, version: vv{nodeA: 1, nodeB: 1}},
		{name: "rename invalid", local: new(put(vv{nodeA: 1}, h1, t0, nodeA)),
			remote: side{op: proto.OpRename, version: vv{nodeB: 1}, origin: nodeB}, action: decide.Invalid},
		{name: "rmdir invalid", remote: side{op: proto.OpRmdir, version: vv{nodeB: 1}, origin: nodeB}, action: decide.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var local *cache.Entry
			if tc.local != nil {
				local = tc.local.entry()
			}
			d := decide.Resolve(local, tc.remote.change(), tc.remote.origin)
			if d.Action != tc.action || d.Winner != tc.winner || d.Loser != tc.loser || d.LoserName != tc.loserName {
				t.Fatalf("got %v winner %v loser %v %q (%s), want %v winner %v loser %v %q",
					d.Action, d.Winner, d.Loser, d.LoserName, d.Reason, tc.action, tc.winner, tc.loser, tc.loserName)
			}
			if d.Version.Compare(tc.version) != cache.Equal || (d.Version == nil) != (tc.version == nil) {
				t.Fatalf("version %v, want %v", d.Version, tc.version)
			}
		})
	}
}

func TestResolveDoesNotModifyArguments(t *testing.T) {
	l := put(vv{nodeA: 1}, h1, t0, nodeA).entry()
	r := put(vv{nodeB: 1}, h2, t1, nodeB).change()
	d := decide.Resolve(l, r, nodeB)
	d.Version[nodeC] = 9
	if len(l.Version) != 1 || len(r.Version) != 1 {
		t.Fatalf("arguments changed: %v %v", l.Version, r.Version)
	}
	d = decide.Resolve(nil, r, nodeB)
	d.Version[nodeC] = 9
	if len(r.Version) != 1 {
		t.Fatalf("remote changed: %v", r.Version)
	}
}

// TestResolveSymmetric checks that the node holding a and pulling b, and the
// node holding b and pulling a, keep the same version at the path and the
// same conflict name.
func TestResolveSymmetric(t *testing.T) {
	sides := []side{
		put(vv{nodeA: 1}, h1, t0, nodeA),
		put(vv{nodeB: 1}, h2, t0, nodeB),
		put(vv{nodeB: 1}, h1, t1, nodeB),
		put(vv{nodeC: 1}, h2, t1, nodeC),
		put(vv{nodeA: 1, nodeB: 1}, h2, t0, nodeB),
		del(vv{nodeC: 1}, t1, nodeC),
		del(vv{nodeA: 1, nodeC: 1}, t0, nodeC),
		{op: proto.OpMkdir, version: vv{nodeB: 2}, modTime: t0, origin: nodeB},
		{op: proto.OpSymlink, version: vv{nodeC: 2}, target: "x", modTime: t1, origin: nodeC},
		{op: proto.OpSymlink, version: vv{nodeA: 2}, target: "y", modTime: t1, origin: nodeA},
	}
	for i, a := range sides {
		for j, b := range sides {
			if i == j {
				continue
			}
			// Seen from b's holder, "local" is b: the names swap.
			dab := decide.Resolve(a.entry(), b.change(), b.origin)
			dba := decide.Resolve(b.entry(), a.change(), a.origin)
			if dab.Order == cache.Concurrent || dba.Order == cache.Concurrent {
				wa := winnerName(a, b, dab, "a", "b")
				wb := winnerName(b, a, dba, "b", "a")
				if wa != wb || dab.LoserName != dba.LoserName || fmt.Sprint(dab.Version) != fmt.Sprint(dba.Version) {
					t.Errorf("%d/%d: holder of a: %s %q %v (%s); holder of b: %s %q %v (%s)", i, j,
						wa, dab.LoserName, dab.Version, dab.Reason, wb, dba.LoserName, dba.Version, dba.Reason)
				}
			}
		}
	}
}

// sameState reports whether a and b hold the same state at the path.
func sameState(a, b side) bool {
	if a.op != b.op {
		return false
	}
	switch a.op {
	case proto.OpPut:
		return a.hash == b.hash
	case proto.OpSymlink:
		return a.target == b.target
	}
	return true
}

// winnerName returns which version holds the path after d, where l is the
// local side and r the remote one; "same" when both hold the same state
// and neither has a mode and time to give the other (deletes, symlinks, or
// the same time from the same origin).
func winnerName(l, r side, d decide.Decision, local, remote string) string {
	if sameState(l, r) {
		if d.Action != decide.Merge && d.Action != decide.Ignore {
			return "bad: " + d.Action.String()
		}
		if l.op != proto.OpPut && l.op != proto.OpMkdir || l.modTime.Equal(r.modTime) && l.origin == r.origin {
			return "same"
		}
	}
	if d.Winner == decide.Local {
		return local
	}
	return remote
}

// TestResolveProperty draws random pairs of versions and checks that the
// decision is deterministic, the same from both holders, and never loses a
// version that is not a delete: a concurrent loser with content is kept.
func TestResolveProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := []string{nodeA, nodeB, nodeC}
	randSide := func() side {
		v := vv{}
		for _, n := range nodes {
			if c := rng.IntN(3); c > 0 {
				v[n] = uint64(c)
			}
		}
		if len(v) == 0 {
			v[nodes[rng.IntN(3)]] = 1
		}
		s := side{version: v, modTime: t0.Add(time.Duration(rng.IntN(3)) * time.Second), origin: nodes[rng.IntN(3)]}
		switch rng.IntN(4) {
		case 0:
			s.op = proto.OpDelete
		case 1:
			s.op = proto.OpMkdir
		case 2:
			s.op = proto.OpSymlink
			s.target = string(rune('x' + rng.IntN(2)))
		default:
			s.op = proto.OpPut
			s.hash = [32]byte{byte(rng.IntN(3))}
		}
		return s
	}
	for i := range 20000 {
		a, b := randSide(), randSide()
		d1 := decide.Resolve(a.entry(), b.change(), b.origin)
		d2 := decide.Resolve(a.entry(), b.change(), b.origin)
		if fmt.Sprint(d1) != fmt.Sprint(d2) {
			t.Fatalf("%d: not deterministic: %+v / %+v", i, d1, d2)
		}
		order := b.version.Compare(a.version)
		if order != cache.Concurrent {
			continue
		}
		d3 := decide.Resolve(b.entry(), a.change(), a.origin)
		if winnerName(a, b, d1, "a", "b") != winnerName(b, a, d3, "b", "a") || d1.LoserName != d3.LoserName ||
			fmt.Sprint(d1.Version) != fmt.Sprint(d3.Version) {
			t.Fatalf("%d: asymmetric: %+v / %+v for %+v, %+v", i, d1, d3, a, b)
		}
		if d1.Version.Compare(a.version) != cache.After || d1.Version.Compare(b.version) != cache.After {
			t.Fatalf("%d: version %v does not cover %v and %v", i, d1.Version, a.version, b.version)
		}
		// Nothing with content is lost: each non-delete side either holds
		// the path or is kept at LoserName, or both sides hold one state.
		for _, c := range []struct {
			s    side
			held bool
			kept bool
		}{
			{a, d1.Winner == decide.Local, d1.Loser == decide.Local},
			{b, d1.Winner == decide.Remote, d1.Loser == decide.Remote},
		} {
			if c.s.op == proto.OpDelete || sameState(a, b) {
				continue
			}
			if !c.held && !c.kept {
				t.Fatalf("%d: %+v lost: %+v", i, c.s, d1)
			}
			if c.kept && d1.LoserName == "" {
				t.Fatalf("%d: loser without a name: %+v", i, d1)
			}
		}
	}
}

func TestActionSideString(t *testing.T) {
	for want, s := range map[string]fmt.Stringer{
		"invalid": decide.Invalid, "ignore": decide.Ignore, "apply": decide.Apply, "merge": decide.Merge,
		"conflict": decide.Conflict, "Action(9)": decide.Action(9),
		"none": decide.None, "local": decide.Local, "remote": decide.Remote, "Side(7)": decide.Side(7),
	} {
		if got := s.String(); got != want {
			t.Errorf("%s: got %q", want, got)
		}
	}
}
