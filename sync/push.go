package sync

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/sync/proto"
	"github.com/escalefs/escalefs/sync/transfer"
)

// KindLog and KindSnapshot are the record kinds of docs/format.md §11.
const (
	KindLog      = "log"
	KindSnapshot = "snapshot"
)

// pushItem is one queued path on its way to a record.
type pushItem struct {
	qid    uint64
	ent    cache.Entry
	change proto.Change
	ref    *remoteRef      // content reference of a put with content
	blobs  []crypto.BlobID // blobs the change names
	upload bool            // content to upload
	repush bool            // pushed again, unchanged, for a peer's request
	// anew: every byte of the content goes up again, none referred to
	// (escalefs fix, after the relay lost or damaged blobs).
	anew bool
	// fullPut: the file goes out as a put even if only its mode or time
	// changed (a peer's request, or a file kept over a peer's delete).
	fullPut bool
	// progress is the cache key of the upload's progress, cleared when
	// the record naming its parts is committed.
	progress string
	drop     bool // nothing to push (entry gone or clean)
	retry    bool // the file changed while uploading: scan it again
	wait     bool // no room on the relay: stays queued
	held     bool // open for writing (Config.InUse): stays queued until closed
	hasher   hash.Hash
	closed   *cache.LocalStat // the file's fingerprint when the upload closed it
}

// Push publishes what the queue holds: it uploads content, then writes one
// record per batch of changes. It also writes a record when acknowledgements
// are due, or as a heartbeat when the node has been quiet for a while. It
// returns the number of changes published.
func (e *Engine) Push(ctx context.Context) (int, error) {
	if err := e.flushOutbox(ctx); err != nil {
		return 0, err
	}
	total := 0
	for {
		n, more, err := e.pushBatch(ctx)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// pushBatch pushes up to Config.Batch queue items. more reports that the
// queue may hold more.
func (e *Engine) pushBatch(ctx context.Context) (n int, more bool, err error) {
	b, err := e.loadBatch()
	if err != nil {
		return 0, false, err
	}
	items := b.items
	live := b.ls.liveBlobs()
	for _, it := range items {
		if !it.drop && !e.mayRead(it.ent) {
			it.drop = true // r-, or download mode: the change stays here, dirty
		}
		if !it.drop && e.inUse(&it.ent) {
			// Pushed once its writer closes it, which the mount reports.
			it.held = true
			continue
		}
		if !it.drop {
			e.plan(it, live)
		}
	}
	waiting := e.fit(items)
	full, err := e.upload(ctx, items)
	if err != nil {
		return 0, false, err
	}
	e.setFull(waiting || full, "disk quota reached")
	heartbeat := e.heartbeatDue(b.ls)
	e.postRequests = b.requestDue || heartbeat
	n, err = e.commit(ctx, items, b.ackDue || heartbeat || b.requestDue)
	if err != nil {
		return 0, false, err
	}
	if err := e.flushOutbox(ctx); err != nil {
		return n, false, err
	}
	var retry []string
	for _, it := range items {
		if it.retry {
			retry = append(retry, it.ent.Path)
		}
	}
	if len(retry) > 0 {
		_, err := e.Scan(ctx, retry)
		return n, false, err
	}
	return n, n > 0 && len(items) == e.cfg.Batch, nil
}

// batch is what a push starts from: the queued items, the log state, and
// whether a record is due for acknowledgements or requests even without
// changes.
type batch struct {
	items              []*pushItem
	ls                 logState
	ackDue, requestDue bool
}

// loadBatch reads the next batch of queued paths from the cache.
func (e *Engine) loadBatch() (batch, error) {
	var b batch
	err := e.store.View(func(tx *cache.Tx) error {
		q, err := tx.Peek(e.cfg.Batch)
		if err != nil {
			return err
		}
		for _, it := range q {
			ent, ok, err := tx.Get(it.Path)
			if err != nil {
				return err
			}
			b.items = append(b.items, queuedItem(it, ent, ok))
		}
		if b.ls, err = loadLogState(tx); err != nil {
			return err
		}
		if _, b.ackDue, err = tx.Meta(metaAckDue); err != nil {
			return err
		}
		if _, b.requestDue, err = tx.Meta(metaRequestDue); err != nil || b.requestDue {
			return err
		}
		b.requestDue, err = repostDue(tx, e.clock.Now())
		return err
	})
	return b, err
}

// queuedItem is the push item of the queued path it, whose entry is ent
// (found: there is one).
func queuedItem(it cache.QueueItem, ent cache.Entry, found bool) *pushItem {
	if !found {
		ent.Path = it.Path // gone (never pushed, then deleted): dropped
	}
	repush := string(it.Payload) == payloadRepush && !ent.Dirty
	drop := !found || (!ent.Dirty && !repush) || (repush && (ent.Deleted || ent.Kind != cache.KindFile))
	return &pushItem{qid: it.ID, ent: ent, drop: drop, repush: repush,
		fullPut: repush || string(it.Payload) == payloadPut}
}

// heartbeatDue reports whether the node has been quiet long enough that its
// pullers could take it for gone: it then writes an empty record, so that
// peers see it alive within LockTimeout. A node that never wrote registers
// this way.
func (e *Engine) heartbeatDue(ls logState) bool {
	if ls.LastWrite.IsZero() {
		return true
	}
	if e.cfg.LockTimeout < 0 {
		return false
	}
	every := min(e.cfg.LockTimeout/3, time.Hour)
	return e.clock.Now().Sub(ls.LastWrite) >= every
}

// plan decides the change an item becomes and whether its content must be
// uploaded.
func (e *Engine) plan(it *pushItem, live map[crypto.BlobID]bool) {
	ent := it.ent
	c := proto.Change{Path: ent.Path, ModTime: ent.ModTime}
	switch {
	case ent.Deleted && ent.Kind == cache.KindDir:
		c.Op, c.ModTime = proto.OpRmdir, time.Time{}
	case ent.Deleted:
		c.Op, c.ModTime = proto.OpDelete, time.Time{}
	case ent.Kind == cache.KindDir:
		// The directory's time as last scanned: not applied to folders
		// (they change with every entry), but carried so that every node
		// decides a conflict over the path on the same fields.
		c.Op, c.Mode = proto.OpMkdir, unixMode(ent.Mode)
	case ent.Kind == cache.KindSymlink:
		c.Op, c.Target = proto.OpSymlink, ent.Target
	default:
		c.Op, c.Mode, c.Hash, c.Size = proto.OpPut, unixMode(ent.Mode), ent.Hash, ent.Size
		rr, ok := decodeRemote(ent.Remote)
		switch {
		case ok && rr.Path == ent.Path && rr.Hash == ent.Hash && !it.fullPut:
			// The peers have this content at this path: only the mode or
			// mtime changed.
			c = proto.Change{Op: proto.OpMeta, Path: ent.Path, ModTime: ent.ModTime, Mode: unixMode(ent.Mode)}
		case ent.Size == 0:
		case ok && rr.reusable(e.selfID, ent.Hash, live) && !it.repush:
			// A renamed file whose blobs are still on the relay. Not for
			// a peer's request: it could not read them (collected, or
			// damaged by the relay), so the content goes up anew.
			rr.Path = ent.Path
			it.ref = &rr
			it.blobs = rr.blobs()
		default:
			it.upload = true
		}
	}
	it.change = c
}

// unixMode converts a cache mode to the Unix permission bits of a change.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode converts a change's Unix permission bits to an fs.FileMode.
func fileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// hashingReader hashes what is read through it.
type hashingReader struct {
	r io.ReadCloser
	h hash.Hash
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashingReader) Close() error { return h.r.Close() }

// open opens an item's file for upload. Whether what is sent is what was
// scanned is checked when the file is closed (verified): by its
// fingerprint, or by hashing what is read (startCheck).
func (e *Engine) open(ctx context.Context, it *pushItem) (io.ReadCloser, error) {
	f, err := e.openFile(ctx, it)
	if err != nil {
		return nil, err
	}
	if h := it.startCheck(); h != nil {
		return &hashingReader{r: f, h: h}, nil
	}
	return f, nil
}

// openFile opens an item's file, recording its fingerprint when closed.
func (e *Engine) openFile(ctx context.Context, it *pushItem) (*statOnClose, error) {
	f, err := e.local.Open(ctx, it.ent.Path, it.ent.Local)
	if err != nil {
		return nil, err
	}
	it.closed = nil
	return &statOnClose{f: f, st: &it.closed}, nil
}

// startCheck begins the check of an upload of it (verified): by the
// file's fingerprint when closed (size, times, inode: any write changes
// its ctime), or, when the scan could not trust the fingerprint (a file
// changed within the clock's resolution), by the SHA-256 of what is sent,
// which the caller feeds to the hash it returns (nil otherwise).
func (it *pushItem) startCheck() hash.Hash {
	it.hasher = nil
	if it.ent.Local.CTimeNs == 0 {
		it.hasher = sha256.New()
	}
	return it.hasher
}

// statOnClose records the file's fingerprint when it is closed.
type statOnClose struct {
	f  *os.File
	st **cache.LocalStat
}

func (s *statOnClose) Read(p []byte) (int, error) { return s.f.Read(p) }

// ReadAt lets a chunked upload cut the file in parallel.
func (s *statOnClose) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

func (s *statOnClose) Close() error {
	if fi, err := s.f.Stat(); err == nil {
		st := localdir.Fingerprint(fi)
		*s.st = &st
	}
	return s.f.Close()
}

// changedLocally reports whether err means a file changed under an upload.
func changedLocally(err error) bool {
	return errors.Is(err, localdir.ErrLocalChanged) || errors.Is(err, transfer.ErrChanged) ||
		errors.Is(err, fs.ErrNotExist)
}

// upload stores the content of the items that need it: small files in
// packs, large ones in parts. A file that changed since it was scanned is
// marked for a new scan and left out; the others go on. full reports that
// the relay answered that it is full: what is not uploaded stays queued.
//
// Small files go first, and large ones from the smallest up, so that when
// the relay is nearly full the files that still fit get through while a
// large one waits. A large upload the relay refuses for room gives its
// parts back: they would hold the room the others need.
func (e *Engine) upload(ctx context.Context, items []*pushItem) (full bool, err error) {
	var small, large []*pushItem
	for _, it := range items {
		switch {
		case !it.upload || it.drop || it.wait || it.held:
		case it.ent.Size < e.cfg.PackLimit:
			small = append(small, it)
		default:
			large = append(large, it)
		}
	}
	for len(small) > 0 {
		pack := []*pushItem{small[0]}
		size := small[0].ent.Size
		for _, it := range small[1:] {
			if len(pack) == e.cfg.MaxPackFiles || size+it.ent.Size > e.cfg.MaxPackBytes {
				break
			}
			pack = append(pack, it)
			size += it.ent.Size
		}
		small = small[len(pack):]
		if err := e.uploadPack(ctx, pack); err != nil {
			if full, err = e.quotaHit(err); err != nil {
				return false, err
			}
			break // the next packs would not fit either
		}
	}
	slices.SortStableFunc(large, func(a, b *pushItem) int { return cmp.Compare(a.ent.Size, b.ent.Size) })
	for _, it := range large {
		upload := e.uploadParts
		if e.cfg.Chunks {
			upload = e.uploadChunks
		}
		if err := upload(ctx, it); err != nil {
			hit, err := e.quotaHit(err)
			if err != nil {
				return full, err
			}
			full = full || hit
			break // the larger ones would not fit either
		}
	}
	return full, nil
}

// blobOverhead estimates what encryption adds to size bytes of content.
func blobOverhead(size int64) int64 { return size/(64<<10)*16 + 1024 }

// fit keeps back the uploads that would take the repository past
// Config.DiskQuota (as of the last listing): they wait, queued, for pullers
// to make room. A file larger than the quota itself is reported once.
func (e *Engine) fit(items []*pushItem) (waiting bool) {
	if e.cfg.DiskQuota <= 0 {
		return false
	}
	if !e.usageKnown {
		// Not listed yet: nothing is uploaded before the relay's usage
		// is known (the next listing tells).
		for _, it := range items {
			if it.upload && !it.drop {
				it.wait = true
			}
		}
		return false
	}
	room := e.cfg.DiskQuota - e.usage.Load()
	for _, it := range items {
		if !it.upload || it.drop {
			e.noteTooLarge(it.ent.Path, -1)
			continue
		}
		need := it.ent.Size + blobOverhead(it.ent.Size)
		if it.ent.Size < e.cfg.PackLimit {
			need = transfer.Padme(it.ent.Size) + blobOverhead(it.ent.Size) // packs are padded
		}
		if need > e.cfg.DiskQuota {
			it.wait = true
			e.noteTooLarge(it.ent.Path, it.ent.Size)
			continue
		}
		e.noteTooLarge(it.ent.Path, -1)
		switch {
		case need > room:
			it.wait, waiting = true, true
		default:
			room -= need
		}
	}
	return waiting
}

// noteTooLarge records that the file at path, of size bytes, can never be
// pushed under the disk quota (logged once), or with size -1 that it no
// longer is such a file.
func (e *Engine) noteTooLarge(path string, size int64) {
	e.mu.Lock()
	if size < 0 && len(e.tooLarge) == 0 {
		e.mu.Unlock()
		return
	}
	old, had := e.tooLarge[path]
	if size < 0 {
		delete(e.tooLarge, path)
	} else {
		e.tooLarge[path] = size
	}
	e.mu.Unlock()
	if size >= 0 && (!had || old != size) {
		e.log.Warn("file larger than the disk quota: it can never be pushed under this quota", "path", path, "size", size,
			"quota", e.cfg.DiskQuota)
	}
}

// setFull logs when pushes start and stop waiting for room on the relay.
func (e *Engine) setFull(full bool, why string) {
	switch was := e.full.Swap(full); {
	case full && !was:
		e.log.Info("relay full: pushes wait for pullers to make room", "reason", why, "used", e.usage.Load(), "quota", e.cfg.DiskQuota)
	case !full && was:
		e.log.Info("room on the relay again: pushing")
	}
}

// quotaHit turns the relay's "storage full" answer into waiting: the items
// not uploaded stay queued, and the round goes on to pull and collect.
func (e *Engine) quotaHit(err error) (bool, error) {
	if errors.Is(err, relay.ErrQuota) {
		e.setFull(true, err.Error())
		return true, nil
	}
	return false, err
}

// uploadParts stores the content of it as whole parts (chunks off). A
// file hashed by its chunks (scanned while chunks were on) is hashed again
// first, with SHA-256: a reader checks parts by that.
func (e *Engine) uploadParts(ctx context.Context, it *pushItem) error {
	if e.scannedChunks(it) != nil {
		it.retry = true
		return e.store.Update(func(tx *cache.Tx) error {
			ent, found, err := tx.Get(it.ent.Path)
			if err != nil || !found || ent.Local != it.ent.Local {
				return err
			}
			ent.Local = cache.LocalStat{} // the next scan hashes the file
			return tx.Put(ent)
		})
	}
	key := it.ent.Path
	prog, err := e.loadUpload(key)
	if err != nil {
		return err
	}
	if prog.Hash != it.ent.Hash || prog.Size != it.ent.Size || prog.PartSize != e.cfg.PartSize {
		if len(prog.Parts) > 0 {
			e.dropUpload(ctx, key, prog) // another content: its parts are of no use
		}
		prog = uploadProgress{Hash: it.ent.Hash, Size: it.ent.Size, PartSize: e.cfg.PartSize}
	} else if stored := countStored(prog.Parts); stored > 0 {
		// Parts of a node silent for long may have been cleared by its
		// peers as stale: send again any that is gone.
		for i, ref := range prog.Parts {
			if ref.ID == (crypto.BlobID{}) {
				continue
			}
			if _, err := e.r.Stat(ctx, layout.BlobName(e.self, ref.ID)); errors.Is(err, fs.ErrNotExist) {
				prog.Parts[i] = crypto.BlobRef{}
			} else if err != nil {
				return err
			}
		}
		e.log.Info("resuming an interrupted upload", "path", it.ent.Path, "parts_done", countStored(prog.Parts))
	}
	tr := e.transfers.start(true, it.ent.Path, it.ent.Size)
	defer e.transfers.end(tr)
	e.transfers.set(tr, int64(countStored(prog.Parts))*e.cfg.PartSize)
	refs, err := e.up.PutPartsFrom(ctx, func() (io.ReadCloser, error) { return e.open(ctx, it) }, it.ent.Size, e.cfg.PartSize,
		prog.Parts, func(refs []crypto.BlobRef) error {
			prog.Parts = refs
			e.transfers.set(tr, int64(countStored(refs))*e.cfg.PartSize)
			return e.saveUpload(key, prog)
		})
	switch {
	case changedLocally(err) && ctx.Err() == nil:
		it.retry = true
		return nil
	case errors.Is(err, relay.ErrQuota):
		// The relay is full: the parts stored so far would keep the
		// room that smaller files need. The upload starts over once
		// there is room.
		e.dropUpload(ctx, key, prog)
		e.log.Info("the relay is full: dropped the parts of an upload, which starts over once there is room",
			"path", it.ent.Path, "parts", countStored(prog.Parts))
		return fmt.Errorf("uploading %q: %w", it.ent.Path, err)
	case err != nil:
		return fmt.Errorf("uploading %q: %w", it.ent.Path, err)
	}
	if !e.verified(it) {
		e.dropUpload(ctx, key, prog)
		return nil
	}
	it.progress = key
	it.ref = &remoteRef{Node: e.selfID, Hash: it.ent.Hash, Path: it.ent.Path, Parts: refs}
	for _, r := range refs {
		e.usage.Add(r.Size)
	}
	it.blobs = it.ref.blobs()
	e.count(func(s *Stats) { s.Blobs += len(refs) })
	return nil
}

// verified checks that what was uploaded is what was scanned; a file
// rewritten in place with the same size is caught here.
func (e *Engine) verified(it *pushItem) bool {
	if it.hasher == nil {
		if it.closed == nil || *it.closed != it.ent.Local {
			it.retry = true
			return false
		}
		return true
	}
	e.count(func(s *Stats) { s.BytesHashed += it.ent.Size })
	var sum [32]byte
	it.hasher.Sum(sum[:0])
	if sum != it.ent.Hash {
		it.retry = true
		return false
	}
	return true
}

// uploadPack stores the files of pack as one blob. Files that changed since
// they were scanned are left out and the pack is written without them.
func (e *Engine) uploadPack(ctx context.Context, pack []*pushItem) error {
	var size int64
	for _, it := range pack {
		size += it.ent.Size
	}
	tr := e.transfers.start(true, packWhat(len(pack)), size)
	defer e.transfers.end(tr)
	for attempt := 0; len(pack) > 0; attempt++ {
		files := make([]transfer.PackFile, len(pack))
		for i, it := range pack {
			files[i] = transfer.PackFile{Size: it.ent.Size, Open: func() (io.ReadCloser, error) { return e.open(ctx, it) }}
		}
		refs, blob, err := e.up.PutPack(ctx, files)
		if err == nil {
			for i, it := range pack {
				if e.verified(it) {
					it.ref = &remoteRef{Node: e.selfID, Hash: it.ent.Hash, Path: it.ent.Path, Pack: &refs[i]}
					it.blobs = []crypto.BlobID{blob.ID}
				}
			}
			e.count(func(s *Stats) { s.Blobs++ })
			e.usage.Add(blob.Size)
			return nil
		}
		if !changedLocally(err) || ctx.Err() != nil || attempt == 3 {
			return fmt.Errorf("uploading a pack of %d files: %w", len(pack), err)
		}
		// Find the files that changed and go on without them.
		pack = slices.DeleteFunc(pack, func(it *pushItem) bool {
			f, err := e.local.Open(ctx, it.ent.Path, it.ent.Local)
			if err != nil {
				it.retry = true
				return true
			}
			f.Close()
			return false
		})
	}
	return nil
}

// commit turns the planned items into one record in one cache transaction:
// entries get their new version and are marked clean, the queue items go,
// and the sealed record goes to the outbox. A record is written even
// without changes when force is set (acknowledgements or a heartbeat).
func (e *Engine) commit(ctx context.Context, items []*pushItem, force bool) (int, error) {
	var pushed []*pushItem
	now := e.clock.Now()
	err := e.store.Update(func(tx *cache.Tx) error {
		pushed = pushed[:0]
		var changes []proto.Change
		var blobs []crypto.BlobID
		for _, it := range items {
			c, ok, err := e.commitItem(tx, it)
			if err != nil {
				return err
			}
			if ok {
				changes = append(changes, c)
				blobs = append(blobs, it.blobs...)
				pushed = append(pushed, it)
			}
		}
		if len(changes) == 0 && !force {
			return nil
		}
		return e.writeRecord(tx, changes, dedupe(blobs), now)
	})
	if err != nil {
		return 0, fmt.Errorf("recording pushed changes: %w", err)
	}
	for _, it := range pushed {
		e.logPushed(it)
	}
	return len(pushed), nil
}

// commitItem marks it pushed in tx and returns its change for the record;
// ok is false for an item that stays queued (it waits, or changed again
// since it was planned) or leaves the queue with no change.
func (e *Engine) commitItem(tx *cache.Tx, it *pushItem) (c proto.Change, ok bool, err error) {
	if it.retry || it.held || (it.upload && it.ref == nil) {
		return c, false, nil // stays queued
	}
	cur, found, err := tx.Get(it.ent.Path)
	if err != nil {
		return c, false, err
	}
	if it.drop || !found || (!cur.Dirty && !it.repush) {
		return c, false, tx.Remove(it.qid)
	}
	if !samePlanned(cur, it.ent) {
		return c, false, nil // changed again since planned: the next batch takes it
	}
	if !it.repush || cur.Dirty {
		cur.Version = cur.Version.Bump(e.selfID)
		cur.Origin = e.selfID
	}
	c = it.withContent(cur.Version)
	if err := c.Validate(); err != nil {
		e.log.Warn("not synchronized: the name or its data cannot be sent", "path", cur.Path, "err", err)
		return c, false, tx.Remove(it.qid)
	}
	cur.Dirty = false
	switch {
	case it.ref != nil:
		cur.Remote = encodeRemote(*it.ref)
	case c.Op == proto.OpPut:
		cur.Remote = encodeRemote(remoteRef{Node: e.selfID, Hash: cur.Hash, Path: cur.Path})
	case c.Op == proto.OpMeta:
	default:
		cur.Remote = nil
	}
	if err := tx.Put(cur); err != nil {
		return c, false, err
	}
	if err := tx.Remove(it.qid); err != nil {
		return c, false, err
	}
	if it.progress != "" {
		if err := forgetUpload(tx, it.progress); err != nil {
			return c, false, err
		}
	}
	if c.Chunks != nil {
		if err := recordSent(tx, c.Chunks); err != nil {
			return c, false, err
		}
	}
	return c, true, nil
}

// withContent returns the item's change at version v, with where its
// content is.
func (it *pushItem) withContent(v cache.VersionVector) proto.Change {
	c := it.change
	c.Version = v
	if c.Op == proto.OpPut && it.ref != nil {
		switch {
		case it.ref.Pack != nil:
			c.Pack = it.ref.Pack
		case it.ref.Chunks != nil:
			c.Chunks = it.ref.Chunks
		default:
			c.Parts = it.ref.Parts
		}
	}
	return c
}

// logPushed logs a pushed item and counts it.
func (e *Engine) logPushed(it *pushItem) {
	switch op := it.change.Op; {
	case it.upload:
		e.log.Info("pushed", "path", it.ent.Path, "size", it.ent.Size)
		e.count(func(s *Stats) { s.FilesPushed++; s.BytesPushed += it.ent.Size })
	case op == proto.OpPut:
		e.log.Info("pushed", "path", it.ent.Path, "size", it.ent.Size, "content", "already on the relay")
	case op == proto.OpDelete || op == proto.OpRmdir || op == proto.OpSymlink:
		e.log.Info("pushed", "path", it.ent.Path, "op", op)
	default:
		e.log.Debug("pushed", "path", it.ent.Path, "op", it.change.Op)
	}
}

// samePlanned reports whether the entry is still in the state it was when
// its push was planned.
func samePlanned(cur, planned cache.Entry) bool {
	return cur.Deleted == planned.Deleted && cur.Kind == planned.Kind && cur.Hash == planned.Hash &&
		cur.Size == planned.Size && cur.Local == planned.Local && cur.Mode == planned.Mode &&
		cur.ModTime.Equal(planned.ModTime) && cur.Target == planned.Target
}

func dedupe(ids []crypto.BlobID) []crypto.BlobID {
	slices.SortFunc(ids, func(a, b crypto.BlobID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(ids)
}

// writeRecord seals a log record with changes and the current acks under the
// next sequence number and puts it in the outbox, in tx.
func (e *Engine) writeRecord(tx *cache.Tx, changes []proto.Change, blobs []crypto.BlobID, now time.Time) error {
	seq, _, err := tx.MetaUint64(cache.MetaNextSeq)
	if err != nil {
		return err
	}
	acks, err := e.acks(tx)
	if err != nil {
		return err
	}
	// Requests go out when new, and again with each heartbeat: not with
	// every record, or two nodes acknowledging each other would repeat
	// them (and their answers) for ever.
	var requests []proto.Request
	if e.postRequests {
		if requests, err = loadWanted(tx); err != nil {
			return err
		}
		requests = requests[:min(len(requests), maxPosted)]
		if len(requests) > 0 {
			if err := posted(tx, now); err != nil {
				return err
			}
		}
	}
	mode := e.cfg.Mode
	if mode == proto.ModeShared {
		mode = "" // the default, left out
	}
	plain, err := proto.EncodeLog(proto.Log{Version: proto.VersionFor(changes), NodeName: e.cfg.Name, Mode: mode,
		Time: now, Changes: changes, Acks: acks, Requests: requests})
	if err != nil {
		return err
	}
	plain = proto.Pad(plain)
	sealed, err := e.sealer.Seal(crypto.RecordContext{Node: e.self, Seq: seq, Kind: KindLog}, plain)
	if err != nil {
		return err
	}
	ls, err := loadLogState(tx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(sealed)
	ls.Records = append(ls.Records, ownRecord{Seq: seq, Blobs: blobs, Size: int64(len(sealed)), Sum: sum[:]})
	ls.LastWrite = now // a heartbeat is not due again while this one is pending
	if err := saveLogState(tx, ls); err != nil {
		return err
	}
	if err := tx.SetMeta(outboxKey(seq), sealed); err != nil {
		return err
	}
	if err := tx.DeleteMeta(metaAckDue); err != nil {
		return err
	}
	if err := tx.DeleteMeta(metaRequestDue); err != nil {
		return err
	}
	return tx.SetMetaUint64(cache.MetaNextSeq, seq+1)
}

// acks returns, per peer, the last record of its log applied here.
func (e *Engine) acks(tx *cache.Tx) (map[crypto.NodeID]uint64, error) {
	seqs, err := tx.PeerSeqs()
	if err != nil {
		return nil, err
	}
	acks := make(map[crypto.NodeID]uint64, len(seqs))
	for node, seq := range seqs {
		id, err := crypto.ParseNodeID(node)
		if err != nil {
			continue
		}
		acks[id] = seq
	}
	return acks, deferredAcks(tx, acks)
}

// flushOutbox publishes the sealed records of the outbox, oldest first. A
// record is put byte for byte as it was sealed, however often it takes.
func (e *Engine) flushOutbox(ctx context.Context) error {
	type pending struct {
		seq    uint64
		sealed []byte
	}
	var out []pending
	err := e.store.View(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		for _, r := range ls.Records {
			if r.Published {
				continue
			}
			b, ok, err := tx.Meta(outboxKey(r.Seq))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("record %d of this node is neither published nor in the outbox: %w", r.Seq, cache.ErrCorrupt)
			}
			out = append(out, pending{r.Seq, b})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range out {
		if err := e.r.Put(ctx, layout.LogName(e.self, p.seq), relay.BytesPayload(p.sealed)); err != nil {
			return fmt.Errorf("publishing record %d: %w", p.seq, err)
		}
		err := e.store.Update(func(tx *cache.Tx) error {
			ls, err := loadLogState(tx)
			if err != nil {
				return err
			}
			for i := range ls.Records {
				if ls.Records[i].Seq == p.seq {
					ls.Records[i].Published = true
				}
			}
			ls.LastWrite = e.clock.Now()
			if err := saveLogState(tx, ls); err != nil {
				return err
			}
			return tx.DeleteMeta(outboxKey(p.seq))
		})
		if err != nil {
			return err
		}
		e.count(func(s *Stats) { s.Records++ })
	}
	return nil
}
