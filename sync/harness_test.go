package sync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/pseudo"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/localdir/localdirtest"
)

// cluster is a set of engines sharing one relay, driven round by round.
type cluster struct {
	t      testing.TB
	relay  relay.Relay
	secret crypto.Secret
	// repoSeed, if set, seeds the randomness of the repository the
	// cluster creates: its ID, and so where content is cut.
	repoSeed string
	clock    *localdirtest.Clock
	nodes    []*node
}

// node is one engine with its folder and cache.
type node struct {
	name  string
	dir   string
	state string
	store *cache.Store
	local *localdir.Dir
	e     *escsync.Engine
	logs  *testserver.SyncBuffer
}

// nodeOpts tweak a node's Config.
type nodeOpts func(*escsync.Config)

func fileRelay(t testing.TB) relay.Relay {
	t.Helper()
	r, err := file.New(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newCluster(t testing.TB, r relay.Relay) *cluster {
	t.Helper()
	return &cluster{
		t:      t,
		relay:  r,
		secret: crypto.GenerateKey(),
		clock:  localdirtest.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)),
	}
}

// small is the transfer shape of most tests: tiny packs and parts, so that
// a few KiB exercise both.
func small(c *escsync.Config) {
	c.PackLimit = 4 << 10
	c.PartSize = 8 << 10
	c.CompactAfter = 1
}

// add starts a node named name.
func (c *cluster) add(name string, opts ...nodeOpts) *node {
	c.t.Helper()
	return c.addAt(name, filepath.Join(c.t.TempDir(), name), c.t.TempDir(), opts...)
}

// addAt starts a node named name with its folder dir and its state in
// state.
func (c *cluster) addAt(name, dir, state string, opts ...nodeOpts) *node {
	c.t.Helper()
	n := &node{name: name, dir: dir, state: state, logs: &testserver.SyncBuffer{}}
	for _, d := range []string{n.dir, n.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	c.start(n, opts...)
	c.nodes = append(c.nodes, n)
	return n
}

// start opens n's cache and engine.
func (c *cluster) start(n *node, opts ...nodeOpts) {
	c.t.Helper()
	c.startWith(n, nil, opts...)
}

// startWith opens n's cache and engine over local (nil: a fresh Dir).
func (c *cluster) startWith(n *node, local *localdir.Dir, opts ...nodeOpts) {
	c.t.Helper()
	ctx := context.Background()
	ropts := escsync.RepoOptions{Create: true}
	if c.repoSeed != "" {
		ropts.Rand = bytes.NewReader(pseudo.Bytes(c.repoSeed, 4096))
	}
	repo, err := escsync.OpenRepository(ctx, c.relay, c.secret, ropts)
	if err != nil {
		c.t.Fatal(err)
	}
	n.store, err = cache.Open(filepath.Join(n.state, "cache.db"), cache.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { n.store.Close() })
	n.local = local
	if n.local == nil {
		if n.local, err = localdir.New(n.dir, localdir.Options{Hold: filepath.Join(n.state, "held")}); err != nil {
			c.t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(n.logs, testWriter{c.t, n.name}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := escsync.Config{
		Relay:   c.relay,
		Repo:    repo,
		Cache:   n.store,
		Local:   n.local,
		Name:    n.name,
		Scratch: filepath.Join(n.state, "scratch"),
		Clock:   c.clock,
		Logger:  log,
	}
	for _, o := range opts {
		o(&cfg)
	}
	n.e, err = escsync.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
}

// stop closes n's cache, as a process exit would.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// round runs one round of n and fails the test on error.
func (n *node) round(t testing.TB) escsync.RoundResult {
	t.Helper()
	res, err := n.e.Round(context.Background())
	if err != nil {
		t.Fatalf("%s: round: %v", n.name, err)
	}
	return res
}

// settle runs rounds of every node, in turn, until a full pass changes
// nothing anywhere, and fails if that takes more than limit passes.
func (c *cluster) settle(nodes ...*node) {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	for pass := 0; pass < 12; pass++ {
		active := false
		for _, n := range nodes {
			if n.round(c.t).Active() {
				active = true
			}
		}
		if !active {
			return
		}
	}
	c.t.Fatal("the nodes did not settle in 12 passes")
}

// write creates or replaces rel in n's folder.
func (n *node) write(t testing.TB, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(n.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *node) read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, rel))
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return b
}

func (n *node) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(n.dir, rel))
	return err == nil
}

// tree describes a folder: per path, its kind and content or target, and
// mode.
func tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink " + target
		case d.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = "file " + fi.Mode().Perm().String() + " " + hex.EncodeToString(sum[:8]) + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTrees fails unless every node's folder holds the same tree.
func (c *cluster) sameTrees(nodes ...*node) map[string]string {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	want := tree(c.t, nodes[0].dir)
	for _, n := range nodes[1:] {
		got := tree(c.t, n.dir)
		if !mapsEqual(want, got) {
			c.t.Fatalf("%s and %s differ:\n%s", nodes[0].name, n.name, diffTrees(want, got))
		}
	}
	return want
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffTrees(a, b map[string]string) string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		if a[k] != b[k] {
			sb.WriteString(k + ": " + a[k] + " | " + b[k] + "\n")
		}
	}
	return sb.String()
}

// relayNames lists the relay's objects under dir.
func relayNames(t testing.TB, r relay.Relay, dir string) []string {
	t.Helper()
	var names []string
	err := r.List(context.Background(), dir, func(oi relay.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// counting wraps a relay and counts Puts by name prefix.
type counting struct {
	relay.Relay
	mu   gosync.Mutex
	puts map[string]int
}

func newCounting(r relay.Relay) *counting { return &counting{Relay: r, puts: make(map[string]int)} }

func (c *counting) Put(ctx context.Context, name string, p relay.Payload) error {
	c.mu.Lock()
	c.puts[strings.SplitN(name, "/", 2)[0]]++
	c.mu.Unlock()
	return c.Relay.Put(ctx, name, p)
}

func (c *counting) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts[prefix]
}

func content(seed string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		sum := sha256.Sum256([]byte(seed + string(rune(i))))
		b.Write(sum[:])
	}
	return b.Bytes()[:n]
}

func removeFile(n *node, rel string) error { return os.Remove(filepath.Join(n.dir, rel)) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
