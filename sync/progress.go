package sync

import (
	"fmt"
	"slices"
	gosync "sync"
)

// Transfer is an upload or a download under way, for Status.
type Transfer struct {
	// Up is set for an upload, clear for a download.
	Up bool
	// What is the path of a large file, or "N small files" for a pack.
	What string
	// Done and Size are in bytes of content.
	Done, Size int64
}

// transfers tracks the transfers under way and what a pull has yet to
// apply. Its methods may be called from any goroutine.
type transfers struct {
	mu       gosync.Mutex
	next     int
	active   map[int]*Transfer
	incoming Queue
	changed  func() // Config.OnStatus, through Engine.statusChanged
}

func (t *transfers) start(up bool, what string, size int64) int {
	t.mu.Lock()
	if t.active == nil {
		t.active = make(map[int]*Transfer)
	}
	t.next++
	id := t.next
	t.active[id] = &Transfer{Up: up, What: what, Size: size}
	t.mu.Unlock()
	t.notify()
	return id
}

func (t *transfers) set(id int, done int64) {
	t.mu.Lock()
	if tr := t.active[id]; tr != nil {
		tr.Done = min(done, tr.Size)
	}
	t.mu.Unlock()
	t.notify()
}

func (t *transfers) end(id int) {
	t.mu.Lock()
	delete(t.active, id)
	t.mu.Unlock()
	t.notify()
}

// setIncoming records what the pull under way has yet to apply.
func (t *transfers) setIncoming(q Queue) {
	t.mu.Lock()
	t.incoming = q
	t.mu.Unlock()
	t.notify()
}

// snapshot returns the transfers under way, oldest first, and the incoming
// queue.
func (t *transfers) snapshot() ([]Transfer, Queue) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]int, 0, len(t.active))
	for id := range t.active {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Transfer, 0, len(ids))
	for _, id := range ids {
		out = append(out, *t.active[id])
	}
	return out, t.incoming
}

func (t *transfers) notify() {
	if t.changed != nil {
		t.changed()
	}
}

// packWhat names a pack of n files.
func packWhat(n int) string {
	if n == 1 {
		return "1 small file"
	}
	return fmt.Sprintf("%d small files", n)
}
