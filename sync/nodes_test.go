package sync_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// control gives a node a control directory, its state directory.
func control(dir string) nodeOpts {
	return func(c *escsync.Config) { c.Control = dir }
}

// listNodes lists the cluster's nodes as the relay shows them, at the
// cluster's clock.
func (c *cluster) listNodes(opts escsync.ListOptions) map[string]escsync.NodeInfo {
	c.t.Helper()
	repo, err := escsync.OpenRepository(context.Background(), c.relay, c.secret, escsync.RepoOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	opts.Now = c.clock.Now()
	list, err := escsync.ListNodes(context.Background(), c.relay, repo, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	out := make(map[string]escsync.NodeInfo)
	for _, n := range list {
		if n.Err != nil {
			c.t.Fatalf("%s: %v", n.Name, n.Err)
		}
		out[n.Name] = n
	}
	return out
}

// newestSeq is the highest sequence number of n's log on the relay.
func (c *cluster) newestSeq(n *node) uint64 {
	c.t.Helper()
	return c.listNodes(escsync.ListOptions{})[n.name].Newest
}

// TestForgetRetiredPuller: a puller that stopped holds a's and b's blobs
// back; once b forgets it (through its control directory, as escalefs
// nodes forget does with a running node), a and b collect them. When the
// forgotten node runs again it counts again.
func TestForgetRetiredPuller(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	bState := t.TempDir()
	b := c.add("b", small, control(bState))
	x := c.add("x", small)
	c.register()
	x.stop(t) // retired: never pulls again

	a.write(t, "from-a.txt", []byte("a's payload"))
	b.write(t, "from-b.txt", []byte("b's payload"))
	for range 2 {
		a.round(t)
		b.round(t)
	}
	if len(c.blobsOf(a)) != 1 || len(c.blobsOf(b)) != 1 {
		t.Fatalf("collected while x holds them: a %v, b %v", c.blobsOf(a), c.blobsOf(b))
	}
	if info := c.listNodes(escsync.ListOptions{})["x"]; !info.Puller || info.Forgotten() {
		t.Fatalf("x before forgetting: %+v", info)
	}

	// Forgetting the node itself is refused.
	if err := b.e.Forget(context.Background(), b.e.Node(), 0); !errors.Is(err, escsync.ErrForgetSelf) {
		t.Fatalf("b forgetting itself: %v", err)
	}
	upTo := c.newestSeq(x)
	req, _ := json.Marshal(escsync.ForgetRequest{Node: x.e.Node().String(), UpTo: upTo})
	dir := filepath.Join(bState, escsync.ForgetRequestsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1-r.json"), req, 0o600); err != nil {
		t.Fatal(err)
	}
	b.round(t)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the request is still there: %v", ents)
	}
	if !slices.Contains(relayNames(t, c.relay, "nodes"), layout.ForgetName(b.e.Node(), x.e.Node())) {
		t.Fatal("b published no forget record")
	}
	if blobs := c.blobsOf(b); len(blobs) != 0 {
		t.Fatalf("b kept its blob after forgetting x: %v", blobs)
	}
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("a kept its blob once x was forgotten: %v", blobs)
	}
	if !strings.Contains(a.logs.String(), "peer forgotten") {
		t.Error("a did not log that x is forgotten")
	}
	info := c.listNodes(escsync.ListOptions{})["x"]
	if !info.Forgotten() || info.Puller || info.NotPuller != escsync.NotPullerForgotten ||
		info.ForgottenUpTo != upTo || !slices.Equal(info.ForgottenBy, []crypto.NodeID{b.e.Node()}) {
		t.Fatalf("x after forgetting: %+v", info)
	}
	// Nothing of x was deleted.
	if names := relayNames(t, c.relay, "nodes/"+x.e.Node().String()); len(names) == 0 {
		t.Fatal("x's records are gone")
	}

	// x comes back: it writes at once, and counts again.
	c.start(x, small)
	x.round(t)
	if got := c.newestSeq(x); got <= upTo {
		t.Fatalf("x did not write after finding itself forgotten: newest %d", got)
	}
	if !strings.Contains(x.logs.String(), "a peer forgot this node") {
		t.Error("x did not log that it was forgotten")
	}
	b.round(t) // b sees x back and deletes its forget record
	if slices.Contains(relayNames(t, c.relay, "nodes"), layout.ForgetName(b.e.Node(), x.e.Node())) {
		t.Error("b kept its forget record of a node that came back")
	}
	if info := c.listNodes(escsync.ListOptions{})["x"]; !info.Puller || info.Forgotten() {
		t.Fatalf("x after coming back: %+v", info)
	}
	// What was collected while x was away, x asks for and gets again.
	c.settle()
	if string(x.read(t, "from-a.txt")) != "a's payload" || string(x.read(t, "from-b.txt")) != "b's payload" {
		t.Fatal("x lacks what was collected while it was forgotten")
	}
	if len(c.blobsOf(a)) != 0 {
		t.Fatalf("a's blobs after settling: %v", c.blobsOf(a))
	}
	a.write(t, "again.txt", []byte("x must have it"))
	a.round(t)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatalf("a collected before x, back, acknowledged: %v", c.blobsOf(a))
	}
	if !strings.Contains(a.logs.String(), "forgotten peer counts again") {
		t.Error("a did not log that x counts again")
	}
	x.round(t)
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("a kept its blob after x acknowledged it: %v", blobs)
	}
	if string(x.read(t, "again.txt")) != "x must have it" {
		t.Fatal("x lacks again.txt")
	}
}

// TestForgetWithoutEngine: PublishForget, for a node that does not run,
// publishes the record from the node's cache; a node that writes after the
// record's up_to was never forgotten.
func TestForgetWithoutEngine(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	x := c.add("x", small)
	c.register()
	a.write(t, "first.txt", []byte("everyone acks"))
	c.settle() // x acknowledges: its log goes beyond record 0
	x.stop(t)
	repo, err := escsync.OpenRepository(context.Background(), c.relay, c.secret, escsync.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := escsync.PublishForget(context.Background(), c.relay, repo, b.store, b.e.Node(), 0, c.clock.Now()); !errors.Is(err, escsync.ErrForgetSelf) {
		t.Fatalf("forgetting itself: %v", err)
	}
	// Forgotten as of an older record: x's log went further, so x counts.
	if err := escsync.PublishForget(context.Background(), c.relay, repo, b.store, x.e.Node(), 0, c.clock.Now()); err != nil {
		t.Fatal(err)
	}
	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected although x wrote after the record's up_to")
	}
	if c.listNodes(escsync.ListOptions{})["x"].Forgotten() {
		t.Fatal("x listed as forgotten")
	}
	if err := escsync.PublishForget(context.Background(), c.relay, repo, b.store, x.e.Node(), c.newestSeq(x), c.clock.Now()); err != nil {
		t.Fatal(err)
	}
	a.round(t)
	if blobs := c.blobsOf(a); len(blobs) != 0 {
		t.Fatalf("a kept its blob once x was forgotten: %v", blobs)
	}
}

// TestForgetRecordTampered: a forget record that does not open is ignored
// (logged): the node it names still counts.
func TestForgetRecordTampered(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	x := c.add("x", small)
	c.register()
	x.stop(t)
	if err := b.e.Forget(context.Background(), x.e.Node(), c.newestSeq(x)); err != nil {
		t.Fatal(err)
	}
	// Moved to another node's name: it is bound to the node it names.
	var sealed []byte
	name := layout.ForgetName(b.e.Node(), x.e.Node())
	if err := c.relay.Get(context.Background(), name, 0, 1<<20, func(r io.Reader) error {
		var err error
		sealed, err = io.ReadAll(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.relay.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if err := c.relay.Put(context.Background(), layout.ForgetName(b.e.Node(), a.e.Node()), relay.BytesPayload(sealed)); err != nil {
		t.Fatal(err)
	}
	a.write(t, "f.txt", []byte("payload"))
	a.round(t)
	b.round(t)
	a.round(t)
	if len(c.blobsOf(a)) != 1 {
		t.Fatal("collected on a moved forget record")
	}
	if !strings.Contains(a.logs.String(), "ignoring a forget record") {
		t.Error("a did not report the record")
	}
}

// TestListNodes: names, modes, last activity and how far behind each node
// is, by the fake clock.
func TestListNodes(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	t0 := c.clock.Now()
	a := c.add("a", small)
	b := c.add("b", small, func(cfg *escsync.Config) { cfg.Mode = proto.ModeConservative })
	a.round(t) // a0: registration
	b.round(t) // b0: registration, written before it read a0
	a.round(t)
	got := c.listNodes(escsync.ListOptions{})
	if len(got) != 2 {
		t.Fatalf("listed %v", got)
	}
	for _, n := range []string{"a", "b"} {
		if got[n].BehindTotal != 1 || !got[n].LastActivity.Equal(t0) || got[n].Newest != 0 || !got[n].Puller {
			t.Errorf("%s after registering: %+v", n, got[n])
		}
	}
	if got["a"].Mode != proto.ModeShared || got["b"].Mode != proto.ModeConservative {
		t.Errorf("modes %q %q", got["a"].Mode, got["b"].Mode)
	}
	if got["a"].ID != a.e.Node() || got["b"].ID != b.e.Node() {
		t.Error("wrong IDs")
	}

	c.clock.Advance(time.Minute)
	a.write(t, "f.txt", []byte("payload"))
	a.round(t) // a1: the file, acks b0
	b.round(t) // b1: acks a1
	got = c.listNodes(escsync.ListOptions{})
	if n := got["a"]; n.BehindTotal != 1 || n.Behind[b.e.Node()] != 1 || n.Newest != 1 || !n.LastActivity.Equal(t0.Add(time.Minute)) {
		t.Errorf("a: %+v", n)
	}
	if n := got["b"]; n.BehindTotal != 0 || len(n.Behind) != 0 || n.Acks[a.e.Node()] != 1 {
		t.Errorf("b: %+v", n)
	}

	// Two hours later a writes a heartbeat; b is silent.
	c.clock.Advance(2 * time.Hour)
	a.round(t) // a2: heartbeat, acks b1
	got = c.listNodes(escsync.ListOptions{LockTimeout: time.Hour})
	if n := got["a"]; n.BehindTotal != 0 || !n.LastActivity.Equal(c.clock.Now()) || !n.Puller {
		t.Errorf("a after its heartbeat: %+v", n)
	}
	if n := got["b"]; n.BehindTotal != 1 || n.Puller || n.NotPuller != escsync.NotPullerSilent ||
		!n.LastActivity.Equal(t0.Add(time.Minute)) {
		t.Errorf("b, silent: %+v", n)
	}
	// With the default lock timeout b still counts.
	if n := c.listNodes(escsync.ListOptions{})["b"]; !n.Puller {
		t.Errorf("b within the default lock timeout: %+v", n)
	}
}

// TestListNodesUpload: an upload-only node is no puller.
func TestListNodesUpload(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	c.add("a", small)
	c.add("up", small, func(cfg *escsync.Config) { cfg.Mode = proto.ModeUpload })
	c.register()
	n := c.listNodes(escsync.ListOptions{})["up"]
	if n.Puller || n.NotPuller != escsync.NotPullerUpload || n.Mode != proto.ModeUpload {
		t.Errorf("upload node: %+v", n)
	}
}
