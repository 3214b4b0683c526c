package sync

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/chunks"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/sync/transfer"
)

// Content as chunks (Config.Chunks, docs/format.md §8.2): a large file is
// pushed as content-defined chunks in chunk blobs, and a puller rebuilds
// it from the chunks it holds already (the cache's chunk index: files it
// pushed or pulled as chunks) and downloads only the others.

// uploadChunks stores the content of it as chunks: those this node pushed
// before are referred to where they are (docs/format.md §12.2), the others
// uploaded. For a peer's request, and for escalefs fix, every chunk goes
// up anew: the peer lacks some, the relay lost some.
func (e *Engine) uploadChunks(ctx context.Context, it *pushItem) error {
	key := it.ent.Path
	prog, err := e.loadUpload(key)
	if err != nil {
		return err
	}
	if len(prog.Parts) > 0 {
		e.dropUpload(ctx, key, prog) // an upload in parts: of no use now
		prog = uploadProgress{}
	}
	if prog.Chunks == nil {
		prog.Chunks = make(map[string]storedChunk)
	} else if err := e.checkStored(ctx, &prog); err != nil {
		return err
	}
	prog.Hash, prog.Size, prog.PartSize = it.ent.Hash, it.ent.Size, 0
	know, err := e.chunkKnowledge()
	if err != nil {
		return err
	}
	live := know.live
	tr := e.transfers.start(true, it.ent.Path, it.ent.Size)
	defer e.transfers.end(tr)
	var sent int64
	// The progress is saved (a commit of the cache, and the whole list
	// of chunks stored so far) at most every progressSaveInterval while
	// the blobs go up, and once more if the upload fails: a crash loses
	// that much of the upload at most.
	var (
		lastSave time.Time
		unsaved  bool
	)
	save := func() error {
		lastSave, unsaved = e.clock.Now(), false
		if err := e.saveUpload(key, prog); err != nil {
			return err
		}
		e.log.Debug("upload progress saved", "path", it.ent.Path, "chunks_done", len(prog.Chunks))
		return nil
	}
	opts := transfer.ChunkOptions{
		Known: func(id crypto.ChunkID) (transfer.Known, bool) {
			if it.anew {
				return transfer.Known{}, false // the relay lost blobs: all go up
			}
			if c, ok := prog.Chunks[hex.EncodeToString(id[:])]; ok {
				// Stored by this upload before it was interrupted.
				return transfer.Known{Blob: c.Blob, Offset: c.Offset}, true
			}
			if it.repush {
				return transfer.Known{}, false // a peer lacks some: all go up
			}
			return e.knownChunk(id, know)
		},
		Stored: func(b crypto.BlobRef, offs map[crypto.ChunkID]int64) error {
			for id, off := range offs {
				prog.Chunks[hex.EncodeToString(id[:])] = storedChunk{Blob: b, Offset: off}
			}
			sent += b.Size
			e.transfers.set(tr, sent)
			unsaved = true
			if e.clock.Now().Sub(lastSave) < progressSaveInterval {
				return nil
			}
			return save()
		},
	}
	if len(prog.Chunks) > 0 {
		e.log.Info("resuming an interrupted upload", "path", it.ent.Path, "chunks_done", len(prog.Chunks))
	}
	// The chunks the scan cut the file into, if it did: the file is not
	// cut (nor hashed) again. Where the file's fingerprint cannot tell
	// that it is what the scan read (it changed within the timestamps'
	// resolution), each chunk stored is checked against its ID.
	opts.Chunks = e.scannedChunks(it)
	opts.Verify = it.ent.Local.CTimeNs == 0
	e.log.Debug("uploading chunks", "path", it.ent.Path, "cut_by_scan", opts.Chunks != nil, "verify", opts.Verify)
	list, err := e.up.PutChunks(ctx, func() (io.ReadCloser, error) { return e.openFile(ctx, it) }, it.ent.Size, e.chunker, opts)
	if err != nil && unsaved {
		if serr := save(); serr != nil {
			e.log.Warn("saving the progress of an interrupted upload", "path", it.ent.Path, "err", serr)
		}
	}
	switch {
	case changedLocally(err) && ctx.Err() == nil:
		it.retry = true // the chunks stored stay remembered for the next try
		return nil
	case err != nil:
		return fmt.Errorf("uploading %q: %w", it.ent.Path, err)
	}
	if !e.chunksVerified(it, list) {
		it.retry = true
		return nil
	}
	it.progress = key
	it.ref = &remoteRef{Node: e.selfID, Hash: it.ent.Hash, Path: it.ent.Path, Chunks: list}
	for _, b := range list.Blobs {
		if !live[b.ID] {
			e.usage.Add(b.Size)
		}
	}
	it.blobs = it.ref.blobs()
	e.count(func(s *Stats) {
		s.Blobs += len(list.Blobs)
		s.BytesHashed += hashedByPut(list, opts, it.ent.Size, live)
	})
	if opts.Chunks == nil {
		// Cut here, not by the scan: the chunk index learns them now.
		e.indexChunks(it.ent.Path, it.ent.Local, list)
	}
	return nil
}

// chunkHasher hashes a file by its chunks for a scan
// (localdir.ChunkHasher): the chunks' IDs, and the content hash they make.
type chunkHasher struct{ c *chunks.Chunker }

func (h chunkHasher) HashChunks(ctx context.Context, r io.ReaderAt, size int64) ([32]byte, []cache.ChunkSpan, error) {
	sum := crypto.NewChunkedSum()
	spans := make([]cache.ChunkSpan, 0, min(size/chunks.MinSize+1, 1<<12))
	err := h.c.SplitAt(ctx, r, size, func(k chunks.Chunk) error {
		sum.Add(k.ID, k.Length)
		spans = append(spans, cache.ChunkSpan{ID: k.ID, Offset: k.Offset, Length: k.Length})
		return nil
	})
	if err != nil {
		return [32]byte{}, nil, err
	}
	return sum.Sum(), spans, nil
}

// scannedChunks returns the chunks of it's file as the scan cut it, if
// the chunk index has them for the file as it is queued (its fingerprint
// and the content hash they make); nil otherwise (a file hashed whole, a
// fingerprint taken since).
func (e *Engine) scannedChunks(it *pushItem) []chunks.Chunk {
	var local cache.LocalStat
	var spans []cache.ChunkSpan
	if err := e.store.View(func(tx *cache.Tx) error {
		var err error
		local, spans, err = tx.Chunks(it.ent.Path)
		return err
	}); err != nil {
		e.log.Warn("reading the chunk index", "path", it.ent.Path, "err", err)
		return nil
	}
	if len(spans) == 0 || local != it.ent.Local {
		return nil
	}
	sum := crypto.NewChunkedSum()
	out := make([]chunks.Chunk, len(spans))
	for i, s := range spans {
		sum.Add(s.ID, s.Length)
		out[i] = chunks.Chunk{ID: s.ID, Offset: s.Offset, Length: s.Length}
	}
	if sum.Sum() != it.ent.Hash {
		return nil
	}
	return out
}

// hashedByPut is how many bytes PutChunks hashed for list, of a file of
// size bytes: all, to cut it, unless the scan's chunks were given; and
// with opts.Verify, the chunks it stored (in blobs not live before).
func hashedByPut(list *proto.ChunkList, opts transfer.ChunkOptions, size int64, live map[crypto.BlobID]bool) int64 {
	var n int64
	if opts.Chunks == nil {
		n = size
	}
	if !opts.Verify {
		return n
	}
	seen := make(map[crypto.ChunkID]bool)
	for _, k := range list.Chunks {
		if k.Blob != proto.NoBlob && !live[list.Blobs[k.Blob].ID] && !seen[k.ID] {
			n += k.Length
			seen[k.ID] = true
		}
	}
	return n
}

// chunksVerified says whether a chunked upload of it sent what the scan
// found (else the file is scanned again). Where its fingerprint cannot
// tell (it changed within the timestamps' resolution), the chunks of
// list, those stored checked against their IDs as they were read, must
// make its content hash. Otherwise its fingerprint when closed must be
// the scan's: that also holds for a file whose hash is the SHA-256 of its
// bytes, hashed before escalefs hashed files by their chunks.
func (e *Engine) chunksVerified(it *pushItem, list *proto.ChunkList) bool {
	if it.ent.Local.CTimeNs == 0 {
		return list.ContentHash() == it.ent.Hash
	}
	return it.closed != nil && *it.closed == it.ent.Local
}

// progressSaveInterval is how often a chunked upload or download saves
// its progress at most, while it runs.
const progressSaveInterval = time.Second

// checkStored drops from an interrupted upload the chunks whose blob is no
// longer on the relay: the peers of a node silent for long may have
// cleared them as stale.
func (e *Engine) checkStored(ctx context.Context, prog *uploadProgress) error {
	gone := make(map[crypto.BlobID]bool)
	for _, b := range prog.blobs() {
		if _, err := e.r.Stat(ctx, layout.BlobName(e.self, b.ID)); errors.Is(err, fs.ErrNotExist) {
			gone[b.ID] = true
		} else if err != nil {
			return err
		}
	}
	maps.DeleteFunc(prog.Chunks, func(_ string, c storedChunk) bool { return gone[c.Blob.ID] })
	return nil
}

// chunkKnowledge is what knownChunk consults during one upload.
type chunkKnowledge struct {
	live map[crypto.BlobID]bool // this node's blobs on the relay
	// pullers are the other nodes that pull, with how far each
	// acknowledged each node's log.
	pullers map[string]map[string]uint64
	// remotes are the versions looked at, by path: a 1 GiB file's
	// version lists a thousand chunks, decoded once.
	remotes map[string]remoteChunks
}

// remoteChunks is the version of a path that the nodes hold
// (Entry.Remote): its writer, the record of the writer's log that carried
// it here (nil if this node pushed it), and its chunks.
type remoteChunks struct {
	node string
	seq  *uint64
	has  map[crypto.ChunkID]bool
}

func (e *Engine) chunkKnowledge() (*chunkKnowledge, error) {
	k := &chunkKnowledge{pullers: make(map[string]map[string]uint64), remotes: make(map[string]remoteChunks)}
	err := e.store.View(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		k.live = ls.liveBlobs()
		return e.eachPuller(tx, ls, func(id crypto.NodeID, ps peerState) {
			k.pullers[id.String()] = ps.AckedOf
		})
	})
	return k, err
}

// remote returns the chunks of the version of path the nodes hold, decoded
// once per upload; none if the path holds no chunked file.
func (k *chunkKnowledge) remote(tx *cache.Tx, path string) (remoteChunks, error) {
	if rc, seen := k.remotes[path]; seen {
		return rc, nil
	}
	ent, found, err := tx.Get(path)
	if err != nil {
		return remoteChunks{}, err
	}
	var rc remoteChunks
	if rr, ok := decodeRemote(ent.Remote); found && !ent.Deleted && ok && rr.Chunks != nil {
		rc = remoteChunks{node: rr.Node, seq: rr.Seq, has: make(map[crypto.ChunkID]bool, len(rr.Chunks.Chunks))}
		for _, c := range rr.Chunks.Chunks {
			rc.has[c.ID] = true
		}
	}
	k.remotes[path] = rc
	return rc, nil
}

// ackedByAll says whether every other puller but node acknowledged
// node's log up to seq.
func (k *chunkKnowledge) ackedByAll(node string, seq uint64) bool {
	for p, acked := range k.pullers {
		if a, ok := acked[node]; p != node && (!ok || a < seq) {
			return false
		}
	}
	return true
}

// knownChunk says where a chunk is, for the upload rule
// (docs/format.md §12.2):
//   - pushed by this node before, in its chunk blob while a record not yet
//     collected names that blob;
//   - once the records naming it are collected (because the nodes that
//     pull had pulled them), held by every one of them, as long as the
//     version of a path that they hold (the last one pushed or pulled:
//     Entry.Remote) has it;
//   - in a version this node pushed, in no blob: held by every one of
//     them when it was pushed;
//   - pulled here, in a version of a path that every other node that
//     pulls acknowledged (its writer pushed it): held by every one of
//     them as well.
//
// A chunk only an older version had is uploaded again.
func (e *Engine) knownChunk(id crypto.ChunkID, k *chunkKnowledge) (transfer.Known, bool) {
	var s cache.SentChunk
	var sent, held bool
	err := e.store.View(func(tx *cache.Tx) error {
		var err error
		if s, sent, err = tx.Sent(id); err != nil || sent && k.live[crypto.BlobID(s.Blob)] {
			return err
		}
		places, err := tx.FindChunk(id)
		if err != nil {
			return err
		}
		for _, p := range places {
			rc, err := k.remote(tx, p.Path)
			if err != nil {
				return err
			}
			// In this node's version, a chunk in no blob of its own was
			// held by every puller when pushed.
			own := rc.node == e.selfID
			pulled := !own && rc.seq != nil && k.ackedByAll(rc.node, *rc.seq)
			if rc.has[id] && (sent || own || pulled) {
				held = true
				return nil
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return transfer.Known{}, false
	case sent && k.live[crypto.BlobID(s.Blob)]:
		return transfer.Known{Blob: crypto.BlobRef{ID: crypto.BlobID(s.Blob), Size: s.Size, SHA256: s.Sum}, Offset: s.Offset}, true
	case held:
		return transfer.Known{Held: true}, true
	}
	return transfer.Known{}, false
}

// recordSent records, in the transaction of the record that names them,
// where the chunks of list that are in blobs are.
func recordSent(tx *cache.Tx, list *proto.ChunkList) error {
	for _, k := range list.Chunks {
		if k.Blob == proto.NoBlob {
			continue
		}
		b := list.Blobs[k.Blob]
		if err := tx.SetSent(k.ID, cache.SentChunk{Blob: b.ID, Size: b.Size, Sum: b.SHA256, Offset: k.Offset}); err != nil {
			return err
		}
	}
	return nil
}

// indexChunks records the chunks of the file at path, whose fingerprint is
// local, in the cache's chunk index. A failure is logged: the index only
// saves downloads.
func (e *Engine) indexChunks(path string, local cache.LocalStat, list *proto.ChunkList) {
	spans := make([]cache.ChunkSpan, len(list.Chunks))
	var off int64
	for i, k := range list.Chunks {
		spans[i] = cache.ChunkSpan{ID: k.ID, Offset: off, Length: k.Length}
		off += k.Length
	}
	if err := e.store.Update(func(tx *cache.Tx) error { return tx.SetChunks(path, local, spans) }); err != nil {
		e.log.Warn("indexing the chunks of a file", "path", path, "err", err)
	}
}

// localChunks reads chunks from the files of the folder that hold them, as
// the chunk index says, for one rebuild: each file is opened (and its
// fingerprint checked) once, not once per chunk.
type localChunks struct {
	e    *Engine
	open map[string]*os.File // nil: changed or gone since it was indexed
}

// read fills buf with the bytes of chunk k and reports whether some file
// held it. The caller checks them against the chunk's ID: a file may
// change while it is read.
func (l *localChunks) read(ctx context.Context, k proto.ChunkRef, buf []byte) bool {
	var places []cache.ChunkPlace
	if err := l.e.store.View(func(tx *cache.Tx) error {
		var err error
		places, err = tx.FindChunk(k.ID)
		return err
	}); err != nil {
		return false
	}
	for _, p := range places {
		if p.Length != k.Length {
			continue
		}
		f, seen := l.open[p.Path]
		if !seen {
			f, _ = l.e.local.Open(ctx, p.Path, p.Local)
			l.open[p.Path] = f
		}
		if f != nil {
			if _, err := f.ReadAt(buf, p.Offset); err == nil {
				return true
			}
		}
	}
	return false
}

func (l *localChunks) close() {
	for _, f := range l.open {
		if f != nil {
			f.Close()
		}
	}
}

// A chunked download records its progress (an fsync of the partial file
// and a commit of the cache) after a read from the relay once
// progressSaveInterval passed since the last record, after
// downloadSaveEvery bytes, and when it is cut short. A crash loses about a
// second of downloading at most, and rebuilding 1 GiB from local chunks,
// a few seconds of disk. (Every 64 MiB, the fsyncs cost a fifth of a
// download's time.)
const downloadSaveEvery = 1 << 30

// skipped says whether a chunked download failed for want of content
// (gone from the relay, held nowhere here, or not what its record says):
// the change waits, and what was downloaded is of no use.
func skipped(err error) bool {
	return errors.Is(err, transfer.ErrChunkMissing) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, crypto.ErrBlobCorrupt) || errors.Is(err, crypto.ErrBlobTruncated)
}

// fetchChunks rebuilds a chunked file in a file of the partial directory,
// from the chunks held here and those downloaded, remembering how far it
// got (so that an interrupted download resumes at its last recorded
// chunk), checks it against the record and installs it.
func (e *Engine) fetchChunks(ctx context.Context, id crypto.NodeID, c proto.Change, path string, meta localdir.Meta, expect *cache.LocalStat) (cache.LocalStat, error) {
	n := len(c.Chunks.Chunks)
	p, err := e.openChunksPartial(id, c)
	if err != nil {
		return cache.LocalStat{}, err
	}
	defer p.f.Close()
	f, h, prog, key := p.f, p.hash, p.prog, p.key
	if prog.Parts > 0 {
		e.log.Info("resuming an interrupted download", "path", c.Path, "chunks_done", prog.Parts, "chunks", n)
	}
	forget := func() { e.forgetPartial(p) }
	tr := e.transfers.start(false, c.Path, c.Size)
	defer e.transfers.end(tr)
	sw := localdir.NewSparseWriter(f, prog.Bytes)
	saved, written := prog.Bytes, prog.Parts
	var lastSave time.Time
	// save records that the first next chunks are in the partial file:
	// an fsync of it and a commit of the cache.
	save := func(next int) error {
		if err := sw.Finish(); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		saved, lastSave = sw.Offset(), e.clock.Now()
		return e.setDownload(key, &downloadProgress{Node: id.String(), Parts: next, Bytes: saved})
	}
	local := &localChunks{e: e, open: make(map[string]*os.File)}
	defer local.close()
	fetched, err := e.down.GetChunks(ctx, id, c.Chunks, e.cfg.Repo.Keys.ChunkIDOf, transfer.GetOptions{
		From:  prog.Parts,
		Local: func(k proto.ChunkRef, buf []byte) bool { return local.read(ctx, k, buf) },
		Done: func(next int, fromRelay bool) error {
			e.transfers.set(tr, sw.Offset())
			written = next
			if next == n || sw.Offset()-saved < downloadSaveEvery &&
				(!fromRelay || e.clock.Now().Sub(lastSave) < progressSaveInterval) {
				return nil
			}
			return save(next)
		},
		Hash: hashWriter(h),
	}, sw)
	e.count(func(s *Stats) {
		s.BytesPulled += fetched
		s.BytesHashed += sw.Offset() - prog.Bytes // each chunk checked by its ID
		if h != nil {
			s.BytesHashed += sw.Offset() // and by the SHA-256 of the file, all of it
		}
	})
	if err != nil && sw.Offset() > saved && !skipped(err) {
		// Cut short (the relay failed, the node stops): what was written
		// counts for the next try.
		if serr := save(written); serr != nil {
			e.log.Warn("saving the progress of an interrupted download", "path", c.Path, "err", serr)
		}
	}
	switch {
	case skipped(err):
		forget()
		e.log.Warn("content of a peer is not on the relay, not held here, or does not verify; skipped",
			"node", e.nodeLabel(id.String()), "path", c.Path, "err", err)
		return cache.LocalStat{}, errSkip
	case err != nil:
		return cache.LocalStat{}, fmt.Errorf("fetching %q: %w", c.Path, err)
	}
	if err := sw.Finish(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("partial download: %w", err)
	}
	if !matches(c, h, sw.Offset()) {
		forget()
		e.log.Error("content does not match its record; skipped", "node", e.nodeLabel(id.String()), "path", c.Path, "bytes", sw.Offset())
		return cache.LocalStat{}, errSkip
	}
	if err := f.Sync(); err != nil {
		return cache.LocalStat{}, fmt.Errorf("partial download: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return cache.LocalStat{}, err
	}
	st, err := e.local.Install(ctx, path, localdir.Move{F: f}, meta, expect)
	if err != nil {
		return st, err
	}
	forget()
	e.indexChunks(path, st, c.Chunks)
	return st, nil
}

// openChunksPartial opens the partial file of c's download from node id.
// A file whose hash is that of its chunks is checked by them alone: each
// chunk against its ID as it is written (and, when a download resumes,
// those written before). Otherwise the SHA-256 of its bytes is computed
// beside (p.hash).
func (e *Engine) openChunksPartial(id crypto.NodeID, c proto.Change) (*partialDownload, error) {
	byChunks := c.ChunkedHash()
	return e.openPartial("chunks-"+hashKey(c.Hash), id, !byChunks, func(prog downloadProgress, f io.ReaderAt) bool {
		return prog.Parts <= len(c.Chunks.Chunks) && prog.Bytes == chunksBefore(c.Chunks, prog.Parts) &&
			(!byChunks || e.holdsChunks(f, c.Chunks.Chunks[:prog.Parts]))
	})
}

// matches says whether a rebuilt file of size bytes is c's content: its
// size, and its SHA-256 (h's sum) unless c's hash is that of its chunks,
// each of which was checked as it was written.
func matches(c proto.Change, h hash.Hash, size int64) bool {
	if size != c.Size {
		return false
	}
	if h == nil {
		return c.ChunkedHash()
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum == c.Hash
}

// holdsChunks says whether r begins with the chunks list, each checked
// against its ID.
func (e *Engine) holdsChunks(r io.ReaderAt, list []proto.ChunkRef) bool {
	var off int64
	var buf []byte
	for _, k := range list {
		if int64(cap(buf)) < k.Length {
			buf = make([]byte, k.Length)
		}
		b := buf[:k.Length]
		if _, err := r.ReadAt(b, off); err != nil || e.cfg.Repo.Keys.ChunkIDOf(b) != k.ID {
			return false
		}
		off += k.Length
	}
	return true
}

// hashWriter is h as an io.Writer: nil if h is.
func hashWriter(h hash.Hash) io.Writer {
	if h == nil {
		return nil
	}
	return h
}

// chunksBefore is the length of the first n chunks of list.
func chunksBefore(list *proto.ChunkList, n int) int64 {
	var b int64
	for _, k := range list.Chunks[:min(n, len(list.Chunks))] {
		b += k.Length
	}
	return b
}
