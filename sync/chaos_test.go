package sync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/relaytest"
	"github.com/escalefs/escalefs/relay/retry"
	escsync "github.com/escalefs/escalefs/sync"
)

// switchable passes calls through a faulty relay while faults are on, and
// straight to the healthy one otherwise.
type switchable struct {
	relay.Relay
	faulty relay.Relay
	on     atomic.Bool
}

func (s *switchable) pick() relay.Relay {
	if s.on.Load() {
		return s.faulty
	}
	return s.Relay
}

func (s *switchable) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	return s.pick().List(ctx, dir, fn)
}
func (s *switchable) Get(ctx context.Context, name string, off, n int64, fn func(r io.Reader) error) error {
	return s.pick().Get(ctx, name, off, n, fn)
}
func (s *switchable) Put(ctx context.Context, name string, p relay.Payload) error {
	return s.pick().Put(ctx, name, p)
}
func (s *switchable) Delete(ctx context.Context, name string) error {
	return s.pick().Delete(ctx, name)
}

// killer cancels a node's round after a given number of relay calls: the
// node dies in the middle of whatever it was doing.
type killer struct {
	relay.Relay
	calls  atomic.Int64
	at     atomic.Int64 // cancel at this call (0: never)
	cancel atomic.Pointer[context.CancelFunc]
}

func (k *killer) tick() {
	if n := k.calls.Add(1); n == k.at.Load() {
		if c := k.cancel.Load(); c != nil {
			(*c)()
		}
	}
}

func (k *killer) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	k.tick()
	return k.Relay.List(ctx, dir, fn)
}
func (k *killer) Get(ctx context.Context, name string, off, n int64, fn func(r io.Reader) error) error {
	k.tick()
	return k.Relay.Get(ctx, name, off, n, fn)
}
func (k *killer) Put(ctx context.Context, name string, p relay.Payload) error {
	k.tick()
	return k.Relay.Put(ctx, name, p)
}
func (k *killer) Delete(ctx context.Context, name string) error {
	k.tick()
	return k.Relay.Delete(ctx, name)
}

// TestChaos runs three nodes through random creates, edits, renames and
// deletes over a relay that fails and cuts calls, kills one node in the
// middle of a round and restarts it, then lets them settle: all trees must
// be identical, and every version written must still be somewhere (at its
// path or as a conflict copy) unless an operation on purpose replaced or
// deleted it. ESCALEFS_CHAOS_SEED replays a run; ESCALEFS_CHAOS_OPS sets its
// length.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ESCALEFS_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	ops := 240
	if s := os.Getenv("ESCALEFS_CHAOS_OPS"); s != "" {
		ops, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (replay with ESCALEFS_CHAOS_SEED=%d), %d operations", seed, seed, ops)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	base := fileRelay(t)
	faulty := relaytest.NewFaulty(base, relaytest.FaultConfig{FailEvery: 5, CutEvery: 7, CutAfter: 2000})
	noWait := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	sw := &switchable{Relay: base, faulty: retry.New(faulty, retry.Config{Sleep: noWait, Attempts: 3})}
	sw.on.Store(true)
	c := newCluster(t, sw)
	kill := &killer{Relay: sw}
	names := []string{"a", "b", "d"}
	for i, name := range names {
		r := relay.Relay(sw)
		if i == 2 {
			r = kill
		}
		c.add(name, small, func(cfg *escsync.Config) { cfg.Relay = r })
	}
	c.register()

	var mu gosync.Mutex
	superseded := make(map[string]bool) // contents replaced or deleted on purpose
	written := make(map[string]bool)
	paths := []string{"x.txt", "y.txt", "dir/z.txt", "dir/sub/w.txt", "big.bin", "notes.md"}
	readIf := func(p string) {
		b, err := os.ReadFile(p)
		if err == nil {
			mu.Lock()
			superseded[string(b)] = true
			mu.Unlock()
		}
	}
	version := 0
	payload := func(n *node, path string) []byte {
		version++
		s := fmt.Sprintf("%s:%s:v%d:", n.name, path, version)
		if strings.HasSuffix(path, ".bin") {
			s += strings.Repeat("#", 20000+rng.IntN(20000)) // parts
		}
		written[s] = true
		return []byte(s)
	}
	// files lists n's regular files, conflict copies included.
	files := func(n *node) []string {
		var out []string
		_ = filepath.WalkDir(n.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				rel, _ := filepath.Rel(n.dir, p)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		slices.Sort(out)
		return out
	}
	killed := false
	var counts [5]int
	for step := 0; step < ops; step++ {
		n := c.nodes[rng.IntN(len(c.nodes))]
		switch op := rng.IntN(10); {
		case op < 3: // create or edit a well-known path
			p := paths[rng.IntN(len(paths))]
			full := filepath.Join(n.dir, p)
			readIf(full)
			n.write(t, p, payload(n, p))
			counts[0]++
		case op < 5: // edit an existing file, conflict copies included
			fs := files(n)
			if len(fs) == 0 {
				continue
			}
			p := fs[rng.IntN(len(fs))]
			readIf(filepath.Join(n.dir, p))
			n.write(t, p, payload(n, p))
			counts[1]++
		case op < 6: // rename to a fresh name
			fs := files(n)
			if len(fs) == 0 {
				continue
			}
			p := fs[rng.IntN(len(fs))]
			to := fmt.Sprintf("moved/%s-%d%s", n.name, step, filepath.Ext(p))
			if err := os.MkdirAll(filepath.Join(n.dir, "moved"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(n.dir, p), filepath.Join(n.dir, to)); err != nil {
				t.Fatal(err)
			}
			counts[2]++
		case op < 7: // delete
			fs := files(n)
			if len(fs) == 0 {
				continue
			}
			p := fs[rng.IntN(len(fs))]
			readIf(filepath.Join(n.dir, p))
			if err := os.Remove(filepath.Join(n.dir, p)); err != nil {
				t.Fatal(err)
			}
			counts[3]++
		default: // a round of a node
			if n == c.nodes[2] && !killed && step > ops/3 {
				// Kill d in the middle of this round, then restart it.
				killed = true
				ctx, cancel := context.WithCancel(context.Background())
				kill.cancel.Store(&cancel)
				kill.at.Store(kill.calls.Load() + 1 + int64(rng.IntN(6)))
				_, err := n.e.Round(ctx)
				cancel()
				kill.at.Store(0)
				t.Logf("step %d: killed d mid-round (%v)", step, err)
				n.stop(t)
				c.start(n, small, func(cfg *escsync.Config) { cfg.Relay = kill })
				counts[4]++
				continue
			}
			if _, err := n.e.Round(context.Background()); err != nil {
				t.Logf("step %d: %s: round failed: %v", step, n.name, firstLine(err))
			}
		}
	}
	t.Logf("%d creates/edits, %d edits, %d renames, %d deletes, %d kill; %d faults injected",
		counts[0], counts[1], counts[2], counts[3], counts[4], faulty.Injected.Load())
	sw.on.Store(false)
	c.settle()
	got := c.sameTrees()
	present := make(map[string]bool)
	for p := range got {
		if strings.HasPrefix(got[p], "file ") {
			b := c.nodes[0].read(t, p)
			present[string(b)] = true
		}
	}
	var lost []string
	for v := range written {
		if !superseded[v] && !present[v] {
			lost = append(lost, firstLine(errors.New(v)))
		}
	}
	slices.Sort(lost)
	if len(lost) > 0 {
		t.Fatalf("%d versions lost (seed %d): %q", len(lost), seed, lost)
	}
	t.Logf("converged: %d paths, %d versions written, %d kept", len(got), len(written), len(present))
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
