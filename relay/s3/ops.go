package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/relay"
)

// Stat implements relay.Relay. A "directory" (a prefix of other keys) is
// not an object and yields fs.ErrNotExist.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := relay.ValidName(name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	oi, err := r.client.StatObject(ctx, r.bucket, r.key(name), minio.StatObjectOptions{})
	if err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, r.translate(err))
	}
	return relay.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements relay.Relay: a recursive listing of the keys under
// "prefix/dir/", page by page. Keys that are not valid object names
// (directory markers ending with a slash, "a//b") are skipped.
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	p := r.prefix
	if dir != "" {
		p += dir + "/"
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := r.client.ListObjects(lctx, r.bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true, MaxKeys: r.listPage})
	// Stopping early cancels the listing; the channel is drained so that
	// minio-go's goroutine ends.
	defer func() {
		cancel()
		for range ch {
		}
	}()
	for oi := range ch {
		if oi.Err != nil {
			if ctx.Err() != nil {
				return relay.WrapOp("list", dir, ctx.Err())
			}
			return relay.WrapOp("list", dir, r.translate(oi.Err))
		}
		name := strings.TrimPrefix(oi.Key, r.prefix)
		if relay.ValidName(name) != nil || !strings.HasPrefix(oi.Key, p) {
			continue
		}
		if err := fn(relay.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	return nil
}

// Get implements relay.Relay with a ranged GET. A range that starts at or
// past the end is answered 416 by S3, which gives an empty reader here.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	if offset < 0 {
		return relay.WrapOp("get", name, relay.Permanent(fmt.Errorf("negative offset %d", offset)))
	}
	if length == 0 {
		if _, err := r.Stat(ctx, name); err != nil {
			return err
		}
		return fn(bytes.NewReader(nil))
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		opts.SetRange(offset, offset+length-1)
	case offset > 0:
		opts.SetRange(offset, 0)
	}
	body, _, _, err := r.core.GetObject(ctx, r.bucket, r.key(name), opts)
	if isCode(err, "InvalidRange") {
		// The object exists (a missing one is NoSuchKey) and the range
		// starts at or past its end.
		return fn(bytes.NewReader(nil))
	}
	if err != nil {
		return relay.WrapOp("get", name, r.translate(err))
	}
	defer body.Close()
	if err := fn(&reader{r: r, body: body, name: name}); err != nil {
		return err
	}
	return nil
}

// reader translates the errors of a download in progress.
type reader struct {
	r    *Relay
	body io.Reader
	name string
}

func (rd *reader) Read(b []byte) (int, error) {
	n, err := rd.body.Read(b)
	if err != nil && err != io.EOF {
		err = relay.WrapOp("get", rd.name, rd.r.translate(err))
	}
	return n, err
}

// Put implements relay.Relay: one PUT up to the part size, a multipart
// upload above it.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("put", name, err)
	}
	size := p.Length()
	src := relay.CheckedReader(p)
	var err error
	if size <= r.partSize {
		err = r.putSingle(ctx, name, src, size)
	} else {
		err = r.putMultipart(ctx, name, src, size)
	}
	return relay.WrapOp("put", name, err)
}

// Create implements relay.Creator with a conditional PUT (If-None-Match:
// *), which the store refuses (412) when the key exists. A store that
// ignores the condition cannot be told from one that honours it: the
// repository's creation reads the object back. Only objects of one part
// are created so.
func (r *Relay) Create(ctx context.Context, name string, p relay.Payload) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("create", name, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("create", name, err)
	}
	if p.Length() > r.partSize {
		return relay.WrapOp("create", name, relay.ErrUnsupported)
	}
	return relay.WrapOp("create", name, r.putSingleWith(ctx, name, relay.CheckedReader(p), p.Length(), true))
}

func (r *Relay) putSingle(ctx context.Context, name string, src io.Reader, size int64) error {
	return r.putSingleWith(ctx, name, src, size, false)
}

func (r *Relay) putSingleWith(ctx context.Context, name string, src io.Reader, size int64, exclusive bool) error {
	// The payload is read into memory so that its MD5 goes with it: the
	// store then rejects a body damaged on the way, and a payload that
	// fails halfway never reaches it.
	buf := make([]byte, size)
	if err := readPart(src, buf); err != nil {
		return err
	}
	if err := expectEOF(src); err != nil {
		return err
	}
	sum := md5.Sum(buf)
	var opts minio.PutObjectOptions
	if exclusive {
		opts.SetMatchETagExcept("*")
	}
	_, err := r.core.PutObject(ctx, r.bucket, r.key(name), bytes.NewReader(buf), size,
		base64.StdEncoding.EncodeToString(sum[:]), "", opts)
	return r.translate(err)
}

// putMultipart uploads src in parts of r.partSize and completes the
// upload; on any failure it aborts the upload.
func (r *Relay) putMultipart(ctx context.Context, name string, src io.Reader, size int64) (err error) {
	key := r.key(name)
	id, err := r.core.NewMultipartUpload(ctx, r.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return r.translate(err)
	}
	defer func() {
		if err == nil {
			return
		}
		// The caller's context may be what failed: abort with one of
		// our own.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		if aerr := r.core.AbortMultipartUpload(actx, r.bucket, key, id); aerr != nil {
			r.log.Warn("s3: could not abort a failed multipart upload; Open removes it once it is stale",
				"relay", r.loc, "name", name, "err", aerr)
		}
	}()
	buf := make([]byte, r.partSize)
	var parts []minio.CompletePart
	for num, left := 1, size; left > 0; num++ {
		n := min(left, r.partSize)
		if err := readPart(src, buf[:n]); err != nil {
			return err
		}
		left -= n
		if left == 0 {
			if err := expectEOF(src); err != nil {
				return err
			}
		}
		sum := md5.Sum(buf[:n])
		part, err := r.core.PutObjectPart(ctx, r.bucket, key, id, num, bytes.NewReader(buf[:n]), n,
			minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum[:])})
		if err != nil {
			return r.translate(err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
	}
	if _, err := r.core.CompleteMultipartUpload(ctx, r.bucket, key, id, parts, minio.PutObjectOptions{}); err != nil {
		return r.translate(err)
	}
	return nil
}

// readPart fills buf from the payload.
func readPart(src io.Reader, buf []byte) error {
	if _, err := io.ReadFull(src, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return relay.Permanent(fmt.Errorf("reading the payload: %w", err))
	}
	return nil
}

// expectEOF checks that the payload has no bytes beyond its length
// (relay.CheckedReader reports them).
func expectEOF(src io.Reader) error {
	var b [1]byte
	if _, err := src.Read(b[:]); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// Delete implements relay.Relay. S3 answers success for a missing key.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	err := r.client.RemoveObject(ctx, r.bucket, r.key(name), minio.RemoveObjectOptions{})
	if err != nil && !isCode(err, "NoSuchKey") {
		return relay.WrapOp("delete", name, r.translate(err))
	}
	return nil
}

// Rename implements relay.Renamer as a server-side copy followed by a
// delete of the source. Readers of to see the old or the new object, but
// between the two steps the object exists under both names. ComposeObject
// copies objects larger than 5 GiB in parts.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	if err := relay.ValidName(from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", to, err)
	}
	_, err := r.client.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: r.bucket, Object: r.key(to)},
		minio.CopySrcOptions{Bucket: r.bucket, Object: r.key(from)})
	if err != nil {
		return relay.WrapOp("rename", from, r.translate(err))
	}
	if err := r.client.RemoveObject(ctx, r.bucket, r.key(from), minio.RemoveObjectOptions{}); err != nil {
		return relay.WrapOp("rename", from, r.translate(err))
	}
	return nil
}

// RemoveTemp implements relay.TempRemover: the backend's temporary objects
// are incomplete multipart uploads, which it aborts when they were started
// under dir before before.
func (r *Relay) RemoveTemp(ctx context.Context, dir string, before time.Time) (int, error) {
	if err := relay.ValidDir(dir); err != nil {
		return 0, relay.WrapOp("removetemp", dir, err)
	}
	p := r.prefix
	if dir != "" {
		p += dir + "/"
	}
	ups, err := r.incompleteUploads(ctx, p)
	if err != nil {
		return 0, relay.WrapOp("removetemp", dir, err)
	}
	n := 0
	for _, u := range ups {
		if !u.Initiated.Before(before) {
			continue
		}
		err := r.core.AbortMultipartUpload(ctx, r.bucket, u.Key, u.UploadID)
		if err != nil && !isCode(err, "NoSuchUpload") {
			return n, relay.WrapOp("removetemp", strings.TrimPrefix(u.Key, r.prefix), r.translate(err))
		}
		n++
	}
	return n, nil
}

// incompleteUploads lists the multipart uploads in progress under the key
// prefix p, page by page. (minio-go's ListIncompleteUploads also lists
// every upload's parts, which is not needed here.)
func (r *Relay) incompleteUploads(ctx context.Context, p string) ([]minio.ObjectMultipartInfo, error) {
	var out []minio.ObjectMultipartInfo
	keyMarker, idMarker := "", ""
	for {
		res, err := r.core.ListMultipartUploads(ctx, r.bucket, p, keyMarker, idMarker, "", 1000)
		if err != nil {
			return out, r.translate(err)
		}
		for _, u := range res.Uploads {
			if strings.HasPrefix(u.Key, p) {
				out = append(out, u)
			}
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
			return out, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}
