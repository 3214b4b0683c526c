package sync

import (
	"github.com/escalefs/escalefs/sync/localdir"
)

// shortIDLen is how much of a node ID stands for the node where its name
// cannot: a name that another node also has, or one not known yet. As
// Syncthing's short device IDs, it tells a handful of nodes apart.
const shortIDLen = 8

// nodeLabel is how conflict copies and log lines name the node with ID id:
// its name, as it last published it, or the start of its ID where the
// name is unknown or another node has the same one. Every node reaches the
// same label once it read the node's records (learnName is called before
// a record is applied), so that they all name a conflict copy alike.
func (e *Engine) nodeLabel(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loadNamesLocked()
	if e.labels == nil {
		e.labels = labelNodes(e.names)
	}
	if l, ok := e.labels[id]; ok {
		return l
	}
	return shortID(id)
}

// learnName records that node id goes by name, as a record of it says.
func (e *Engine) learnName(id, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loadNamesLocked()
	if e.names[id] != name {
		e.names[id] = name
		e.labels = nil
	}
}

// loadNamesLocked reads the names of this node and its peers from the
// cache, once; e.mu is held. Names it cannot read stay unknown, and their
// nodes go by their short IDs.
func (e *Engine) loadNamesLocked() {
	if e.names != nil {
		return
	}
	e.names = map[string]string{e.selfID: e.cfg.Name}
	if peers, err := ReadPeers(e.store); err == nil {
		for _, p := range peers {
			e.names[p.ID] = p.Name
		}
	}
	e.labels = nil
}

// labelNodes labels each node of names (ID → name): its name where no
// other node's name looks the same in a file name, its short ID otherwise.
func labelNodes(names map[string]string) map[string]string {
	count := make(map[string]int)
	for _, n := range names {
		if n != "" {
			count[localdir.ConflictLabel(n)]++
		}
	}
	labels := make(map[string]string, len(names))
	for id, n := range names {
		if n != "" && count[localdir.ConflictLabel(n)] == 1 {
			labels[id] = n
		} else {
			labels[id] = shortID(id)
		}
	}
	return labels
}

func shortID(id string) string {
	if len(id) > shortIDLen {
		return id[:shortIDLen]
	}
	return id
}
