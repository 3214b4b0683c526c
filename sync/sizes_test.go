package sync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/relay"
)

// TestSizesHidden: 200 files of 1,000 to 1,199 bytes, with paths of 5 to
// 54 bytes, each pushed alone, leave only a handful of distinct blob sizes
// and record sizes on the relay: packs are padded (Padmé) and records to
// 256-byte steps.
func TestSizesHidden(t *testing.T) {
	ctx := context.Background()
	r := fileRelay(t)
	c := newCluster(t, r)
	a := c.add("a")
	for i := range 200 {
		name := fmt.Sprintf("%s%03d", strings.Repeat("p", i%50), i) + ".txt"
		a.write(t, name, content(name, 1000+i))
		if _, err := a.e.Scan(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.e.Push(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sizes := func(dir string) map[int64]int {
		out := make(map[int64]int)
		err := r.List(ctx, dir, func(oi relay.ObjectInfo) error {
			out[oi.Size]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	blobs := sizes("blobs/" + a.e.Node().String())
	records := sizes("nodes/" + a.e.Node().String() + "/log")
	t.Logf("blob sizes %v, record sizes %v", blobs, records)
	if n := count(blobs); n != 200 {
		t.Fatalf("%d blobs, want one per file", n)
	}
	if len(blobs) > 5 {
		t.Errorf("%d distinct blob sizes for 200 files of 1,000 to 1,199 bytes, want at most 5", len(blobs))
	}
	if count(records) < 100 {
		t.Fatalf("%d records, want one per push", count(records))
	}
	if len(records) > 3 {
		t.Errorf("%d distinct record sizes for records of one file with paths of 5 to 54 bytes, want at most 3", len(records))
	}
}

func count(m map[int64]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
