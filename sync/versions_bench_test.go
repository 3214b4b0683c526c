package sync_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPullVersions is a pull that replaces 10,000 small files
// (s/pull), and the two rounds that release what it replaced once the
// hold is over (s/release): with versions off (the held files are
// unlinked) and on (each is kept: a link and its metadata), side by side.
// Each round also scans the folder.
func BenchmarkPullVersions(b *testing.B) {
	const files = 10000
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "versions-off", true: "versions-on"}[on]
		b.Run(name, func(b *testing.B) {
			var pull, release time.Duration
			for range b.N {
				c := newCluster(b, fileRelay(b))
				a := c.add("a")
				state := b.TempDir()
				var opts []nodeOpts
				store, opt := withVersions(b, state, c.clock)
				if on {
					opts = append(opts, opt)
				}
				p := c.addHeldOnClock("b", state, opts...)
				for i := range files {
					a.write(b, fmt.Sprintf("d%02d/f%05d.txt", i%50, i), fmt.Appendf(nil, "first %d\n", i))
				}
				c.settle()
				for i := range files {
					a.write(b, fmt.Sprintf("d%02d/f%05d.txt", i%50, i), fmt.Appendf(nil, "second %d\n", i))
				}
				a.round(b)

				start := time.Now()
				if res := p.round(b); res.Applied < files {
					b.Fatalf("the pull applied %d changes, want %d", res.Applied, files)
				}
				pull += time.Since(start)
				start = time.Now()
				for range 2 { // the hold's grace, then a later round: released
					c.clock.Advance(10 * time.Second)
					p.round(b)
				}
				release += time.Since(start)

				list, err := store.List("")
				if err != nil {
					b.Fatal(err)
				}
				if want := map[bool]int{false: 0, true: files}[on]; len(list) != want {
					b.Fatalf("%d versions kept, want %d", len(list), want)
				}
			}
			b.ReportMetric(0, "ns/op")
			n := float64(b.N)
			b.ReportMetric(pull.Seconds()/n, "s/pull")
			b.ReportMetric(release.Seconds()/n, "s/release")
			b.ReportMetric(float64((pull+release).Microseconds())/(n*files), "µs/file")
		})
	}
}
