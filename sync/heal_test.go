package sync_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	escsync "github.com/escalefs/escalefs/sync"
)

// TestDamagedBlobHeals: content whose blob the relay damaged reaches the
// puller while its writer keeps editing. The puller asks for it, and the
// writer uploads it again under a new blob, not the damaged one again. When
// the answer is damaged too, the request is posted again after a backoff,
// without waiting for a heartbeat.
func TestDamagedBlobHeals(t *testing.T) {
	ctx := context.Background()
	r, dir := dirRelay(t)
	c := newCluster(t, r)
	a := c.add("a", small)
	b := c.add("b", small)
	c.settle()
	blobs := func() []string { return relayNames(t, r, "blobs/"+a.e.Node().String()) }
	damageNew := func(before []string) {
		for _, name := range blobs() {
			if !slices.Contains(before, name) {
				flip(t, dir, name)
			}
		}
	}
	write := func(rel, data string) {
		before := blobs()
		a.write(t, rel, []byte(data))
		if _, err := a.e.Scan(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.e.Push(ctx); err != nil {
			t.Fatal(err)
		}
		damageNew(before)
	}
	// round is one round of each node, a writing another file first (an
	// active writer, which sends no heartbeat). With damage, a writes
	// nothing new and what it uploads (its answers) is damaged: b has no
	// new reason to post its requests again.
	tick := 0
	round := func(damage bool) {
		if !damage {
			tick++
			a.write(t, "tick.txt", []byte(strconv.Itoa(tick)))
		}
		before := blobs()
		a.round(t)
		if damage {
			damageNew(before)
		}
		b.round(t)
	}
	has := func(rel, want string) bool { return b.exists(rel) && string(b.read(t, rel)) == want }

	// Flipped, truncated, deleted: each heals while a keeps editing.
	for _, how := range []string{"flip", "truncate", "delete"} {
		before := blobs()
		a.write(t, how+".txt", []byte("damaged by "+how))
		if _, err := a.e.Scan(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.e.Push(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range blobs() {
			if slices.Contains(before, name) {
				continue
			}
			p := filepath.Join(dir, filepath.FromSlash(name))
			switch how {
			case "flip":
				flip(t, dir, name)
			case "truncate":
				if err := os.Truncate(p, 40); err != nil {
					t.Fatal(err)
				}
			case "delete":
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := 0; !has(how+".txt", "damaged by "+how); i++ {
			if i == 6 {
				t.Fatalf("b did not get %s.txt, whose blob the relay damaged (%s), in 6 rounds", how, how)
			}
			round(false)
		}
	}

	write("two.txt", "damaged twice")
	for range 3 {
		round(true) // the answers are damaged as well
	}
	for range 3 {
		round(false)
	}
	if has("two.txt", "damaged twice") {
		t.Fatal("two.txt arrived before the request was posted again")
	}
	st, err := b.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Waiting) != 1 || st.Waiting[0].Path != "two.txt" || st.Waiting[0].Since.IsZero() ||
		st.Waiting[0].Since.After(c.clock.Now()) {
		t.Errorf("b's status lists %+v as waiting, want two.txt with the time it was asked for", st.Waiting)
	}
	c.clock.Advance(2 * time.Minute)
	for i := 0; !has("two.txt", "damaged twice"); i++ {
		if i == 6 {
			t.Fatal("b did not get two.txt in 6 rounds after the backoff")
		}
		round(false)
	}
	c.settle()
	c.sameTrees()
	if st, err := b.e.Status(); err != nil || len(st.Waiting) != 0 {
		t.Errorf("b still waits for %+v (%v)", st.Waiting, err)
	}
}

// TestGarbageNodeIgnored: a node ID whose only record is garbage (planted
// by the relay) holds nothing back: rounds succeed, and the blobs are
// collected once the real nodes have them.
func TestGarbageNodeIgnored(t *testing.T) {
	ctx := context.Background()
	r, dir := dirRelay(t)
	c := newCluster(t, r)
	a := c.add("a", small)
	b := c.add("b", small)
	c.settle()
	garbage := filepath.Join(dir, "nodes", crypto.NewNodeID().String(), "log", "0000000000000000")
	if err := os.MkdirAll(filepath.Dir(garbage), 0o755); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 200)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, append([]byte("ESR1\x01"), noise...), 0o644); err != nil {
		t.Fatal(err)
	}
	a.write(t, "f.txt", []byte("collected once b has it"))
	for range 4 {
		for _, n := range []*node{a, b} {
			if _, err := n.e.Round(ctx); err != nil {
				t.Fatalf("%s: round with a garbage node on the relay: %v", n.name, err)
			}
		}
	}
	if !b.exists("f.txt") {
		t.Fatal("f.txt did not reach b")
	}
	if left := relayNames(t, r, "blobs/"+a.e.Node().String()); len(left) > 0 {
		t.Errorf("blobs of a still on the relay though every real node has them: %v", left)
	}

	// escalefs nodes shows it as unreadable and no puller. A real node
	// whose newest record the relay damaged stays a puller.
	a.write(t, "g.txt", []byte("a newer record"))
	if _, err := a.e.Scan(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.e.Push(ctx); err != nil {
		t.Fatal(err)
	}
	alog := relayNames(t, r, "nodes/"+a.e.Node().String())
	flip(t, dir, alog[len(alog)-1])
	repo, err := escsync.OpenRepository(ctx, r, c.secret, escsync.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := escsync.ListNodes(ctx, r, repo, escsync.ListOptions{Now: c.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d nodes listed, want a, b and the garbage one", len(list))
	}
	for _, n := range list {
		switch {
		case n.ID == a.e.Node():
			if n.Err == nil || n.Unreadable || !n.Puller {
				t.Errorf("a, its newest record damaged: err %v, unreadable %v, puller %v; want an error, readable, a puller", n.Err, n.Unreadable, n.Puller)
			}
		case n.ID == b.e.Node():
			if n.Err != nil || !n.Puller {
				t.Errorf("b: err %v, puller %v", n.Err, n.Puller)
			}
		default:
			if !n.Unreadable || n.Puller || n.NotPuller != escsync.NotPullerUnreadable {
				t.Errorf("the garbage node: unreadable %v, puller %v (%s); want unreadable, no puller", n.Unreadable, n.Puller, n.NotPuller)
			}
		}
	}
}

// TestWriteThroughSymlinkRefused: a pulled file whose directory is a
// symbolic link here (it replaced the directory since the last scan) is
// refused with a warning that says so, not retried as a path that keeps
// changing, and nothing is written where the link leads.
func TestWriteThroughSymlinkRefused(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	a.write(t, "d/old", []byte("x"))
	c.settle()
	a.write(t, "d/f", []byte("through the link?"))
	a.round(t)
	outside := t.TempDir()
	if err := os.RemoveAll(filepath.Join(b.dir, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(b.dir, "d")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.e.Pull(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "f")); !os.IsNotExist(err) {
		t.Errorf("a file was written through the link: %v", err)
	}
	logs := b.logs.String()
	if strings.Contains(logs, "keeps changing") || !strings.Contains(logs, "symbolic link here") {
		t.Errorf("b's log does not say the link is in the way:\n%s", logs)
	}
}

// TestReplayedRecordHeals: a record of a that the relay replaced with a
// copy of an earlier one stops b at that record; a notices at its next
// listing, republishes its state and deletes the altered record, and b
// then gets every later change of a without anyone running fix.
func TestReplayedRecordHeals(t *testing.T) {
	r, dir := dirRelay(t)
	c := newCluster(t, r)
	noCompaction := func(cfg *escsync.Config) { cfg.PackLimit, cfg.PartSize = 4<<10, 8<<10 }
	a := c.add("a", noCompaction)
	b := c.add("b", noCompaction)
	c.settle()
	a.write(t, "one.txt", []byte("first"))
	a.round(t)
	a.write(t, "two.txt", []byte("later"))
	a.round(t)
	logs := relayNames(t, r, "nodes/"+a.e.Node().String()+"/log")
	if len(logs) < 2 {
		t.Fatalf("a's log holds %v, want two records at least", logs)
	}
	src, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(logs[len(logs)-2])))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.FromSlash(logs[len(logs)-1]))
	if err := os.WriteFile(dst, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.e.Round(context.Background()); err == nil {
		t.Fatal("b read a replayed record without an error")
	}
	a.write(t, "three.txt", []byte("after the replay"))
	for i := 0; !b.exists("three.txt") || !b.exists("two.txt"); i++ {
		if i == 4 {
			t.Fatal("b did not get a's changes after the replayed record in 4 rounds")
		}
		a.round(t)
		_, _ = b.e.Round(context.Background())
	}
	if !strings.Contains(a.logs.String(), "not the ones it published") {
		t.Error("a did not log what it found")
	}
	c.settle()
	c.sameTrees()
}
