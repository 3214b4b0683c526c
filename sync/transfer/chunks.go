package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	gosync "sync"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/chunks"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// ChunkBlobSize is the plaintext a chunk blob is filled to: chunks go into
// the blob being filled until the next one would pass it (a blob holds at
// least one chunk, so at most max(ChunkBlobSize, a chunk)).
const ChunkBlobSize = 8 << 20

// blobsInFlight bounds the chunk blobs of one file being sent at once.
const blobsInFlight = 3

// Splitter cuts content into chunks (*chunks.Chunker): a stream in one
// pass, a file in parallel.
type Splitter interface {
	Split(r io.Reader, fn func(chunks.Chunk, []byte) error) error
	SplitAt(ctx context.Context, r io.ReaderAt, size int64, fn func(chunks.Chunk) error) error
}

// Known is where a chunk already is, as PutChunks's caller knows it: held
// by every node that pulls (in no blob), or at Offset of the plaintext of
// the chunk blob Blob on the relay.
type Known struct {
	Held   bool
	Blob   crypto.BlobRef
	Offset int64
}

// ChunkOptions are what PutChunks's caller knows and wants to know.
type ChunkOptions struct {
	// Known says where a chunk already is; nil knows none.
	Known func(crypto.ChunkID) (Known, bool)
	// Stored, if set, is called after each chunk blob is stored, with the
	// offsets of its chunks: the caller remembers them, so that an
	// interrupted upload resumes without storing them again. An error
	// from it stops the upload. Known and Stored are called one at a
	// time, never at once.
	Stored func(blob crypto.BlobRef, chunks map[crypto.ChunkID]int64) error
	// Chunks, if set, are the file's chunks as a scan cut them (in
	// order, covering size bytes): PutChunks takes them instead of cutting
	// the file again, and reads only the chunks it stores. The caller
	// checks that the file did not change since (its fingerprint), or
	// sets Verify.
	Chunks []chunks.Chunk
	// Verify checks each chunk read into a blob against its ID, where a
	// file's timestamps cannot tell whether it changed (it changed within
	// their resolution): a chunk that differs fails the upload with
	// ErrChanged. The chunks not stored are not read.
	Verify bool
}

// PutChunks reads the file open returns, of size bytes, cuts it with sp,
// and stores the chunks that opts.Known does not know in chunk blobs of
// this node, encrypted in memory (no temporary file) and several sent at
// once; the others are referred to where Known says, and a chunk met twice
// is stored once. It returns the file's chunk list; each byte is hashed
// once, for its chunk's ID (not at all with opts.Chunks), and the bytes
// stored once more with opts.Verify. A file that yields another number of
// bytes than size fails with an error wrapping ErrChanged; blobs already
// stored are then unreferenced (but were reported to opts.Stored).
func (u *Uploader) PutChunks(ctx context.Context, open func() (io.ReadCloser, error), size int64, sp Splitter,
	opts ChunkOptions) (*proto.ChunkList, error) {
	if opts.Known == nil {
		opts.Known = func(crypto.ChunkID) (Known, bool) { return Known{}, false }
	}
	if size < 1 {
		return nil, fmt.Errorf("chunks: size %d (an empty file has no chunks)", size)
	}
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("chunks: opening: %w", err)
	}
	defer rc.Close()
	// A failure stops the reading and the sending of new blobs (readCtx);
	// blobs already in flight go on (ctx), so that they are stored and
	// reported to opts.Stored: the next try does not send them again.
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &chunkPut{
		u: u, sp: sp, ctx: ctx, readCtx: readCtx, cancel: cancel, opts: opts, size: size,
		list:   &proto.ChunkList{},
		stored: make(map[crypto.ChunkID]proto.ChunkRef),
		reused: make(map[crypto.BlobID]int),
		slots:  make(chan struct{}, blobsInFlight),
		sealed: make(map[int]crypto.BlobRef),
	}
	err = p.read(rc)
	if err == nil && p.done != size {
		err = fmt.Errorf("chunks: %w: %d bytes, not %d", ErrChanged, p.done, size)
	}
	if err == nil {
		err = p.flush()
	}
	if err != nil {
		p.fail(err)
	}
	p.wg.Wait()
	if p.firstE != nil {
		return nil, p.firstE
	}
	for i, ref := range p.sealed {
		p.list.Blobs[i] = ref
	}
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("chunks: closing: %w", err)
	}
	u.log.Debug("chunks stored", "chunks", len(p.list.Chunks), "blobs", len(p.list.Blobs), "plaintext", size)
	return p.list, nil
}

// chunkPut is one PutChunks: the list being made, the blob being filled
// and the blobs being sent.
type chunkPut struct {
	u       *Uploader
	sp      Splitter
	ctx     context.Context // of the sending
	readCtx context.Context // of the reading, cancelled by a failure
	cancel  context.CancelFunc
	opts    ChunkOptions
	size    int64
	done    int64 // bytes of the file placed so far

	list   *proto.ChunkList
	stored map[crypto.ChunkID]proto.ChunkRef // in a blob of this call
	reused map[crypto.BlobID]int             // blobs stored before, by index
	cur    *chunkBlob                        // being filled
	slots  chan struct{}                     // blobs in flight
	wg     gosync.WaitGroup

	mu     gosync.Mutex
	firstE error                  // under mu
	sealed map[int]crypto.BlobRef // the blobs stored, by index; under mu
}

// read places the file's chunks: those the scan cut (opts.Chunks), or as
// it cuts them, in parallel for a file, in one pass for a stream.
func (p *chunkPut) read(rc io.ReadCloser) error {
	ra, isFile := rc.(io.ReaderAt)
	switch {
	case isFile && p.opts.Chunks != nil:
		for _, k := range p.opts.Chunks {
			if err := p.readCtx.Err(); err != nil {
				return err
			}
			if k.Offset != p.done {
				return fmt.Errorf("chunks: the chunk list has a chunk at %d, expected one at %d", k.Offset, p.done)
			}
			if err := p.take(k, p.readAt(ra, k)); err != nil {
				return err
			}
		}
		return endsAt(ra, p.size)
	case isFile:
		// The bytes of the chunks stored are read again (from the page
		// cache, as a rule), into their blob.
		err := p.sp.SplitAt(p.readCtx, ra, p.size, func(k chunks.Chunk) error { return p.take(k, p.readAt(ra, k)) })
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("chunks: %w: %w", ErrChanged, err)
		}
		if err != nil {
			return err
		}
		return endsAt(ra, p.size)
	}
	return p.sp.Split(ctxReader{p.readCtx, io.LimitReader(rc, p.size+1)}, func(k chunks.Chunk, data []byte) error {
		return p.take(k, func(dst []byte) error {
			copy(dst, data)
			return nil
		})
	})
}

// readAt returns what fills chunk k's bytes from the file, checking them
// against its ID with opts.Verify.
func (p *chunkPut) readAt(ra io.ReaderAt, k chunks.Chunk) func([]byte) error {
	return func(dst []byte) error {
		if _, err := ra.ReadAt(dst, k.Offset); errors.Is(err, io.EOF) {
			return fmt.Errorf("chunks: %w: it ends before %d", ErrChanged, k.Offset+k.Length)
		} else if err != nil {
			return fmt.Errorf("chunks: reading at %d: %w", k.Offset, err)
		}
		if p.opts.Verify && p.u.keys.ChunkIDOf(dst) != k.ID {
			return fmt.Errorf("chunks: %w: the chunk at %d changed since it was cut", ErrChanged, k.Offset)
		}
		return nil
	}
}

// fail records the first error and stops the reading.
func (p *chunkPut) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstE == nil {
		p.firstE = err
		p.cancel()
	}
}

// take places chunk k in the list: where a blob of this call or Known
// has it, or in the blob being filled, whose bytes fill puts into a slice
// of its length.
func (p *chunkPut) take(k chunks.Chunk, fill func([]byte) error) error {
	p.done += k.Length
	if p.done > p.size {
		return fmt.Errorf("chunks: %w: more than %d bytes", ErrChanged, p.size)
	}
	ref := proto.ChunkRef{ID: k.ID, Length: k.Length, Blob: proto.NoBlob}
	if prev, done := p.stored[k.ID]; done {
		ref.Blob, ref.Offset = prev.Blob, prev.Offset
		p.list.Chunks = append(p.list.Chunks, ref)
		return nil
	}
	p.mu.Lock() // never at the same time as Stored
	kn, ok := p.opts.Known(k.ID)
	p.mu.Unlock()
	switch {
	case ok && kn.Held:
	case ok:
		i, had := p.reused[kn.Blob.ID]
		if !had {
			i = len(p.list.Blobs)
			p.reused[kn.Blob.ID] = i
			p.list.Blobs = append(p.list.Blobs, kn.Blob)
		}
		ref.Blob, ref.Offset = i, kn.Offset
		p.stored[k.ID] = ref
	default:
		var err error
		if ref, err = p.fill(ref, fill); err != nil {
			return err
		}
		p.stored[k.ID] = ref
	}
	p.list.Chunks = append(p.list.Chunks, ref)
	return nil
}

// fill puts the bytes of ref's chunk into the blob being filled (sending
// the one before when it is full) and returns ref placed there.
func (p *chunkPut) fill(ref proto.ChunkRef, fill func([]byte) error) (proto.ChunkRef, error) {
	if p.cur != nil && int64(len(p.cur.plain))+ref.Length > ChunkBlobSize {
		if err := p.flush(); err != nil {
			return ref, err
		}
	}
	if p.cur == nil {
		p.cur = newChunkBlob(len(p.list.Blobs), p.u.bufs.get(ChunkBlobSize)[:0])
		p.list.Blobs = append(p.list.Blobs, crypto.BlobRef{}) // set once stored
	}
	ref.Blob, ref.Offset = p.cur.index, int64(len(p.cur.plain))
	p.cur.offsets[ref.ID] = ref.Offset
	n := len(p.cur.plain)
	p.cur.plain = slices.Grow(p.cur.plain, int(ref.Length))[:n+int(ref.Length)]
	return ref, fill(p.cur.plain[n:])
}

// flush seals the blob being filled (encrypts it) and sends it, in the
// background: the reading goes on meanwhile.
func (p *chunkPut) flush() error {
	if p.cur == nil {
		return nil
	}
	b := p.cur
	p.cur = nil
	select {
	case p.slots <- struct{}{}:
	case <-p.readCtx.Done():
		return p.readCtx.Err()
	}
	if err := p.readCtx.Err(); err != nil { // a slot and a failure at once
		<-p.slots
		return err
	}
	p.wg.Go(func() {
		defer func() { <-p.slots }()
		p.send(b)
	})
	return nil
}

// send encrypts and stores blob b and reports it to opts.Stored.
func (p *chunkPut) send(b *chunkBlob) {
	sealedBuf, ref, err := b.seal(p.u.keys, &p.u.bufs)
	if err != nil {
		p.fail(err)
		return
	}
	err = p.u.relay.Put(relay.NewObjects(p.ctx), layout.BlobName(p.u.node, ref.ID), relay.ReaderAtPayload(bytes.NewReader(sealedBuf), ref.Size))
	p.u.bufs.put(sealedBuf)
	if err != nil {
		p.fail(fmt.Errorf("chunks: blob %d: %w", b.index+1, err))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sealed[b.index] = ref
	if p.opts.Stored != nil {
		if err := p.opts.Stored(ref, b.offsets); err != nil && p.firstE == nil {
			p.firstE = err
			p.cancel()
		}
	}
}

// endsAt fails with ErrChanged if the file r has bytes past size.
func endsAt(r io.ReaderAt, size int64) error {
	if n, _ := r.ReadAt(make([]byte, 1), size); n > 0 {
		return fmt.Errorf("chunks: %w: more than %d bytes", ErrChanged, size)
	}
	return nil
}

// chunkBlob is a chunk blob being filled: the plaintext of its chunks,
// encrypted once it is full, by the goroutine that sends it.
type chunkBlob struct {
	index   int
	plain   []byte
	offsets map[crypto.ChunkID]int64
}

// newChunkBlob starts a chunk blob whose plaintext goes into plain (empty,
// from the pool).
func newChunkBlob(index int, plain []byte) *chunkBlob {
	return &chunkBlob{index: index, plain: plain, offsets: make(map[crypto.ChunkID]int64)}
}

// seal encrypts the blob under a fresh ID, in a buffer of pool, gives its
// plaintext back to pool, and returns its bytes and ref.
func (b *chunkBlob) seal(keys *crypto.Keys, pool *bufPool) ([]byte, crypto.BlobRef, error) {
	buf := bytes.NewBuffer(pool.get(len(b.plain) + len(b.plain)/1024 + 1024)[:0])
	w, err := crypto.NewUnhashedBlobWriter(keys, crypto.NewBlobID(), buf) // each chunk is checked by its ID
	if err == nil {
		_, err = w.Write(b.plain)
	}
	if err == nil {
		err = w.Close()
	}
	pool.put(b.plain)
	b.plain = nil
	if err != nil {
		return nil, crypto.BlobRef{}, fmt.Errorf("chunks: encrypting: %w", err)
	}
	return buf.Bytes(), w.Ref(), nil
}

// ErrChunkMissing: a chunk in no blob that this node does not hold (its
// copy changed or is gone): the content must be asked for again.
var ErrChunkMissing = errors.New("a chunk in no blob is not held here")

// GetOptions are what GetChunks's caller has and wants to know.
type GetOptions struct {
	// From is how many chunks dst has already (a resumed download).
	From int
	// Local fills buf (of the chunk's length) with the bytes of a chunk
	// from a file held here and reports whether it did.
	Local func(k proto.ChunkRef, buf []byte) bool
	// Done, if set, is called after the chunks before next are written,
	// fetched telling whether the last of them came from the relay: the
	// caller may remember how far it got.
	Done func(next int, fetched bool) error
	// Hash, if set, is given the content as dst is, in order, by a
	// goroutine of its own (hashing it beside the writing); it has all
	// of it when GetChunks returns nil.
	Hash io.Writer
}

// maxRun bounds the plaintext of consecutive chunks of one blob read in
// one go.
const maxRun = 32 << 20

// GetChunks writes the content list describes to dst, in order, from chunk
// opts.From on: each chunk from opts.Local, when it returns bytes that
// match the chunk's ID (idOf computes IDs), or else from its range in its
// chunk blob, written by node writer, checked against the ID as well.
// Consecutive chunks of one blob are read with one request, and up to
// runsInFlight such reads run at once, ahead of the writing. It returns
// how many bytes came from the relay. A chunk in no blob that local lacks
// fails with an error wrapping ErrChunkMissing; a chunk whose bytes on the
// relay do not match its ID with one wrapping crypto.ErrBlobCorrupt. As
// with GetPack, dst holds trustworthy content only when GetChunks returns
// nil.
func (d *Downloader) GetChunks(ctx context.Context, writer crypto.NodeID, list *proto.ChunkList, idOf func([]byte) crypto.ChunkID,
	opts GetOptions, dst io.Writer) (int64, error) {
	if opts.Local == nil {
		opts.Local = func(proto.ChunkRef, []byte) bool { return false }
	}
	if opts.Done == nil {
		opts.Done = func(int, bool) error { return nil }
	}
	chunksN := len(list.Chunks)
	if opts.From < 0 || opts.From > chunksN {
		return 0, fmt.Errorf("chunks: resuming at chunk %d of %d", opts.From, chunksN)
	}
	g := &chunkGet{d: d, writer: writer, list: list, idOf: idOf, local: opts.Local}
	defer g.wg.Wait() // after cancel below: the reads ahead stop at once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.ctx = ctx
	out := d.startWriting(ctx, cancel, dst, opts.Hash, opts.Done)
	finish := func(err error) (int64, error) { return g.fetched, out.finish(err) }
	for i := opts.From; i < chunksN || len(g.queue) > 0; {
		i = g.planAhead(i)
		seg := g.queue[0]
		g.queue = g.queue[1:]
		if seg.remote == nil {
			g.ahead -= int64(len(seg.data))
		} else {
			if err := <-seg.remote; err != nil {
				return finish(err)
			}
			g.inFlight--
			g.fetched += int64(len(seg.data))
		}
		if err := out.send(ctx, seg.data, seg.end, seg.remote != nil); err != nil {
			return finish(err)
		}
	}
	if _, err := finish(nil); err != nil {
		return g.fetched, err
	}
	d.log.Debug("chunks fetched", "chunks", chunksN, "from_relay", g.fetched)
	return g.fetched, nil
}

// chunkGet is one GetChunks: the segments planned, in order, ahead of the
// writing.
type chunkGet struct {
	d      *Downloader
	ctx    context.Context
	writer crypto.NodeID
	list   *proto.ChunkList
	idOf   func([]byte) crypto.ChunkID
	local  func(proto.ChunkRef, []byte) bool
	wg     gosync.WaitGroup

	queue    []*segment
	inFlight int    // runs being read from the relay
	ahead    int64  // bytes of local chunks planned, not yet handed to the writing
	fetched  int64  // bytes read from the relay
	next     []byte // the local bytes of the chunk after a run
}

// segment is a chunk held here, or a run of chunks read from the relay in
// the background.
type segment struct {
	end    int    // the chunk after it
	data   []byte // a chunk held here, or the run once read
	remote chan error
}

// held returns the bytes of chunk k from a file here, if one holds it as
// its ID says.
func (g *chunkGet) held(k proto.ChunkRef) []byte {
	data := g.d.bufs.get(int(k.Length))
	if g.local(k, data) && g.idOf(data) == k.ID {
		return data
	}
	g.d.bufs.put(data)
	return nil
}

// planAhead plans segments from chunk i while reads may start and memory
// allows, and returns the chunk after the last planned.
func (g *chunkGet) planAhead(i int) int {
	n := len(g.list.Chunks)
	for i < n && g.inFlight < runsInFlight && g.ahead < maxLocalAhead {
		seg, err := g.plan(i)
		if err != nil {
			// Written what comes before, then failed.
			g.queue = append(g.queue, &segment{remote: errSeg(err)})
			return n
		}
		if seg.remote != nil {
			g.inFlight++
		} else {
			g.ahead += int64(len(seg.data))
		}
		g.queue = append(g.queue, seg)
		i = seg.end
	}
	return i
}

// plan plans the segment that starts at chunk i: the chunk, if held here,
// or the run of chunks from its blob, read in the background.
func (g *chunkGet) plan(i int) (*segment, error) {
	list, n := g.list, len(g.list.Chunks)
	k := list.Chunks[i]
	data := g.next
	if data == nil {
		data = g.held(k)
	}
	g.next = nil
	if data != nil {
		return &segment{end: i + 1, data: data}, nil
	}
	if k.Blob == proto.NoBlob {
		return nil, fmt.Errorf("chunk %d of %d (%x…): %w", i+1, n, k.ID[:4], ErrChunkMissing)
	}
	if k.Blob < 0 || k.Blob >= len(list.Blobs) {
		return nil, fmt.Errorf("chunk %d of %d: blob %d of %d", i+1, n, k.Blob, len(list.Blobs))
	}
	// The run: the chunks that follow in the same blob, back to back,
	// that are not held here.
	j, runLen := i+1, k.Length
	for ; j < n; j++ {
		c := list.Chunks[j]
		if c.Blob != k.Blob || c.Offset != k.Offset+runLen || runLen+c.Length > maxRun {
			break
		}
		if g.next = g.held(c); g.next != nil {
			break
		}
		runLen += c.Length
	}
	seg := &segment{end: j, data: g.d.bufs.get(int(runLen)), remote: make(chan error, 1)}
	ref := list.Blobs[k.Blob]
	g.wg.Go(func() {
		seg.remote <- g.d.readRun(g.ctx, g.writer, ref, k.Offset, seg.data, list.Chunks[i:j], g.idOf)
	})
	return seg, nil
}

// writing is the stages of GetChunks behind its planning: the writing to
// dst (and the caller's done), then the hashing, each a goroutine, a
// segment apart. A segment's buffer goes back to the pool after its last
// stage.
type writing struct {
	wch   chan written
	hch   chan []byte // nil: no hashing
	wdone chan error
	hdone chan error
}

type written struct {
	data   []byte
	end    int
	remote bool
}

// startWriting starts the stages; a failure of the writing cancels the
// download.
func (d *Downloader) startWriting(ctx context.Context, cancel func(), dst, hash io.Writer, done func(int, bool) error) *writing {
	w := &writing{wch: make(chan written, 1), wdone: make(chan error, 1), hdone: make(chan error, 1)}
	if hash != nil {
		w.hch = make(chan []byte, 1)
		go func() {
			var err error
			for b := range w.hch {
				if err == nil {
					_, err = hash.Write(b)
				}
				d.bufs.put(b)
			}
			w.hdone <- err
		}()
	}
	go func() {
		var err error
		for s := range w.wch {
			if err != nil {
				continue // drained after a failure
			}
			if err = writePieces(dst, s.data); err == nil {
				err = done(s.end, s.remote)
			}
			switch {
			case err != nil:
				cancel()
			case w.hch == nil:
				d.bufs.put(s.data)
			default:
				select {
				case w.hch <- s.data:
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
		}
		w.wdone <- err
	}()
	return w
}

// writePieceSize bounds one write of GetChunks to its destination. The
// kernel backs a larger write to a file with large folios, which cost an
// order of magnitude more to fault in where free memory goes back to a
// hypervisor (free page reporting): 1 GiB written in 8 MiB writes took
// 2.7 s on a Firecracker VM with Linux 6.18, in 1 MiB writes 0.17 s.
const writePieceSize = 1 << 20

// writePieces writes p to w in pieces of writePieceSize at most.
func writePieces(w io.Writer, p []byte) error {
	for len(p) > 0 {
		piece := p[:min(len(p), writePieceSize)]
		n, err := w.Write(piece)
		if err == nil && n < len(piece) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// send hands the segment that ends before chunk end over to the stages.
func (w *writing) send(ctx context.Context, data []byte, end int, remote bool) error {
	select {
	case w.wch <- written{data: data, end: end, remote: remote}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish waits for the stages to be done with what was handed over, so
// that they end before GetChunks returns, and returns their error before
// err (the planning's), unless theirs is only the cancellation.
func (w *writing) finish(err error) error {
	close(w.wch)
	if werr := <-w.wdone; werr != nil && (err == nil || !errors.Is(werr, context.Canceled)) {
		err = werr
	}
	if w.hch != nil {
		close(w.hch)
		if herr := <-w.hdone; herr != nil && err == nil {
			err = herr
		}
	}
	return err
}

// errSeg is a planning error, delivered in its place in the order.
func errSeg(err error) chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// Bounds of GetChunks's reading ahead: runs being read from the relay at
// once (each at most a chunk blob), and bytes of local chunks read but
// not handed to the writing yet.
const (
	runsInFlight  = 3
	maxLocalAhead = 8 << 20
)

// readRun reads len(p) bytes of the plaintext of blob ref of writer, from
// off, into p: with one request for the run (and one for age's header),
// or one for the whole blob when the run is most of it.
// It checks each of the run's chunks against its ID, as the reads run in
// parallel.
func (d *Downloader) readRun(ctx context.Context, writer crypto.NodeID, ref crypto.BlobRef, off int64, p []byte,
	run []proto.ChunkRef, idOf func([]byte) crypto.ChunkID) error {
	win := &windowReaderAt{ctx: ctx, relay: d.relay, name: layout.BlobName(writer, ref.ID), size: ref.Size, pool: &d.bufs}
	defer win.release()
	n := int64(len(p))
	if n >= ref.Size/4*3 {
		// Most of the blob (a new file's chunks fill whole blobs): one
		// request reads it all, age's header and last chunk with it.
		win.next = ref.Size
	}
	ra, _, err := crypto.BlobReaderAt(d.keys, ref.ID, win, ref.Size)
	if err != nil {
		return err
	}
	// The run's ciphertext: its plaintext, the tags of age's 64 KiB
	// chunks, and one chunk of slack on each side.
	win.next = n + n/4096 + 2*(64<<10+16)
	if got, err := ra.ReadAt(p, off); int64(got) != n {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: blob %s ends before the chunks' end", crypto.ErrBlobTruncated, ref.ID)
		}
		return err
	}
	for _, k := range run {
		if idOf(p[k.Offset-off:k.Offset-off+k.Length]) != k.ID {
			return fmt.Errorf("chunk %x…: %w: blob %s holds other bytes at %d", k.ID[:4], crypto.ErrBlobCorrupt, ref.ID, k.Offset)
		}
	}
	return nil
}

// windowReaderAt reads an object on the relay at random, keeping the last
// window it read: a read outside it reads at least next bytes (the run
// being read) from where it starts, at least 4 KiB (age's header).
type windowReaderAt struct {
	ctx   context.Context
	relay Getter
	name  string
	size  int64
	next  int64
	start int64
	win   []byte
	pool  *bufPool // of the windows
}

// release gives the last window back to the pool.
func (w *windowReaderAt) release() {
	w.pool.put(w.win)
	w.win = nil
}

func (w *windowReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at %d", w.name, off)
	}
	if off >= w.size {
		return 0, io.EOF
	}
	if off < w.start || off+int64(len(p)) > w.start+int64(len(w.win)) {
		n := min(max(int64(len(p)), w.next, 4<<10), w.size-off)
		w.release()
		b := w.pool.get(int(n))
		err := w.relay.Get(w.ctx, w.name, off, n, func(r io.Reader) error {
			m, err := io.ReadFull(ctxReader{w.ctx, r}, b)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = nil // the object ends before: the caller sees a short read
			}
			b = b[:m]
			return err
		})
		if err != nil {
			w.pool.put(b)
			return 0, err
		}
		w.start, w.win = off, b
	}
	n := copy(p, w.win[off-w.start:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
