package sync_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// settleLagged is settle for a relay whose listings lag lag List calls
// behind: a pass that changes nothing may only mean that the others'
// objects are not listed yet, so it stops after enough quiet passes for
// every object to have become visible (each pass lists at least once per
// node).
func (c *cluster) settleLagged(lag int) {
	c.t.Helper()
	quiet := 0
	for pass := 0; pass < 60; pass++ {
		active := false
		for _, n := range c.nodes {
			if n.round(c.t).Active() {
				active = true
			}
		}
		if active {
			quiet = 0
			continue
		}
		if quiet++; quiet > lag {
			return
		}
	}
	c.t.Fatal("the nodes did not settle in 60 passes")
}

// eventualListing runs two engines over r wrapped so that new objects
// appear in listings, and deleted ones disappear from them, only lag List
// calls later, and checks that they converge: new files, edits,
// deletions, renames, a conflict, and the collection of blobs once both
// nodes have them. The protocol needs no consistent listing because each
// object has a single writer, is never rewritten with other content, and
// is found by name (Stat/Get are read-after-write consistent).
func eventualListing(t *testing.T, r relay.Relay, lag int) {
	lr := relaytest.NewLagging(r, lag)
	c := newCluster(t, lr)
	a := c.add("a", small)
	b := c.add("b", small)

	a.write(t, "small.txt", []byte("hello"))
	a.write(t, "docs/big.bin", content("big", 50<<10)) // parts
	a.write(t, "docs/deep/x.txt", []byte("deep"))
	c.settleLagged(lag)
	c.sameTrees()

	b.write(t, "small.txt", []byte("hello again"))
	if err := os.Rename(filepath.Join(b.dir, "docs"), filepath.Join(b.dir, "papers")); err != nil {
		t.Fatal(err)
	}
	b.write(t, "new.txt", []byte("from b"))
	c.settleLagged(lag)
	got := c.sameTrees()
	if _, ok := got["docs"]; ok {
		t.Error("docs survived its rename")
	}
	if string(a.read(t, "small.txt")) != "hello again" || !bytes.Equal(a.read(t, "papers/big.bin"), content("big", 50<<10)) {
		t.Error("b's edit or rename did not reach a")
	}

	if err := os.Remove(filepath.Join(a.dir, "new.txt")); err != nil {
		t.Fatal(err)
	}
	a.write(t, "both.txt", []byte("from a"))
	b.write(t, "both.txt", []byte("from b"))
	c.settleLagged(lag)
	got = c.sameTrees()
	if _, ok := got["new.txt"]; ok {
		t.Error("new.txt survived its deletion")
	}
	copies := 0
	for p := range got {
		if strings.HasPrefix(p, "both") {
			copies++
		}
	}
	if copies != 2 {
		t.Errorf("want both.txt and one conflict copy, have %v", got)
	}
	// Every blob was pulled by the other node and acknowledged: the
	// writers collect them, as they would with a consistent listing.
	for _, n := range c.nodes {
		if blobs := relayNames(t, r, "blobs/"+n.e.Node().String()); len(blobs) != 0 {
			t.Errorf("%s's blobs left after every ack: %v", n.name, blobs)
		}
	}
	t.Logf("lag %d: %d listings", lag, lr.Lists())
}

func TestEventualListingFileRelay(t *testing.T) {
	for _, lag := range []int{1, 4} {
		t.Run(fmt.Sprintf("lag%d", lag), func(t *testing.T) {
			eventualListing(t, fileRelay(t), lag)
		})
	}
}
