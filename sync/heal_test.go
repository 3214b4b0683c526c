package sync_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"
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

	write("one.txt", "damaged once")
	for i := 0; !has("one.txt", "damaged once"); i++ {
		if i == 6 {
			t.Fatal("b did not get one.txt, whose blob was damaged, in 6 rounds")
		}
		round(false)
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
	c.clock.Advance(2 * time.Minute)
	for i := 0; !has("two.txt", "damaged twice"); i++ {
		if i == 6 {
			t.Fatal("b did not get two.txt in 6 rounds after the backoff")
		}
		round(false)
	}
	c.settle()
	c.sameTrees()
}
