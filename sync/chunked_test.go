package sync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/pseudo"
	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
)

// byteCounter counts the bytes of blobs put and got through a relay.
type byteCounter struct {
	relay.Relay
	put, got atomic.Int64
}

func (b *byteCounter) Put(ctx context.Context, name string, p relay.Payload) error {
	if strings.HasPrefix(name, "blobs/") {
		b.put.Add(p.Length())
	}
	return b.Relay.Put(ctx, name, p)
}

func (b *byteCounter) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	if !strings.HasPrefix(name, "blobs/") {
		return b.Relay.Get(ctx, name, off, n, fn)
	}
	return b.Relay.Get(ctx, name, off, n, func(r io.Reader) error {
		return fn(io.TeeReader(r, counter{&b.got}))
	})
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func (b *byteCounter) reset() { b.put.Store(0); b.got.Store(0) }

// change writes data at rel on w, lets the cluster settle, fails unless
// each node of on then holds it there, and returns the bytes of blobs put
// and got meanwhile.
func (b *byteCounter) change(t *testing.T, c *cluster, w *node, rel string, data []byte, on ...*node) (put, got int64) {
	t.Helper()
	b.reset()
	w.write(t, rel, data)
	c.settle()
	for _, n := range on {
		if !bytes.Equal(n.read(t, rel), data) {
			t.Fatalf("%s written on %s differs on %s", rel, w.name, n.name)
		}
	}
	return b.put.Load(), b.got.Load()
}

func chunked(c *escsync.Config) { c.Chunks = true }

// chunkedCluster is a cluster whose secret and repository ID are fixed:
// the places where content is cut depend on them, and so do the figures
// the tests bound.
func chunkedCluster(t testing.TB, r relay.Relay) *cluster {
	t.Helper()
	c := newCluster(t, r)
	secret, err := crypto.Key(bytes.Repeat([]byte{0x5c}, crypto.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	c.secret = secret
	c.repoSeed = "chunked cluster"
	return c
}

// TestChunkedEditMovesLittle: a large file pushed as chunks reaches the
// peer byte for byte. After an edit of 256 KiB in its middle, the pusher
// uploads only the chunks around the edit (the others are held by the
// peer, which pulled them), and the peer rebuilds the new version from its
// copy. A copy of the file moves no content at all, a revert only the
// chunks no file has any more, and 1 MiB inserted at the start only the
// chunks around it.
func TestChunkedEditMovesLittle(t *testing.T) {
	bc := &byteCounter{Relay: fileRelay(t)}
	c := chunkedCluster(t, bc)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	data := pseudo.Bytes("image", 24<<20)
	if _, got := bc.change(t, c, a, "disk.img", data, b); got < int64(len(data)) {
		t.Errorf("b read %d bytes of blobs for a new file of %d", got, len(data))
	}

	edited := bytes.Clone(data)
	copy(edited[12<<20:], pseudo.Bytes("edit", 256<<10))
	put, got := bc.change(t, c, a, "disk.img", edited, b)
	t.Logf("256 KiB changed in 24 MiB: %d bytes put by a, %d read by b", put, got)
	if got > 4<<20 {
		t.Errorf("b read %d bytes of blobs for 256 KiB changed in a 24 MiB file", got)
	}
	if put > 4<<20 {
		t.Errorf("a put %d bytes of blobs for 256 KiB changed in a 24 MiB file", put)
	}

	// A copy: no content moves.
	if put, got := bc.change(t, c, a, "copy.img", edited, b); put > 0 || got > 0 {
		t.Errorf("a copy put %d bytes and read %d, want none", put, got)
	}
	// The first version back: its chunks around the edit are no file's
	// any more, so they go up again, and only they.
	put, got = bc.change(t, c, a, "disk.img", data, b)
	t.Logf("a revert: %d bytes put by a, %d read by b", put, got)
	if put > 4<<20 || got > 4<<20 {
		t.Errorf("a revert put %d bytes and read %d", put, got)
	}
	// 1 MiB inserted at the start: the cuts after it do not move.
	inserted := append(pseudo.Bytes("insert", 1<<20), data...)
	put, got = bc.change(t, c, a, "disk.img", inserted, b)
	t.Logf("1 MiB inserted at the start: %d bytes put by a, %d read by b", put, got)
	if put > 4<<20 || got > 4<<20 {
		t.Errorf("1 MiB inserted at the start of a 24 MiB file: %d bytes put and %d read", put, got)
	}
}

// TestChunkedEditOnPullingNode: the node that pulled a large file edits
// it: it uploads only the chunks around its edit, for the others are held
// by the node that pushed them. A copy of its version then moves nothing.
func TestChunkedEditOnPullingNode(t *testing.T) {
	bc := &byteCounter{Relay: fileRelay(t)}
	c := chunkedCluster(t, bc)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	data := pseudo.Bytes("pulled", 24<<20)
	a.write(t, "disk.img", data)
	c.settle()

	edited := bytes.Clone(data)
	copy(edited[12<<20:], pseudo.Bytes("edit", 256<<10))
	put, got := bc.change(t, c, b, "disk.img", edited, a)
	t.Logf("256 KiB changed on the pulling node: %d bytes put by b, %d read by a", put, got)
	if put > 4<<20 || got > 4<<20 {
		t.Errorf("b put %d bytes of blobs and a read %d for 256 KiB changed in a 24 MiB file it pulled", put, got)
	}
	if put, got := bc.change(t, c, b, "copy.img", edited, a); put > 0 || got > 0 {
		t.Errorf("a copy of b's version put %d bytes and read %d, want none", put, got)
	}
}

// TestChunkedPulledChunksWaitForAcks: with three nodes, b copies a file it
// pulled from a before c pulled it: c lacks its chunks, so b uploads them
// all. Once c acknowledged a's record, another copy on b moves nothing.
func TestChunkedPulledChunksWaitForAcks(t *testing.T) {
	bc := &byteCounter{Relay: fileRelay(t)}
	c := chunkedCluster(t, bc)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	n3 := c.add("c", chunked)
	c.settle()
	data := pseudo.Bytes("acks", 16<<20)
	a.write(t, "disk.img", data)
	a.round(t)
	b.round(t) // b pulls; c has not yet
	if !bytes.Equal(b.read(t, "disk.img"), data) {
		t.Fatal("b did not pull the file")
	}
	bc.reset()
	b.write(t, "copy.img", data)
	b.round(t)
	if put := bc.put.Load(); put < int64(len(data)) {
		t.Errorf("b put %d bytes for a copy of %d whose chunks c lacks", put, len(data))
	}
	c.settle()
	for _, n := range []*node{a, n3} {
		if !bytes.Equal(n.read(t, "copy.img"), data) {
			t.Fatalf("the copy differs on %s", n.name)
		}
	}
	if put, _ := bc.change(t, c, b, "copy2.img", data, n3); put > 0 {
		t.Errorf("b put %d bytes for a copy whose chunks every node holds", put)
	}
}

// cutPuts fails the blob Puts after the first ok ones, until healed. While
// failing, the ok ones wait for the first failure before they store: they
// are still in flight when it comes.
type cutPuts struct {
	relay.Relay
	ok, done atomic.Int64
	failing  atomic.Bool
	once     gosync.Once
	failed   chan struct{}
}

func (f *cutPuts) Put(ctx context.Context, name string, p relay.Payload) error {
	if strings.HasPrefix(name, "blobs/") && f.failing.Load() {
		if f.done.Add(1) > f.ok.Load() {
			f.done.Add(-1)
			f.once.Do(func() { close(f.failed) })
			return errors.New("connection reset")
		}
		select {
		case <-f.failed:
		case <-time.After(time.Minute):
			return errors.New("no Put failed within a minute")
		}
	} else if strings.HasPrefix(name, "blobs/") {
		f.done.Add(1)
	}
	return f.Relay.Put(ctx, name, p)
}

// TestChunkedUploadResumes: an upload of chunks cut short (the relay
// fails) resumes: the chunk blobs stored before are not stored again, and
// the file arrives whole. Blobs in flight when another fails are stored
// and remembered all the same.
func TestChunkedUploadResumes(t *testing.T) {
	fp := &cutPuts{Relay: fileRelay(t), failed: make(chan struct{})}
	c := chunkedCluster(t, fp)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	data := pseudo.Bytes("resume", 40<<20)
	a.write(t, "big.bin", data)
	fp.ok.Store(2)
	fp.failing.Store(true)
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("a round whose uploads fail succeeded")
	}
	if n := fp.done.Load(); n != 2 {
		t.Fatalf("%d blobs stored before the failure, want 2", n)
	}
	fp.failing.Store(false)
	fp.done.Store(0)
	c.settle()
	if !bytes.Equal(b.read(t, "big.bin"), data) {
		t.Fatal("the file differs on b")
	}
	// 40 MiB in blobs of 8 MiB: 5 or 6 blobs in all, 2 of them stored
	// before.
	if n := fp.done.Load(); n > 4 {
		t.Errorf("the resumed upload stored %d blobs, want the 3 or 4 not stored before", n)
	}
	if !strings.Contains(a.logs.String(), "resuming an interrupted upload") {
		t.Error("a did not say it resumed")
	}
}

// cutGets fails the reads of blobs once reads of limit bytes were asked
// for: counted when asked, not when read, so that reads running at once
// cannot all start before the cut.
type cutGets struct {
	relay.Relay
	limit, asked atomic.Int64
	got          atomic.Int64
}

func (g *cutGets) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	if !strings.HasPrefix(name, "blobs/") {
		return g.Relay.Get(ctx, name, off, n, fn)
	}
	if l := g.limit.Load(); l > 0 && g.asked.Add(n) > l {
		return errors.New("connection reset")
	}
	return g.Relay.Get(ctx, name, off, n, func(r io.Reader) error {
		return fn(io.TeeReader(r, counter{&g.got}))
	})
}

// TestChunkedDownloadResumes: a download of chunks cut short resumes at
// the last chunk it recorded, and the file arrives whole.
func TestChunkedDownloadResumes(t *testing.T) {
	cg := &cutGets{Relay: fileRelay(t)}
	c := chunkedCluster(t, cg)
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	data := pseudo.Bytes("download", 48<<20)
	a.write(t, "big.bin", data)
	a.round(t)
	cg.limit.Store(40 << 20)
	if _, err := b.e.Round(context.Background()); err == nil {
		t.Fatal("a round whose downloads fail succeeded")
	}
	if b.exists("big.bin") {
		t.Fatal("a cut download was installed")
	}
	first := cg.got.Load()
	cg.limit.Store(0)
	c.settle()
	if !bytes.Equal(b.read(t, "big.bin"), data) {
		t.Fatal("the file differs on b")
	}
	if !strings.Contains(b.logs.String(), "resuming an interrupted download") {
		t.Error("b did not say it resumed")
	}
	if again := cg.got.Load() - first; again > int64(len(data))-16<<20 {
		t.Errorf("the resumed download read %d bytes after %d, for a file of %d", again, first, len(data))
	}
}

// TestChunkedHeldChunkChangedUnderneath: a chunk the pusher counts as held
// (in no blob) is gone from the puller's copy, changed underneath between
// its scan and the pull: the puller asks for the file, the pusher sends
// all of it again, and both end with the same content.
func TestChunkedHeldChunkChangedUnderneath(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	data := pseudo.Bytes("held", 24<<20)
	a.write(t, "disk.img", data)
	c.settle()
	edited := bytes.Clone(data)
	copy(edited[12<<20:], pseudo.Bytes("edit", 256<<10))
	a.write(t, "disk.img", edited)
	a.round(t) // pushed: the unchanged chunks in no blob
	// b's copy changes before b's pull looks at it.
	f, err := os.OpenFile(filepath.Join(b.dir, "disk.img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 1<<20), 2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := b.e.Pull(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.logs.String(), "not held here") {
		t.Error("b did not miss the chunk its copy lost")
	}
	c.settle()
	if got, want := b.read(t, "disk.img"), a.read(t, "disk.img"); !bytes.Equal(got, want) {
		t.Fatal("a and b ended with different content")
	}
}

// TestChunkedThreeNodesOneBehind: with three nodes, one that misses two
// versions of a file catches up to the last one, from its copy and the
// chunk blobs still on the relay; all converge.
func TestChunkedThreeNodesOneBehind(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	late := c.add("late", chunked)
	v := pseudo.Bytes("v1", 20<<20)
	a.write(t, "doc.bin", v)
	c.settle()
	for i, at := range []int{5 << 20, 15 << 20} {
		v = bytes.Clone(v)
		copy(v[at:], pseudo.Bytes(fmt.Sprint("v", i+2), 128<<10))
		a.write(t, "doc.bin", v)
		c.settle(a, b) // late sleeps through both
	}
	c.settle()
	for _, n := range []*node{a, b, late} {
		if !bytes.Equal(n.read(t, "doc.bin"), v) {
			t.Errorf("%s does not hold the last version", n.name)
		}
	}
}

// TestChunkedUploadChecksRacyFile: a large file rewritten in place, with
// its size, between the scan and the upload, within the timestamps'
// resolution (the scan found it changed less than a second before, so it
// cannot trust them): the upload hashes what it sends, finds that it is
// not what was scanned, and leaves the file for the next round, which
// pushes what the file then holds. No record ever pairs the scanned hash
// with the other content: b only ever holds the last version.
func TestChunkedUploadChecksRacyFile(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", chunked)
	b := c.add("b", chunked)
	first := pseudo.Bytes("racy first", 6<<20)
	second := pseudo.Bytes("racy second", 6<<20)
	a.write(t, "racy.img", first)
	ctx := t.Context()
	if _, err := a.e.Scan(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The rewrite keeps the inode, the size and the mtime, as a write
	// within the same clock tick would; its ctime changes, which the scan
	// did not trust anyway.
	path := filepath.Join(a.dir, "racy.img")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(second, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	pushed, err := a.e.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != 0 {
		t.Errorf("the push published %d changes for a file that changed since its scan", pushed)
	}
	c.settle()
	if got := b.read(t, "racy.img"); !bytes.Equal(got, second) {
		t.Errorf("b holds %d bytes, not the file's last version", len(got))
	}
}

// chunkedHashOf returns n's hash of the file at rel and the content hash
// of the chunks its chunk index holds for it.
func chunkedHashOf(t *testing.T, n *node, rel string) (hash, ofChunks [32]byte) {
	t.Helper()
	if err := n.store.View(func(tx *cache.Tx) error {
		ent, _, err := tx.Get(rel)
		if err != nil {
			return err
		}
		_, spans, err := tx.Chunks(rel)
		if err != nil {
			return err
		}
		sum := crypto.NewChunkedSum()
		for _, s := range spans {
			sum.Add(s.ID, s.Length)
		}
		hash, ofChunks = ent.Hash, sum.Sum()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return hash, ofChunks
}

// localClock makes a node's folder tell a racy file by the cluster's
// clock.
func localClock(t *testing.T, c *cluster) func(*escsync.Config) {
	return func(cfg *escsync.Config) {
		dir := cfg.Local.(*localdir.Dir)
		local, err := localdir.New(dir.Root(), localdir.Options{Clock: c.clock})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Local = local
	}
}

// TestChunkedSHAHashedFile: a file whose hash is the SHA-256 of its bytes
// (hashed with chunks off, or by an escalefs before format version 4)
// and pushed as chunks reaches the peer, which checks it by that hash.
func TestChunkedSHAHashedFile(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", localClock(t, c))
	b := c.add("b", chunked)
	c.settle()
	data := pseudo.Bytes("sha-256", 24<<20)
	a.write(t, "f.img", data)
	c.clock.Set(time.Now().Add(time.Minute))
	if _, err := a.e.Scan(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	c.start(a, chunked, localClock(t, c))
	a.round(t)
	before := b.e.Stats().BytesHashed
	b.round(t)
	if !bytes.Equal(b.read(t, "f.img"), data) {
		t.Fatal("b holds another content")
	}
	if h, _ := chunkedHashOf(t, b, "f.img"); h != sha256.Sum256(data) {
		t.Errorf("b's hash of the file %x, want its SHA-256", h)
	}
	if n := b.e.Stats().BytesHashed - before; n != 2*int64(len(data)) {
		t.Errorf("b hashed %d bytes of a file of %d: want each chunk by its ID, and the whole by SHA-256", n, len(data))
	}
}

// TestChunkedHashedOnce: a new file pushed as chunks is hashed once on
// each node: the scan cuts it and the push takes the scan's chunks
// without reading the file for anything but the chunks it stores; the
// puller checks each chunk against its ID and computes no other hash.
// The file's hash on both nodes is the content hash of its chunks.
func TestChunkedHashedOnce(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", chunked, localClock(t, c))
	b := c.add("b", chunked)
	c.settle()
	data := pseudo.Bytes("hashed once", 24<<20)
	a.write(t, "f.img", data)
	// Long after the write: the file's fingerprint is trusted.
	c.clock.Set(time.Now().Add(time.Minute))
	before := a.e.Stats().BytesHashed
	a.round(t)
	if n := a.e.Stats().BytesHashed - before; n != int64(len(data)) {
		t.Errorf("a hashed %d bytes to push a new file of %d", n, len(data))
	}
	before = b.e.Stats().BytesHashed
	b.round(t)
	if n := b.e.Stats().BytesHashed - before; n != int64(len(data)) {
		t.Errorf("b hashed %d bytes to pull a new file of %d", n, len(data))
	}
	if !bytes.Equal(b.read(t, "f.img"), data) {
		t.Fatal("b holds another content")
	}
	ha, ca := chunkedHashOf(t, a, "f.img")
	hb, cb := chunkedHashOf(t, b, "f.img")
	if ha != ca || hb != cb || ha != hb {
		t.Errorf("hashes: a %x (its chunks %x), b %x (its chunks %x): want one, the chunks' content hash", ha, ca, hb, cb)
	}

	// A file changed within its timestamps' resolution is checked as it
	// goes up: each chunk stored is hashed again, and only those.
	edited := bytes.Clone(data)
	copy(edited[12<<20:], pseudo.Bytes("edit", 256<<10))
	a.write(t, "f.img", edited)
	c.clock.Set(time.Now())
	before = a.e.Stats().BytesHashed
	a.round(t)
	n := a.e.Stats().BytesHashed - before
	if n <= int64(len(data)) || n > int64(len(data))+8<<20 {
		t.Errorf("a hashed %d bytes to push an edit of a racy file of %d: want its scan and the chunks stored", n, len(data))
	}
	b.round(t)
	if !bytes.Equal(b.read(t, "f.img"), edited) {
		t.Fatal("b holds another content after the edit")
	}
}

// TestChunksTurnedOff: a file hashed by its chunks, then pushed with
// chunks off (as whole parts, which a reader checks by their SHA-256), is
// hashed again with SHA-256 first, and reaches the peer.
func TestChunksTurnedOff(t *testing.T) {
	c := chunkedCluster(t, fileRelay(t))
	a := c.add("a", chunked, localClock(t, c))
	b := c.add("b")
	c.settle()
	data := pseudo.Bytes("chunks off", 24<<20)
	a.write(t, "f.img", data)
	c.clock.Set(time.Now().Add(time.Minute))
	if _, err := a.e.Scan(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if h, byChunks := chunkedHashOf(t, a, "f.img"); h != byChunks {
		t.Fatal("test bug: the scan did not hash the file by its chunks")
	}
	a.stop(t)
	c.start(a, localClock(t, c))
	c.settle()
	if !bytes.Equal(b.read(t, "f.img"), data) {
		t.Fatal("b holds another content")
	}
	if h, _ := chunkedHashOf(t, b, "f.img"); h != sha256.Sum256(data) {
		t.Errorf("b's hash of the file %x, want its SHA-256", h)
	}
}
