package sync_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	escsync "github.com/escalefs/escalefs/sync"
)

// Status tells what waits to be pushed, in paths and bytes, and how the
// rounds went: a failed round leaves the files queued and its error, a
// working one empties the queue and sets the time of the last sync. After
// the engine stopped, ReadQueue finds the same queue in the cache opened
// read-only.
func TestStatusQueue(t *testing.T) {
	fr := &failingPuts{Relay: fileRelay(t), prefix: "blobs/"}
	c := newCluster(t, fr)
	var kicks atomic.Int64
	onStatus := func(cfg *escsync.Config) { cfg.OnStatus = func() { kicks.Add(1) } }
	a := c.add("a", small, onStatus)
	c.register()

	st, err := a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Queue.Empty() || st.Failing || st.LastError != nil || !st.LastSync.Equal(c.clock.Now()) {
		t.Fatalf("after working rounds: %+v", st)
	}
	if kicks.Load() == 0 {
		t.Error("OnStatus was not called after a round")
	}

	a.write(t, "dir/f.txt", []byte("12345"))
	a.write(t, "g.txt", make([]byte, 10000))
	fr.armed.Store(true)
	synced := st.LastSync
	c.clock.Advance(time.Minute)
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("round succeeded with the relay refusing blobs")
	}
	st, err = a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	want := escsync.Queue{Files: 3, Bytes: 10005} // dir, dir/f.txt, g.txt
	if st.Queue != want {
		t.Errorf("queue after a failed round: %+v, want %+v", st.Queue, want)
	}
	if !st.Failing || st.LastError == nil || !st.LastErrorAt.Equal(c.clock.Now()) || !st.LastSync.Equal(synced) {
		t.Errorf("after a failed round: failing %v, error %v at %v, last sync %v (was %v)",
			st.Failing, st.LastError, st.LastErrorAt, st.LastSync, synced)
	}

	// The process stops here: the queue is on disk.
	a.stop(t)
	ro, err := cache.Open(filepath.Join(a.state, "cache.db"), cache.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	q, err := escsync.ReadQueue(ro)
	if err != nil {
		t.Fatal(err)
	}
	if q != want {
		t.Errorf("ReadQueue of the stopped node: %+v, want %+v", q, want)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	fr.armed.Store(false)
	c.start(a, small)
	c.clock.Advance(time.Minute)
	a.round(t)
	st, err = a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Queue.Empty() || st.Failing || !st.LastSync.Equal(c.clock.Now()) || st.Stats.FilesPushed != 2 {
		t.Errorf("after the restart's round: %+v", st)
	}
}

// A record that could not be published counts in the queue until it is.
func TestStatusUnpublishedRecord(t *testing.T) {
	fr := &failingPuts{Relay: fileRelay(t), prefix: "nodes/"}
	c := newCluster(t, fr)
	a := c.add("a", small)
	c.register()
	a.write(t, "f.txt", []byte("x"))
	fr.armed.Store(true)
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("round succeeded with the relay refusing records")
	}
	st, err := a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Queue != (escsync.Queue{Records: 1}) || st.Queue.Empty() {
		t.Errorf("queue with a record in the outbox: %+v", st.Queue)
	}
	fr.armed.Store(false)
	a.round(t)
	if st, err = a.e.Status(); err != nil || !st.Queue.Empty() {
		t.Errorf("queue once published: %+v, %v", st.Queue, err)
	}
}

// Run reports its start and its end to OnStatus; a clean stop leaves no
// error in Status.
func TestStatusRunStopped(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	kicked := make(chan struct{}, 1)
	a := c.add("a", small, func(cfg *escsync.Config) {
		cfg.OnStatus = func() {
			select {
			case kicked <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.e.Run(ctx) }()
	select {
	case <-kicked:
	case <-time.After(30 * time.Second):
		t.Fatal("OnStatus not called after Run's first round")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := a.e.Status()
	if err != nil || st.Stopped != nil || st.LastSync.IsZero() {
		t.Errorf("after Run stopped: %+v, %v", st, err)
	}
}
