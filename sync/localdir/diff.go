package localdir

import (
	"container/heap"
	"slices"
	"sort"

	"github.com/escalefs/escalefs/cache"
)

// item is a Change being worked out.
type item struct {
	Change
	dead bool
	// fresh marks a creation at a path where the cache has nothing (or a
	// tombstone): only those can be the target of a rename.
	fresh bool
	// old is the cache's entry for a removal or an in-place change.
	old *cached
}

// diff turns what the scan found into ordered changes.
func (s *scanner) diff() []Change {
	var items []*item
	dpaths := make([]string, 0, len(s.disk))
	for p := range s.disk {
		dpaths = append(dpaths, p)
	}
	slices.SortFunc(dpaths, pathCompare)
	for _, p := range dpaths {
		od := s.disk[p]
		c := s.cache[p]
		if c != nil && c.deleted {
			c = nil
		}
		switch {
		case c == nil:
			items = append(items, created(p, od, true))
		case c.kind != od.kind:
			items = append(items, removal(p, c), created(p, od, false))
		default:
			if it := inPlace(p, od, c); it != nil {
				items = append(items, it)
			}
		}
	}
	for _, p := range s.cpaths {
		c := s.cache[p]
		if c.deleted || s.disk[p] != nil || c.local == (cache.LocalStat{}) || IsTemp(p) || s.hidden(p, c.kind) {
			continue
		}
		items = append(items, removal(p, c))
	}
	s.pairFiles(items)
	s.collapseDirs(items)
	return s.order(items)
}

// fill sets the new-state fields of ch from od.
func fill(ch *Change, od *ondisk) {
	ch.Kind, ch.ModTime, ch.Mode, ch.Target, ch.Local = od.kind, od.mtime, od.mode, od.target, od.local
	if od.kind == cache.KindFile {
		ch.Size, ch.Hash, ch.Chunks = od.size, od.hash, od.chunks
	}
}

// created is the change for something new at p.
func created(p string, od *ondisk, fresh bool) *item {
	it := &item{Change: Change{Path: p}, fresh: fresh}
	switch od.kind {
	case cache.KindFile:
		it.Op = OpCreate
	case cache.KindDir:
		it.Op = OpMkdir
	case cache.KindSymlink:
		it.Op = OpSymlink
	}
	fill(&it.Change, od)
	return it
}

// removal is the change for the cache's entry c at p, gone from disk.
func removal(p string, c *cached) *item {
	op := OpDelete
	if c.kind == cache.KindDir {
		op = OpRmdir
	}
	return &item{Change: Change{Op: op, Path: p, Kind: c.kind}, old: c}
}

// inPlace is the change, if any, for p whose disk state od and cache entry
// c are of the same kind.
func inPlace(p string, od *ondisk, c *cached) *item {
	inodeMoved := od.local.Inode != 0 && c.local.Inode != 0 && od.local.Inode != c.local.Inode
	var op Op
	switch od.kind {
	case cache.KindDir:
		switch {
		case od.mode != c.mode:
			op = OpChmod
		case inodeMoved:
			op = OpRestat
		}
	case cache.KindSymlink:
		switch {
		case od.target != c.target:
			op = OpRetarget
		case inodeMoved:
			op = OpRestat
		}
	case cache.KindFile:
		switch {
		case od.hash != c.hash || od.size != c.size:
			op = OpModify
		case !od.mtime.Equal(c.mtime):
			op = OpTouch
		case od.mode != c.mode:
			op = OpChmod
		case od.local != c.local:
			op = OpRestat
		}
	}
	if op == 0 {
		return nil
	}
	it := &item{Change: Change{Op: op, Path: p}, old: c}
	fill(&it.Change, od)
	return it
}

// renameKey is what a removed and a created path must share to be a rename.
type renameKey struct {
	kind   cache.Kind
	size   int64
	hash   [32]byte
	target string
}

func keyOf(k cache.Kind, size int64, hash [32]byte, target string) renameKey {
	if k == cache.KindSymlink {
		return renameKey{kind: k, target: target}
	}
	return renameKey{kind: k, size: size, hash: hash}
}

// pairFiles turns a removed file or symlink and a fresh one with the same
// content (and the same inode where both are known) into one rename. An
// empty file pairs only by inode: by content alone any empty file would do.
func (s *scanner) pairFiles(items []*item) {
	byInode := make(map[uint64]*item)
	byKey := make(map[renameKey][]*item)
	for _, it := range items {
		if it.Op != OpDelete {
			continue
		}
		if ino := it.old.local.Inode; ino != 0 {
			byInode[ino] = it
		}
		k := keyOf(it.old.kind, it.old.size, it.old.hash, it.old.target)
		byKey[k] = append(byKey[k], it)
	}
	if len(byKey) == 0 {
		return
	}
	for _, it := range items {
		if !it.fresh || (it.Op != OpCreate && it.Op != OpSymlink) {
			continue
		}
		k := keyOf(it.Kind, it.Size, it.Hash, it.Target)
		var src *item
		if ino := it.Local.Inode; ino != 0 {
			if r := byInode[ino]; r != nil && !r.dead && keyOf(r.old.kind, r.old.size, r.old.hash, r.old.target) == k {
				src = r
			}
		}
		if src == nil && !(it.Kind == cache.KindFile && it.Size == 0) {
			for _, r := range byKey[k] {
				if r.dead || (it.Local.Inode != 0 && r.old.local.Inode != 0) {
					continue // both inodes known and different: a copy, not a move
				}
				src = r
				break
			}
		}
		if src != nil {
			src.dead = true
			it.Op, it.From = OpRename, src.Path
		}
	}
}

// collapseDirs turns the removal of a directory D and the creation of a
// fresh directory E into one rename of D to E when D's whole subtree moved:
// every entry the cache has below D (that is not hidden, and was seen on
// this disk) was paired with the entry at the same place below E. E is
// found by inode where known, else from where D's first moved child went.
// An empty directory moves only by inode. The changes of the subtree fold
// into the rename; what else differs below E (a mode, an mtime) stays as
// in-place changes, and new entries below E stay creations.
func (s *scanner) collapseDirs(items []*item) {
	m := &dirMoves{s: s, rmdirs: make(map[string]*item), mkdirs: make(map[string]*item),
		mkdirsByInode: make(map[uint64]*item), movedFrom: make(map[string]*item)}
	var order []*item
	for _, it := range items {
		switch {
		case it.Op == OpRmdir:
			m.rmdirs[it.Path] = it
			order = append(order, it)
		case it.Op == OpMkdir && it.fresh:
			m.mkdirs[it.Path] = it
			if it.Local.Inode != 0 {
				m.mkdirsByInode[it.Local.Inode] = it
			}
		case it.Op == OpRename:
			m.movedFrom[it.From] = it
		}
	}
	if len(order) == 0 || len(m.mkdirs) == 0 {
		return
	}
	slices.SortFunc(order, func(a, b *item) int { return pathCompare(a.Path, b.Path) })
	for _, rd := range order {
		if rd.dead {
			continue
		}
		d := rd.Path
		sub := m.subtree(d)
		e := m.target(rd, sub)
		if e == nil || e.dead || e.Op != OpMkdir || under(e.Path, d) {
			continue
		}
		parts, n, ok := m.parts(d, e.Path, sub)
		if !ok || (n == 0 && rd.old.local.Inode == 0) {
			continue
		}
		m.collapse(rd, e, parts)
	}
}

// dirMoves are the removals, creations and renames collapseDirs pairs.
type dirMoves struct {
	s             *scanner
	rmdirs        map[string]*item
	mkdirs        map[string]*item // fresh directories
	mkdirsByInode map[uint64]*item
	movedFrom     map[string]*item // renames, by source
}

// subtree returns the cached paths below d, in order.
func (m *dirMoves) subtree(d string) []string {
	cpaths := m.s.cpaths
	lo := sort.Search(len(cpaths), func(i int) bool { return pathCompare(cpaths[i], d) > 0 })
	sub := cpaths[lo:]
	for i, p := range sub {
		if !under(p, d) {
			return sub[:i]
		}
	}
	return sub
}

// target returns the fresh directory the removed directory rd may have
// moved to: the one with its inode, or, where the inode is unknown, the one
// the first rename out of its subtree (sub) went into.
func (m *dirMoves) target(rd *item, sub []string) *item {
	if ino := rd.old.local.Inode; ino != 0 {
		return m.mkdirsByInode[ino]
	}
	d := rd.Path
	for _, x := range sub {
		if mv := m.movedFrom[x]; mv != nil && !mv.dead && mv.Op == OpRename {
			rest := x[len(d):]
			if len(mv.Path) > len(rest) && mv.Path[len(mv.Path)-len(rest):] == rest {
				return m.mkdirs[mv.Path[:len(mv.Path)-len(rest)]]
			}
			return nil
		}
	}
	return nil
}

// parts returns the items that move the subtree sub of d to the same
// places below e, and how many entries it has; ok is false when one entry
// did not move there.
func (m *dirMoves) parts(d, e string, sub []string) (parts []*item, n int, ok bool) {
	for _, x := range sub {
		cx := m.s.cache[x]
		if cx.deleted || cx.local == (cache.LocalStat{}) || m.s.hidden(x, cx.kind) {
			continue
		}
		n++
		t := e + x[len(d):]
		if cx.kind == cache.KindDir {
			rm, mk := m.rmdirs[x], m.mkdirs[t]
			if rm == nil || rm.dead || mk == nil || mk.dead || mk.Op != OpMkdir {
				return nil, n, false
			}
			parts = append(parts, rm, mk)
			continue
		}
		mv := m.movedFrom[x]
		if mv == nil || mv.dead || mv.Op != OpRename || mv.Path != t {
			return nil, n, false
		}
		parts = append(parts, mv)
	}
	return parts, n, true
}

// collapse makes the removal rd and the creation e one rename; the moves
// of the entries below (parts) become changes in place, if any.
func (m *dirMoves) collapse(rd, e *item, parts []*item) {
	d := rd.Path
	rd.dead = true
	e.Op, e.From, e.fresh = OpRename, d, false
	for _, p := range parts {
		switch p.Op {
		case OpRmdir:
			p.dead = true
		default: // the Mkdir or rename of an entry below E
			from := p.From
			if p.Op == OpMkdir {
				from = d + p.Path[len(e.Path):]
			}
			if ip := inPlace(p.Path, m.s.disk[p.Path], m.s.cache[from]); ip != nil {
				p.Change, p.fresh = ip.Change, false
			} else {
				p.dead = true
			}
		}
	}
}

// order sorts the live changes so that each can be applied after those
// before it (see ScanResult.Changes): a topological sort of the
// dependencies, taking the lowest in (removals last, path order; removals
// in reverse path order) whenever there is a choice.
func (s *scanner) order(items []*item) []Change {
	var live []*item
	for _, it := range items {
		if !it.dead {
			live = append(live, it)
		}
	}
	g := dependencies(live)
	n := len(live)
	h := &changeHeap{items: live}
	for i := range live {
		if g.indeg[i] == 0 {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	out := make([]Change, 0, n)
	done := make([]bool, n)
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		done[i] = true
		out = append(out, live[i].Change)
		for _, j := range g.next[i] {
			if g.indeg[j]--; g.indeg[j] == 0 {
				heap.Push(h, j)
			}
		}
	}
	if len(out) < n { // a cycle: should not happen; keep everything anyway
		s.d.log.Error("scan: changes with circular dependencies; reporting them in path order", "count", n-len(out))
		for i, it := range live {
			if !done[i] {
				out = append(out, it.Change)
			}
		}
	}
	return out
}

// changeGraph says which changes must come before which: next[a] lists
// the changes after a; indeg[b] counts those before b.
type changeGraph struct {
	next  [][]int
	indeg []int
}

func (g *changeGraph) edge(a, b int) {
	if a != b {
		g.next[a] = append(g.next[a], b)
		g.indeg[b]++
	}
}

// dependencies returns the order the changes of live need: a directory
// made (or renamed into place) before anything inside it, a path removed
// before something is made there, and a directory removed only after
// everything inside it is removed or renamed away.
func dependencies(live []*item) *changeGraph {
	n := len(live)
	addedDir := make(map[string]int)
	removedAt := make(map[string]int)
	rmdirAt := make(map[string]int)
	for i, it := range live {
		switch it.Op {
		case OpDelete:
			removedAt[it.Path] = i
		case OpRmdir:
			removedAt[it.Path] = i
			rmdirAt[it.Path] = i
		case OpRename:
			removedAt[it.From] = i
			if it.Kind == cache.KindDir {
				addedDir[it.Path] = i
			}
		case OpMkdir:
			addedDir[it.Path] = i
		}
	}
	g := &changeGraph{next: make([][]int, n), indeg: make([]int, n)}
	for i, it := range live {
		removes := ""
		switch it.Op {
		case OpDelete, OpRmdir:
			removes = it.Path
		default:
			for dir, _ := splitRel(it.Path); dir != ""; dir, _ = splitRel(dir) {
				if j, ok := addedDir[dir]; ok {
					g.edge(j, i)
				}
			}
			if j, ok := removedAt[it.Path]; ok {
				g.edge(j, i)
			}
			if it.Op == OpRename {
				removes = it.From
			}
		}
		for dir, _ := splitRel(removes); dir != ""; dir, _ = splitRel(dir) {
			if j, ok := rmdirAt[dir]; ok {
				g.edge(i, j)
			}
		}
	}
	return g
}

// changeHeap is a min-heap of indexes into items by (removal, path order).
type changeHeap struct {
	items []*item
	idx   []int
}

func isRemoval(op Op) bool { return op == OpDelete || op == OpRmdir }

func (h *changeHeap) Len() int { return len(h.idx) }
func (h *changeHeap) Less(a, b int) bool {
	x, y := h.items[h.idx[a]], h.items[h.idx[b]]
	rx, ry := isRemoval(x.Op), isRemoval(y.Op)
	if rx != ry {
		return ry
	}
	c := pathCompare(x.Path, y.Path)
	if rx {
		return c > 0
	}
	return c < 0
}
func (h *changeHeap) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *changeHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *changeHeap) Pop() any {
	i := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return i
}
