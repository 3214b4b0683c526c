package sync_test

import (
	"context"
	"testing"
	"time"

	escsync "github.com/escalefs/escalefs/sync"
)

// blobsOf lists the blobs node n wrote that are still on the relay.
func (c *cluster) blobsOf(n *node) []string {
	return relayNames(c.t, c.relay, "blobs/"+n.e.Node().String())
}

func lockTimeout(d time.Duration) nodeOpts {
	return func(c *escsync.Config) { c.LockTimeout = d }
}

func pullers(n int) nodeOpts {
	return func(c *escsync.Config) { c.Pullers = n }
}

// register runs one round of every node so that each has seen the others.
func (c *cluster) register() {
	for range 2 {
		for _, n := range c.nodes {
			n.round(c.t)
		}
	}
}

// TestBlobDeletedAfterLastAck: a blob stays until the last puller
// acknowledged it, and goes then.
func TestBlobDeletedAfterLastAck(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	d := c.add("d", small)
	c.register()
	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatalf("blobs after push: %v", c.blobsOf(a))
	}
	b.round(t) // pulls and acks
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatalf("blob collected before d pulled: %v", c.blobsOf(a))
	}
	d.round(t) // the last puller
	if got := string(d.read(t, "f.txt")); got != "payload" {
		t.Fatalf("d has %q", got)
	}
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("blob still there after every ack: %v", blobs)
	}
	if a.e.Stats().BlobsDeleted != 1 {
		t.Errorf("BlobsDeleted = %d", a.e.Stats().BlobsDeleted)
	}
}

// TestLockTimeout: a stopped puller holds collection back until
// lock-timeout, and not after.
func TestLockTimeout(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	const timeout = time.Hour
	a := c.add("a", small, lockTimeout(timeout))
	b := c.add("b", small, lockTimeout(timeout))
	stopped := c.add("stopped", small, lockTimeout(timeout))
	c.register()
	stopped.stop(t) // never pulls again

	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected while the stopped puller is within lock-timeout")
	}
	// a and b stay alive (heartbeats), the stopped node does not.
	c.clock.Advance(timeout - time.Minute)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected before lock-timeout elapsed")
	}
	c.clock.Advance(2 * time.Minute)
	b.round(t)
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("not collected after lock-timeout: %v", blobs)
	}
}

// TestPullerCount: with three nodes and pullers = 2, as Escale's puller
// count, a blob goes once two pullers have it, whichever they are.
func TestPullerCount(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small, pullers(2))
	b := c.add("b", small, pullers(2))
	d := c.add("d", small, pullers(2))
	e := c.add("e", small, pullers(2))
	c.register()
	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected after one of two pullers")
	}
	d.round(t)
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("not collected after two pullers: %v", blobs)
	}
	// The third puller comes late: the content is gone, and it says so
	// rather than installing anything wrong.
	e.round(t)
	if e.exists("f.txt") {
		t.Error("e installed a file whose blob was collected")
	}
}

// TestPullerCountThreeNodes: with three nodes and pullers = 2 (Escale's
// wizard: clients − 1), a blob waits for both other nodes.
func TestPullerCountThreeNodes(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small, pullers(2))
	b := c.add("b", small, pullers(2))
	d := c.add("d", small, pullers(2))
	c.register()
	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	d.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected after one of two pullers")
	}
	b.round(t)
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("not collected after both pullers: %v", blobs)
	}
	if string(b.read(t, "f.txt")) != "payload" || string(d.read(t, "f.txt")) != "payload" {
		t.Fatal("a puller lacks the file")
	}
}

// TestCompaction: once every peer has read a node's records, they are
// compacted into one snapshot, and a node that joins afterwards reads it.
func TestCompaction(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	c.add("b", small)
	for i := range 5 {
		a.write(t, "dir/f"+itoa(i), []byte("x"+itoa(i)))
		c.settle()
	}
	if err := removeFile(a, "dir/f0"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.sameTrees()
	logs := relayNames(t, c.relay, "nodes/"+a.e.Node().String())
	var records, snaps int
	for _, n := range logs {
		switch {
		case contains(n, "/log/"):
			records++
		case contains(n, "/snap/"):
			snaps++
		}
	}
	if snaps != 1 || records > 2 {
		t.Fatalf("after compaction a's log holds %d records and %d snapshots: %v", records, snaps, logs)
	}
	if a.e.Stats().RecsDeleted == 0 {
		t.Error("no record deleted")
	}
	// A late joiner learns the tree from the snapshots: the directory and
	// the deletion; content whose blobs are gone is left for a request.
	late := c.add("late", small)
	late.round(t)
	if !late.exists("dir") {
		t.Error("late joiner did not create dir from the snapshot")
	}
	ent, ok, err := late.store.Get("dir/f0")
	if err != nil || !ok || !ent.Deleted {
		t.Errorf("late joiner's entry for the deleted file: %+v %v %v", ent, ok, err)
	}
}

// TestDeadPeerStaleBlobs: the blobs a node left by a push it never
// finished are cleared by the others once it is silent beyond the lock
// timeout; the blobs its records name stay.
func TestDeadPeerStaleBlobs(t *testing.T) {
	fr := &failingPuts{Relay: fileRelay(t), prefix: "nodes/"}
	c := newCluster(t, fr)
	const timeout = time.Hour
	a := c.add("a", small, lockTimeout(timeout))
	d := c.add("d", small, lockTimeout(timeout))
	idle := c.add("idle", small, lockTimeout(timeout))
	c.register()
	idle.stop(t) // a puller that never acks: d's named blobs stay
	d.write(t, "kept.txt", []byte("named by a record"))
	d.round(t)
	d.write(t, "lost.txt", []byte("uploaded, never named"))
	fr.armed.Store(true)
	if _, err := d.e.Round(context.Background()); err == nil {
		t.Fatal("d's record went out")
	}
	fr.armed.Store(false)
	d.stop(t) // d dies with a blob no record names
	if n := len(c.blobsOf(d)); n != 2 {
		t.Fatalf("d's blobs: %d", n)
	}
	a.round(t)
	if n := len(c.blobsOf(d)); n != 2 {
		t.Fatalf("cleared while d is within the lock timeout: %d left", n)
	}
	c.clock.Advance(timeout + time.Minute)
	a.round(t)
	if n := len(c.blobsOf(d)); n != 1 {
		t.Fatalf("after the lock timeout d has %d blobs, want the named one", n)
	}
	if string(a.read(t, "kept.txt")) != "named by a record" {
		t.Fatal("a lacks kept.txt")
	}
}
