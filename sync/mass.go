package sync

import (
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
)

// A pull that replaces or deletes a large share of the folder's files (a
// mistaken rm -r on a peer, ransomware encrypting its folder) is applied
// like any other, since the version store keeps what it replaced, but it
// is made visible: a warning, and Status.MassChange.

// Thresholds of a mass change: at least massMinFiles files, and at least
// massShare of the files the node held.
const (
	massMinFiles = 100
	massShare    = 0.5
)

// MassChange is a pull from one node that replaced or deleted many files.
type MassChange struct {
	Node     string    // the node's name (or ID)
	Replaced int       // files whose content it replaced
	Deleted  int       // files it deleted
	Files    int       // files the node held before
	At       time.Time // when the pull started: --at of a restore
}

// massCounts counts, during a pull, what each peer's changes did to live
// local files.
type massCounts struct {
	start    time.Time
	replaced map[crypto.NodeID]int
	deleted  map[crypto.NodeID]int
}

// noteApplied counts a change of peer id applied over local (the entry
// before it): a replaced or deleted live file.
func (e *Engine) noteApplied(id crypto.NodeID, local *cache.Entry, deleted bool) {
	if local == nil || local.Deleted || local.Kind != cache.KindFile || local.Local == (cache.LocalStat{}) {
		return
	}
	m := &e.mass
	if m.replaced == nil {
		m.replaced, m.deleted = make(map[crypto.NodeID]int), make(map[crypto.NodeID]int)
	}
	if deleted {
		m.deleted[id]++
	} else {
		m.replaced[id]++
	}
}

// checkMass reports, once a pull is done, the peers whose changes
// replaced or deleted a mass of files, and resets the counts.
func (e *Engine) checkMass() {
	m := e.mass
	e.mass = massCounts{start: e.clock.Now()}
	ids := make(map[crypto.NodeID]bool)
	for id := range m.replaced {
		ids[id] = true
	}
	for id := range m.deleted {
		ids[id] = true
	}
	var live int
	counted := false
	for id := range ids {
		del := m.deleted[id]
		n := del + m.replaced[id]
		if n < massMinFiles {
			continue
		}
		if !counted {
			live, counted = e.liveFiles(), true
		}
		before := live + del // what it deleted is gone from the count
		if float64(n) < massShare*float64(before) {
			continue
		}
		mc := MassChange{Node: e.nodeLabel(id.String()), Replaced: m.replaced[id], Deleted: del, Files: before, At: m.start}
		e.log.Warn("a pull replaced or deleted most of the folder's files: they are kept as versions; "+
			"to undo it, restore the folder as it was before it (escalefs versions restore FOLDER --at TIME)",
			"node", mc.Node, "replaced", mc.Replaced, "deleted", mc.Deleted, "files", mc.Files,
			"at", mc.At.Add(-time.Second).Local().Format("2006-01-02 15:04:05"))
		e.mu.Lock()
		e.massChange = &mc
		e.mu.Unlock()
	}
}

// liveFiles counts the files the cache holds.
func (e *Engine) liveFiles() int {
	n := 0
	_ = e.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if !ent.Deleted && ent.Kind == cache.KindFile {
				n++
			}
			return nil
		})
	})
	return n
}
