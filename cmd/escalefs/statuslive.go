package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/escalefs/escalefs/internal/units"
)

// liveEvery is how often escalefs status on a terminal reads the running
// nodes' status files again while they transfer.
const liveEvery = 500 * time.Millisecond

func transferVerb(t transferJSON) string {
	if t.Up {
		return "uploading"
	}
	return "downloading"
}

// transferString says how far a transfer is.
func transferString(t transferJSON) string {
	pct := 0.0
	if t.Size > 0 {
		pct = 100 * float64(t.Done) / float64(t.Size)
	}
	return fmt.Sprintf("%s: %s of %s (%.0f%%)", t.What, units.FormatSize(t.Done), units.FormatSize(t.Size), pct)
}

// showTransfers draws a progress bar per transfer under way in the running
// nodes of reports, reading their status files again every liveEvery,
// until no transfer is left or ctx ends (Ctrl-C).
func showTransfers(ctx context.Context, w io.Writer, reports []*nodeReport) {
	type key struct {
		state string
		up    bool
		what  string
	}
	read := func() map[key]transferJSON {
		out := make(map[key]transferJSON)
		for _, r := range reports {
			if !r.Running {
				continue
			}
			f, err := readStatusFile(r.State)
			if err != nil || f == nil || !f.Stopped.IsZero() {
				continue
			}
			for _, t := range f.Transfers {
				out[key{r.State, t.Up, t.What}] = t
			}
		}
		return out
	}
	now := read()
	if len(now) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTransfers under way (Ctrl-C leaves them running):")
	p := mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithAutoRefresh())
	bars := make(map[key]*mpb.Bar)
	t := time.NewTicker(liveEvery)
	defer t.Stop()
	for len(now) > 0 {
		for k, tr := range now {
			b, ok := bars[k]
			if !ok {
				b = p.AddBar(tr.Size,
					mpb.PrependDecorators(decor.Name(transferVerb(tr)+" "+tr.What, decor.WCSyncSpaceR)),
					mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace)))
				bars[k] = b
			}
			b.SetCurrent(tr.Done)
		}
		for k, b := range bars {
			if _, ok := now[k]; !ok {
				b.SetCurrent(b.Current()) // gone: done, or the node stopped
				b.Abort(false)
				delete(bars, k)
			}
		}
		select {
		case <-ctx.Done():
			for _, b := range bars {
				b.Abort(false)
			}
			p.Wait()
			return
		case <-t.C:
		}
		now = read()
	}
	for _, b := range bars {
		b.Abort(false)
	}
	p.Wait()
}
