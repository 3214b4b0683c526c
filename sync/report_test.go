package sync

import (
	"slices"
	"testing"
	"time"

	"github.com/escalefs/escalefs/sync/localdir/localdirtest"
)

// The mount's reports are scanned once they pause for reportQuiet, and no
// later than reportMaxDelay after the first when they never pause.
func TestReportBatch(t *testing.T) {
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := localdirtest.NewClock(start)
	var b reportBatch
	if b.due() != nil {
		t.Fatal("an empty batch is due")
	}
	fired := func() bool {
		select {
		case <-b.due():
			return true
		default:
			return false
		}
	}
	// A burst: a report every reportQuiet/2 keeps the batch gathering...
	var want []string
	for i := range 19 {
		p := string(rune('a' + i))
		want = append(want, p)
		b.add(clock, []string{p})
		if fired() {
			t.Fatalf("due %s after the first report, while reports keep coming", clock.Now().Sub(start))
		}
		clock.Advance(reportQuiet / 2)
	}
	// ...until reportMaxDelay after the first: 19 × 50ms passed, and the
	// next report's timer ends at the first's plus reportMaxDelay.
	b.add(clock, []string{"last"})
	want = append(want, "last")
	if p := clock.Pending(); len(p) != 1 || !p[0].Equal(start.Add(reportMaxDelay)) {
		t.Fatalf("pending timers %v, want one at %v", p, start.Add(reportMaxDelay))
	}
	clock.Advance(start.Add(reportMaxDelay).Sub(clock.Now()))
	if !fired() {
		t.Fatal("not due reportMaxDelay after the first report")
	}
	if got := b.take(); !slices.Equal(got, want) {
		t.Fatalf("take: %v, want %v", got, want)
	}
	if b.due() != nil || len(clock.Pending()) != 0 {
		t.Fatal("a taken batch still has a timer")
	}
	// A lone report is due once reports pause for reportQuiet.
	b.add(clock, []string{"x"})
	clock.Advance(reportQuiet - time.Millisecond)
	if fired() {
		t.Fatal("due before the pause")
	}
	clock.Advance(time.Millisecond)
	if !fired() {
		t.Fatal("not due after a pause of reportQuiet")
	}
	if got := b.take(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("take: %v", got)
	}
}
