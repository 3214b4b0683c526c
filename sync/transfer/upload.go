package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	gosync "sync"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// DefaultPartSize is the plaintext size of a part of a large file when
// PutParts is given no part size.
const DefaultPartSize = 8 << 20

// ErrChanged: a file yielded more or fewer bytes than the size it was
// uploaded with; it changed since it was scanned and must be scanned again.
var ErrChanged = errors.New("file changed during upload")

// Putter is the part of relay.Relay that uploads need.
type Putter interface {
	Put(ctx context.Context, name string, p relay.Payload) error
}

// Uploader writes file content to the relay as blobs of one node. It is
// safe for concurrent use.
type Uploader struct {
	relay   Putter
	keys    *crypto.Keys
	node    crypto.NodeID
	scratch string
	log     *slog.Logger
	bufs    bufPool // of PutChunks
}

// NewUploader returns an uploader that stores blobs of node on r. keys nil
// means a repository without a secret (blobs in the clear). Temporary files
// go to scratch, a local directory; log nil discards everything.
func NewUploader(r Putter, keys *crypto.Keys, node crypto.NodeID, scratch string, log *slog.Logger) *Uploader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Uploader{relay: r, keys: keys, node: node, scratch: scratch, log: log}
}

// PackFile is one file of a pack: Open returns its content, which must be
// exactly Size bytes (Size ≥ 1).
type PackFile struct {
	Open func() (io.ReadCloser, error)
	Size int64
}

// PutPack stores files, concatenated, as one pack blob and returns where
// each file's plaintext is in it (refs[i] for files[i]) and the pack's
// reference. A file that yields another number of bytes than its Size
// fails the whole pack with an error wrapping ErrChanged that names its
// index.
func (u *Uploader) PutPack(ctx context.Context, files []PackFile) ([]proto.PackRef, crypto.BlobRef, error) {
	if len(files) == 0 {
		return nil, crypto.BlobRef{}, errors.New("pack: no files")
	}
	for i, f := range files {
		if f.Size < 1 {
			return nil, crypto.BlobRef{}, fmt.Errorf("pack: file %d: size %d (an empty file has no content to pack)", i, f.Size)
		}
	}
	id := crypto.NewBlobID()
	refs := make([]proto.PackRef, len(files))
	var off int64
	ref, err := u.put(ctx, id, func(w io.Writer) error {
		for i, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			if off > maxInt64-f.Size {
				return fmt.Errorf("pack: file %d: pack larger than 2⁶³−1 bytes", i)
			}
			if err := copyFile(ctx, w, f.Open, f.Size); err != nil {
				return fmt.Errorf("pack: file %d: %w", i, err)
			}
			refs[i] = proto.PackRef{Offset: off, Length: f.Size}
			off += f.Size
		}
		// Zeros after the last file hide the files' exact sizes; readers
		// read the files by their ranges and skip them.
		return writeZeros(w, Padme(off)-off)
	})
	if err != nil {
		return nil, crypto.BlobRef{}, err
	}
	for i := range refs {
		refs[i].Blob = ref
	}
	u.log.Debug("pack stored", "blob", ref.ID, "files", len(files), "plaintext", off, "size", ref.Size)
	return refs, ref, nil
}

// PutParts stores a file of size bytes (≥ 1) as consecutive parts of
// partSize plaintext bytes (DefaultPartSize when partSize ≤ 0), the last
// one shorter, each its own blob. open is called once and read to its end.
// The references are returned in order, as proto.Change.Parts wants them.
// A file that yields another number of bytes than size fails with an
// error wrapping ErrChanged; parts already stored are then unreferenced.
func (u *Uploader) PutParts(ctx context.Context, open func() (io.ReadCloser, error), size, partSize int64) ([]crypto.BlobRef, error) {
	return u.PutPartsFrom(ctx, open, size, partSize, nil, nil)
}

// PutPartsFrom is PutParts resuming an interrupted upload: done[i], where
// its ID is not zero, is part i of the same content (same size and part
// size) already stored; those parts are read but not sent again (the
// leading ones skipped with Seek when the reader can). After each part is
// stored, onPart (if not nil) is called with the references so far, a
// zero BlobRef for each part not stored yet, so that the caller can
// remember them across a crash; an error from it stops the upload.
func (u *Uploader) PutPartsFrom(ctx context.Context, open func() (io.ReadCloser, error), size, partSize int64,
	done []crypto.BlobRef, onPart func([]crypto.BlobRef) error) ([]crypto.BlobRef, error) {
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	n, err := partCount(size, partSize, len(done))
	if err != nil {
		return nil, err
	}
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("parts: opening: %w", err)
	}
	defer rc.Close()
	lead := 0
	for lead < len(done) && done[lead].ID != (crypto.BlobID{}) {
		lead++
	}
	if err := skipParts(ctx, rc, int64(lead)*partSize, size); err != nil {
		return nil, err
	}
	if len(done) > 0 {
		u.log.Debug("resuming an upload", "parts", n)
	}
	// Parts are read and encrypted one after another (the content is a
	// stream) while up to partsInFlight of them are being sent, so that
	// encryption and the network overlap and several connections work.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &partsPut{u: u, ctx: ctx, cancel: cancel, rc: rc, size: size, partSize: partSize, n: n,
		refs: make([]crypto.BlobRef, n), onPart: onPart, slots: make(chan struct{}, partsInFlight)}
	copy(p.refs, done)
	for i := int64(lead); i < n; i++ {
		if !p.put(i) {
			break
		}
	}
	p.wg.Wait()
	if p.firstEr != nil {
		return nil, p.firstEr
	}
	refs := p.refs
	if refs[n-1].ID != (crypto.BlobID{}) && int64(len(done)) == n && done[n-1].ID != (crypto.BlobID{}) {
		if err := checkEnd(rc, size); err != nil {
			return nil, fmt.Errorf("parts: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("parts: closing: %w", err)
	}
	u.log.Debug("parts stored", "parts", n, "plaintext", size)
	return refs, nil
}

// partCount is the number of parts of size bytes in parts of partSize,
// checked against the bounds and against the parts already stored (done).
func partCount(size, partSize int64, done int) (int64, error) {
	if size < 1 {
		return 0, fmt.Errorf("parts: size %d (an empty file has no parts)", size)
	}
	n := (size-1)/partSize + 1
	if n > proto.MaxParts {
		return 0, fmt.Errorf("parts: %d bytes in parts of %d make %d parts, more than %d", size, partSize, n, proto.MaxParts)
	}
	if int64(done) > n {
		return 0, fmt.Errorf("parts: %d parts already stored of a content of %d parts", done, n)
	}
	return n, nil
}

// skipParts skips the first skip bytes of rc, the leading parts stored
// before: with Seek where it can, else by reading them.
func skipParts(ctx context.Context, rc io.Reader, skip, size int64) error {
	if skip == 0 {
		return nil
	}
	if sk, ok := rc.(io.Seeker); ok {
		if _, err := sk.Seek(skip, io.SeekStart); err != nil {
			return fmt.Errorf("parts: resuming at byte %d: %w", skip, err)
		}
		return nil
	}
	if err := copyExact(ctx, io.Discard, rc, skip, 0, size); err != nil {
		return fmt.Errorf("parts: resuming at byte %d: %w", skip, err)
	}
	return nil
}

// partsPut is one PutPartsFrom: the parts stored so far and those in
// flight.
type partsPut struct {
	u              *Uploader
	ctx            context.Context
	cancel         context.CancelFunc
	rc             io.Reader
	size, partSize int64
	n              int64
	onPart         func([]crypto.BlobRef) error
	slots          chan struct{}
	wg             gosync.WaitGroup

	mu           gosync.Mutex
	refs         []crypto.BlobRef // under mu
	firstEr      error            // under mu
	onPartFailed bool             // under mu
}

// fail records the first error: it stops the staging of more parts, but
// the parts in flight go on, for each one stored need not be sent again.
func (p *partsPut) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstEr == nil {
		p.firstEr = err
	}
}

func (p *partsPut) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstEr != nil
}

// put reads part i and, unless it was stored before, stages it and sends
// it in the background; false stops the upload.
func (p *partsPut) put(i int64) bool {
	length := min(p.partSize, p.size-i*p.partSize)
	p.mu.Lock()
	stored := p.refs[i].ID != (crypto.BlobID{})
	p.mu.Unlock()
	if stored {
		// Stored before: read through it, send nothing.
		if err := copyExact(p.ctx, io.Discard, p.rc, length, i*p.partSize, p.size); err != nil {
			p.fail(fmt.Errorf("parts: part %d of %d: %w", i+1, p.n, err))
			return false
		}
		return true
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.ctx.Done():
	}
	if p.ctx.Err() != nil {
		return false // the slot may not be ours; nothing waits for it
	}
	if p.failed() {
		<-p.slots
		return false
	}
	id := crypto.NewBlobID()
	f, ref, err := p.u.stage(p.ctx, id, func(w io.Writer) error {
		if err := copyExact(p.ctx, w, p.rc, length, i*p.partSize, p.size); err != nil {
			return err
		}
		if i == p.n-1 {
			return checkEnd(p.rc, p.size)
		}
		return nil
	})
	if err != nil {
		<-p.slots
		p.fail(fmt.Errorf("parts: part %d of %d: %w", i+1, p.n, err))
		return false
	}
	p.wg.Go(func() {
		defer func() { <-p.slots }()
		p.send(i, f, id, ref)
	})
	return true
}

// send stores part i, staged in f, and records it.
func (p *partsPut) send(i int64, f *os.File, id crypto.BlobID, ref crypto.BlobRef) {
	if err := p.u.send(p.ctx, f, id, ref); err != nil {
		p.fail(fmt.Errorf("parts: part %d of %d: %w", i+1, p.n, err))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refs[i] = ref
	// Recorded even when another part failed meanwhile: it need not be
	// sent again.
	if p.onPart != nil && !p.onPartFailed {
		if err := p.onPart(slices.Clone(p.refs)); err != nil {
			p.onPartFailed = true
			if p.firstEr == nil {
				p.firstEr = err
			}
			p.cancel()
		}
	}
}

const maxInt64 = 1<<63 - 1

// partsInFlight bounds the parts of one file being sent at once.
const partsInFlight = 3

// put writes a blob with fill, staging it in a temporary file, and Puts it
// under the blob's name. The temporary file is always removed.
func (u *Uploader) put(ctx context.Context, id crypto.BlobID, fill func(io.Writer) error) (crypto.BlobRef, error) {
	f, ref, err := u.stage(ctx, id, fill)
	if err != nil {
		return crypto.BlobRef{}, err
	}
	return ref, u.send(ctx, f, id, ref)
}

// stage encrypts what fill writes into a temporary file and returns it,
// open, with the blob's reference. On error nothing is left behind.
func (u *Uploader) stage(ctx context.Context, id crypto.BlobID, fill func(io.Writer) error) (*os.File, crypto.BlobRef, error) {
	if err := ctx.Err(); err != nil {
		return nil, crypto.BlobRef{}, err
	}
	f, err := os.CreateTemp(u.scratch, "blob-*")
	if err != nil {
		return nil, crypto.BlobRef{}, fmt.Errorf("staging blob: %w", err)
	}
	ref, err := u.fill(f, id, fill)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, crypto.BlobRef{}, err
	}
	return f, ref, nil
}

// fill encrypts what fill writes into f.
func (u *Uploader) fill(f *os.File, id crypto.BlobID, fill func(io.Writer) error) (crypto.BlobRef, error) {
	bw, err := crypto.NewBlobWriter(u.keys, id, f)
	if err != nil {
		return crypto.BlobRef{}, err
	}
	if err := fill(bw); err != nil {
		return crypto.BlobRef{}, err
	}
	if err := bw.Close(); err != nil {
		return crypto.BlobRef{}, fmt.Errorf("staging blob: %w", err)
	}
	return bw.Ref(), nil
}

// send Puts a staged blob and removes its temporary file, whatever
// happens.
func (u *Uploader) send(ctx context.Context, f *os.File, id crypto.BlobID, ref crypto.BlobRef) (err error) {
	defer func() {
		cerr := f.Close()
		if rerr := os.Remove(f.Name()); rerr != nil && err == nil {
			err = fmt.Errorf("removing staged blob: %w", rerr)
		}
		if cerr != nil && err == nil {
			err = fmt.Errorf("staging blob: %w", cerr)
		}
	}()
	return u.relay.Put(relay.NewObjects(ctx), layout.BlobName(u.node, id), relay.ReaderAtPayload(f, ref.Size))
}

// copyFile copies exactly size bytes of the content open returns into w.
func copyFile(ctx context.Context, w io.Writer, open func() (io.ReadCloser, error), size int64) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer rc.Close()
	if err := copyExact(ctx, w, rc, size, 0, size); err != nil {
		return err
	}
	if err := checkEnd(rc, size); err != nil {
		return err
	}
	if err := rc.Close(); err != nil {
		return fmt.Errorf("closing: %w", err)
	}
	return nil
}

// copyExact copies n bytes of r into w; done bytes of the file (of size
// total) were read before. A short read is ErrChanged.
func copyExact(ctx context.Context, w io.Writer, r io.Reader, n, done, total int64) error {
	got, err := io.Copy(w, io.LimitReader(ctxReader{ctx, r}, n))
	if err != nil {
		return err
	}
	if got < n {
		return fmt.Errorf("%w: it ended after %d of its %d bytes", ErrChanged, done+got, total)
	}
	return nil
}

// checkEnd checks that r, which yielded size bytes, has no more.
func checkEnd(r io.Reader, size int64) error {
	var b [1]byte
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: it is longer than its %d bytes", ErrChanged, size)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// ctxReader stops reading when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
