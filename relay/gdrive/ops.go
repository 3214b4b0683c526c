package gdrive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/api/drive/v3"
	"google.golang.org/api/googleapi"

	"github.com/escalefs/escalefs/relay"
)

// fileFields is the partial response for a file's metadata.
const fileFields = "id,name,size,modifiedTime,mimeType,parents,trashed"

const octetStream = "application/octet-stream"

// isBlob reports whether a file of this MIME type holds bytes that
// alt=media returns: Google Docs, shortcuts and folders do not.
func isBlob(mimeType string) bool {
	return !strings.HasPrefix(mimeType, "application/vnd.google-apps.")
}

// compareFiles orders the files of one name best first: the newest
// modifiedTime, then the lowest ID, so every node picks the same one.
func compareFiles(a, b *drive.File) int {
	if c := compareTimes(b.ModifiedTime, a.ModifiedTime); c != 0 {
		return c
	}
	return strings.Compare(a.Id, b.Id)
}

func info(name string, f *drive.File) relay.ObjectInfo {
	t, _ := time.Parse(time.RFC3339Nano, f.ModifiedTime)
	return relay.ObjectInfo{Name: name, Size: f.Size, ModTime: t}
}

// freshCtx is for cleanup that must run even when ctx was cancelled (a
// cancelled Put must still remove what it created), bounded by the timeout.
func (r *Relay) freshCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
}

func (r *Relay) cachedFile(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[name]
}

func (r *Relay) cacheFile(name, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.files) >= maxCachedFiles {
		clear(r.files)
	}
	r.files[name] = id
}

func (r *Relay) forgetFile(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.files, name)
}

// cachedDirHas reports whether the cached folders of dir include one of
// parents; false when dir is not cached.
func (r *Relay) cachedDirHas(dir string, parents []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.dirs[r.dirKey(dir)]
	if !ok {
		return false
	}
	for _, p := range parents {
		if slices.Contains(e.ids, p) {
			return true
		}
	}
	return false
}

// getMeta reads a file's metadata by ID.
func (r *Relay) getMeta(ctx context.Context, id string) (*drive.File, error) {
	var f *drive.File
	err := r.retry(ctx, func() error {
		var err error
		f, err = r.svc.Files.Get(id).Fields(fileFields).SupportsAllDrives(true).Context(ctx).Do()
		return err
	})
	return f, classify(err)
}

// lookupFiles returns the blob files called name in any of dirIDs, best
// first.
func (r *Relay) lookupFiles(ctx context.Context, dirIDs []string, name string) ([]*drive.File, error) {
	var out []*drive.File
	q := inParents(dirIDs) + " and name = " + quote(name) + " and trashed = false and mimeType != '" + folderMime + "'"
	err := r.list(ctx, q, fileFields, func(f *drive.File) error {
		if f.Name == name && isBlob(f.MimeType) {
			out = append(out, f)
		}
		return nil
	})
	slices.SortFunc(out, compareFiles)
	return out, err
}

// resolve finds the file that the object name reads from: the best of
// the files of that name in its directory. Every read lists them, rather
// than trusting a cached ID, so that all nodes pick the same one even
// while duplicates exist. The cached ID only stands in when the listing
// shows nothing, since Drive's listings may lag behind this node's own
// puts.
func (r *Relay) resolve(ctx context.Context, name string) (*drive.File, error) {
	dir, base := splitName(name)
	for fresh := false; ; fresh = true {
		ids, stale, err := r.folders(ctx, dir, false, fresh)
		if errors.Is(err, errNoDir) && stale && !fresh {
			continue
		}
		if err != nil {
			return nil, err
		}
		files, err := r.lookupFiles(ctx, ids, base)
		if err != nil {
			return nil, err
		}
		if len(files) > 0 {
			r.cacheFile(name, files[0].Id)
			return files[0], nil
		}
		if !fresh {
			f, err := r.cachedStill(ctx, name)
			if f != nil || err != nil {
				return f, err
			}
		}
		if fresh || !stale {
			return nil, fs.ErrNotExist
		}
	}
}

// cachedStill returns the file last seen for name if it still has that
// name and place, and forgets it otherwise.
func (r *Relay) cachedStill(ctx context.Context, name string) (*drive.File, error) {
	id := r.cachedFile(name)
	if id == "" {
		return nil, nil
	}
	dir, base := splitName(name)
	f, err := r.getMeta(ctx, id)
	switch {
	case err == nil && f.Name == base && !f.Trashed && r.cachedDirHas(dir, f.Parents):
		return f, nil
	case err != nil && !isNotExist(err):
		return nil, err
	}
	r.forgetFile(name) // deleted, renamed, moved or trashed meanwhile
	return nil, nil
}

// Stat implements relay.Relay.
func (r *Relay) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	if err := relay.ValidName(name); err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	f, err := r.resolve(ctx, name)
	if err != nil {
		return relay.ObjectInfo{}, relay.WrapOp("stat", name, err)
	}
	return info(name, f), nil
}

// Get implements relay.Relay with a ranged files.get?alt=media.
func (r *Relay) Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("get", name, err)
	}
	offset = max(offset, 0)
	for try := 0; ; try++ {
		f, err := r.resolve(ctx, name)
		if err != nil {
			return relay.WrapOp("get", name, err)
		}
		if offset >= f.Size || length == 0 {
			return fn(bytes.NewReader(nil))
		}
		last := f.Size - 1
		if length > 0 && offset+length-1 < last {
			last = offset + length - 1
		}
		resp, err := r.download(ctx, f.Id, offset, last)
		if isNotExist(err) && try == 0 {
			r.forgetFile(name) // deleted since it was looked up: look again
			continue
		}
		if err != nil {
			return relay.WrapOp("get", name, err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if resp.StatusCode == http.StatusOK && offset > 0 {
			// The server ignored the range; skip to the offset.
			if _, err := io.CopyN(io.Discard, body, offset); err != nil {
				return relay.WrapOp("get", name, relay.ClassifyNetError(err))
			}
		}
		return fn(&bodyReader{r: io.LimitReader(body, last-offset+1), name: name})
	}
}

// download opens bytes first..last of a file.
func (r *Relay) download(ctx context.Context, id string, first, last int64) (*http.Response, error) {
	var resp *http.Response
	err := r.retry(ctx, func() error {
		call := r.svc.Files.Get(id).SupportsAllDrives(true).Context(ctx)
		call.Header().Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
		var err error
		resp, err = call.Download()
		return err
	})
	return resp, classify(err)
}

// bodyReader classifies the network errors of a download body.
type bodyReader struct {
	r    io.Reader
	name string
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = relay.WrapOp("get", b.name, relay.ClassifyNetError(err))
	}
	return n, err
}

// errRecorder remembers the first error other than EOF of a reader, so
// that a payload that failed while the client buffered it is noticed
// before anything is sent.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// upload creates the file name in parent with the payload's content:
// multipart below the chunk size, resumable in chunks above it. sent tells
// whether a request may have reached Drive, and so whether a file may have
// been created although err is set; tries counts the create requests.
func (r *Relay) upload(ctx context.Context, parent, name string, p relay.Payload) (f *drive.File, sent bool, tries int, err error) {
	err = r.retry(ctx, func() error {
		if tries > 0 {
			if err := p.Rewind(); err != nil {
				return fmt.Errorf("rewinding the payload: %w", err)
			}
		}
		tries++
		rec := &errRecorder{r: relay.CheckedReader(p)}
		call := r.svc.Files.Create(&drive.File{Name: name, Parents: []string{parent}, MimeType: octetStream}).
			Media(rec, googleapi.ChunkSize(r.chunkSize), googleapi.ContentType(octetStream)).
			Fields(fileFields).SupportsAllDrives(true).Context(ctx)
		// Media has read the first chunk already.
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.err != nil {
			return rec.err
		}
		sent = true
		var err error
		f, err = call.Do()
		return err
	})
	return f, sent, tries, err
}

// Put implements relay.Relay: the content is uploaded under a temporary
// name, renamed to name, and then the older files of that name are
// deleted. See the package doc for why readers never see partial content.
func (r *Relay) Put(ctx context.Context, name string, p relay.Payload) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("put", name, err)
	}
	return relay.WrapOp("put", name, r.put(ctx, name, p))
}

func (r *Relay) put(ctx context.Context, name string, p relay.Payload) error {
	dir, base := splitName(name)
	tmp := relay.TempName(base)
	for try := 0; ; try++ {
		ids, _, err := r.folders(ctx, dir, true, try > 0)
		if err != nil {
			return err
		}
		if try > 0 {
			if err := p.Rewind(); err != nil {
				return fmt.Errorf("rewinding the payload: %w", err)
			}
		}
		f, sent, tries, err := r.upload(ctx, ids[0], tmp, p)
		if err != nil {
			if sent {
				// The upload may have completed with its answer lost.
				r.removeTemp(ctx, ids[0], tmp, "")
			}
			err = classify(err)
			if isNotExist(err) && try == 0 {
				// The parent folder went away since it was cached.
				r.forgetDir(dir)
				continue
			}
			return err
		}
		if tries > 1 {
			// An earlier try may have created the file too.
			r.removeTemp(ctx, ids[0], tmp, f.Id)
		}
		var renamed *drive.File
		err = r.retry(ctx, func() error {
			var err error
			renamed, err = r.svc.Files.Update(f.Id, &drive.File{Name: base}).Fields(fileFields).
				SupportsAllDrives(true).Context(ctx).Do()
			return err
		})
		if err != nil {
			cctx, cancel := r.freshCtx(ctx)
			if derr := r.deleteFile(cctx, f.Id); derr != nil {
				r.log.Warn("gdrive: could not delete the temporary file of a failed put", "name", name, "id", f.Id, "err", derr)
			}
			cancel()
			return classify(err)
		}
		r.settle(ctx, name, ids, renamed)
		return nil
	}
}

// settle deletes the files of name that rank below the best one, after
// mine was renamed to it. If another put of the same name ranks higher,
// mine goes too: all puts agree on the best file, so exactly it survives.
// Readers already see the new content, so failures are only logged: a
// later put or delete removes the leftovers, which no reader picks.
func (r *Relay) settle(ctx context.Context, name string, dirIDs []string, mine *drive.File) {
	cctx, cancel := r.freshCtx(ctx)
	defer cancel()
	_, base := splitName(name)
	files, err := r.lookupFiles(cctx, dirIDs, base)
	if err != nil {
		r.log.Warn("gdrive: could not look for older versions after a put", "name", name, "err", err)
		r.cacheFile(name, mine.Id)
		return
	}
	if !slices.ContainsFunc(files, func(f *drive.File) bool { return f.Id == mine.Id }) {
		files = append(files, mine) // the listing lags behind the rename
		slices.SortFunc(files, compareFiles)
	}
	for _, f := range files[1:] {
		if err := r.deleteFile(cctx, f.Id); err != nil {
			r.log.Warn("gdrive: could not delete an older version", "name", name, "id", f.Id, "err", err)
		}
	}
	r.cacheFile(name, files[0].Id)
}

// removeTemp deletes the files called tmp in parent except keep, with a
// fresh context: it cleans up after a failed or cancelled put.
func (r *Relay) removeTemp(ctx context.Context, parent, tmp, keep string) {
	cctx, cancel := r.freshCtx(ctx)
	defer cancel()
	files, err := r.lookupFiles(cctx, []string{parent}, tmp)
	if err != nil {
		r.log.Warn("gdrive: could not look for temporary files", "name", tmp, "err", err)
		return
	}
	for _, f := range files {
		if f.Id == keep {
			continue
		}
		if err := r.deleteFile(cctx, f.Id); err != nil {
			r.log.Warn("gdrive: could not delete a temporary file", "name", tmp, "id", f.Id, "err", err)
		}
	}
}

// deleteFile deletes a file for good; one that is gone already is fine.
// Where the account may not delete it (in My Drive only the owner may),
// it is moved to the trash, which takes it out of the relay as well.
func (r *Relay) deleteFile(ctx context.Context, id string) error {
	err := classify(r.retry(ctx, func() error {
		return r.svc.Files.Delete(id).SupportsAllDrives(true).Context(ctx).Do()
	}))
	switch {
	case err == nil || isNotExist(err):
		return nil
	case errors.Is(err, fs.ErrPermission) && !errors.Is(err, relay.ErrAuth):
		terr := classify(r.retry(ctx, func() error {
			_, err := r.svc.Files.Update(id, &drive.File{Trashed: true}).Fields("id").
				SupportsAllDrives(true).Context(ctx).Do()
			return err
		}))
		if terr == nil || isNotExist(terr) {
			return nil
		}
		return fmt.Errorf("%w; moving it to the trash failed too: %v", err, terr)
	}
	return err
}

// Delete implements relay.Relay: every file of the name goes.
func (r *Relay) Delete(ctx context.Context, name string) error {
	if err := relay.ValidName(name); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("delete", name, err)
	}
	dir, base := splitName(name)
	for fresh := false; ; fresh = true {
		ids, stale, err := r.folders(ctx, dir, false, fresh)
		if errors.Is(err, errNoDir) {
			if stale && !fresh {
				continue
			}
			r.forgetFile(name)
			return nil
		}
		if err != nil {
			return relay.WrapOp("delete", name, err)
		}
		files, err := r.lookupFiles(ctx, ids, base)
		if err != nil {
			return relay.WrapOp("delete", name, err)
		}
		if len(files) == 0 {
			// A listing may lag behind this node's own put.
			f, err := r.cachedStill(ctx, name)
			if err != nil {
				return relay.WrapOp("delete", name, err)
			}
			if f != nil {
				files = append(files, f)
			}
		}
		if len(files) == 0 && stale && !fresh {
			continue
		}
		r.forgetFile(name)
		for _, f := range files {
			if err := r.deleteFile(ctx, f.Id); err != nil {
				return relay.WrapOp("delete", name, err)
			}
		}
		return nil
	}
}

// Rename implements relay.Renamer: the file moves and takes the new name
// in one files.update, then the files it replaces are deleted, and so are
// older duplicates of the source, which would otherwise show through.
func (r *Relay) Rename(ctx context.Context, from, to string) error {
	if err := relay.ValidName(from); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := relay.ValidName(to); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if err := ctx.Err(); err != nil {
		return relay.WrapOp("rename", from, err)
	}
	if from == to {
		_, err := r.resolve(ctx, from)
		return relay.WrapOp("rename", from, err)
	}
	src, err := r.resolve(ctx, from)
	if err != nil {
		return relay.WrapOp("rename", from, err)
	}
	toDir, toBase := splitName(to)
	ids, _, err := r.folders(ctx, toDir, true, false)
	if err != nil {
		return relay.WrapOp("rename", from, err)
	}
	var moved *drive.File
	err = classify(r.retry(ctx, func() error {
		call := r.svc.Files.Update(src.Id, &drive.File{Name: toBase}).Fields(fileFields).
			SupportsAllDrives(true).Context(ctx)
		if !slices.ContainsFunc(src.Parents, func(p string) bool { return slices.Contains(ids, p) }) {
			call = call.AddParents(ids[0]).RemoveParents(strings.Join(src.Parents, ","))
		}
		var err error
		moved, err = call.Do()
		return err
	}))
	r.forgetFile(from)
	if err != nil {
		return relay.WrapOp("rename", from, err)
	}
	cctx, cancel := r.freshCtx(ctx)
	defer cancel()
	// The files that the moved one replaces. Were one left, readers would
	// still pick the moved file, which the update made the newest.
	if olds, err := r.lookupFiles(cctx, ids, toBase); err != nil {
		r.log.Warn("gdrive: could not look for replaced files after a rename", "to", to, "err", err)
	} else {
		for _, f := range olds {
			if f.Id != moved.Id {
				if err := r.deleteFile(cctx, f.Id); err != nil {
					r.log.Warn("gdrive: could not delete a replaced file", "to", to, "id", f.Id, "err", err)
				}
			}
		}
	}
	r.cacheFile(to, moved.Id)
	// Older duplicates of the source would become visible under its name.
	fromDir, fromBase := splitName(from)
	fids, _, err := r.folders(cctx, fromDir, false, false)
	if err != nil && !errors.Is(err, errNoDir) {
		return relay.WrapOp("rename", from, err)
	}
	if err == nil {
		dups, err := r.lookupFiles(cctx, fids, fromBase)
		if err != nil {
			return relay.WrapOp("rename", from, err)
		}
		for _, f := range dups {
			if f.Id == moved.Id {
				continue
			}
			if err := r.deleteFile(cctx, f.Id); err != nil {
				return relay.WrapOp("rename", from, err)
			}
		}
	}
	return nil
}

// List implements relay.Relay, one files.list per directory (and page).
func (r *Relay) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if err := relay.ValidDir(dir); err != nil {
		return relay.WrapOp("list", dir, err)
	}
	// The starting folders are read afresh: listing is costly anyway, and
	// it should not miss a duplicate folder made by another node.
	ids, _, err := r.folders(ctx, dir, false, true)
	if errors.Is(err, errNoDir) {
		return nil
	}
	if err != nil {
		return relay.WrapOp("list", dir, err)
	}
	type pending struct {
		prefix string
		ids    []string
	}
	stack := []pending{{dir, ids}}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		best := map[string]*drive.File{}
		type folder struct{ id, created string }
		subdirs := map[string][]folder{}
		var staleTemps []string
		err := r.list(ctx, inParents(d.ids)+" and trashed = false", "id,name,mimeType,size,modifiedTime,createdTime",
			func(f *drive.File) error {
				switch {
				case f.MimeType == folderMime:
					subdirs[f.Name] = append(subdirs[f.Name], folder{f.Id, f.CreatedTime})
				case relay.IsTempName(f.Name):
					if t, err := time.Parse(time.RFC3339Nano, f.ModifiedTime); err == nil && time.Since(t) > staleTempAge {
						staleTemps = append(staleTemps, f.Id)
					}
				case !isBlob(f.MimeType) || strings.Contains(f.Name, "/") || relay.ValidName(f.Name) != nil:
					// Not an object this relay can have written.
				default:
					if b, ok := best[f.Name]; !ok || compareFiles(f, b) < 0 {
						best[f.Name] = f
					}
				}
				return nil
			})
		if err != nil {
			return relay.WrapOp("list", dir, err)
		}
		names := make([]string, 0, len(subdirs))
		for n := range subdirs {
			if relay.ValidName(n) == nil && !strings.Contains(n, "/") {
				names = append(names, n)
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(names))) // popped in name order
		for _, n := range names {
			dups := subdirs[n]
			slices.SortFunc(dups, func(a, b folder) int {
				if c := compareTimes(a.created, b.created); c != 0 {
					return c
				}
				return strings.Compare(a.id, b.id)
			})
			fids := make([]string, len(dups))
			for i, f := range dups {
				fids[i] = f.id
			}
			sub := path.Join(d.prefix, n)
			r.cacheDir(r.dirKey(sub), fids)
			stack = append(stack, pending{sub, fids})
		}
		files := make([]string, 0, len(best))
		for n := range best {
			files = append(files, n)
		}
		sort.Strings(files)
		for _, n := range files {
			full := path.Join(d.prefix, n)
			r.cacheFile(full, best[n].Id)
			if err := fn(info(full, best[n])); err != nil {
				return err
			}
		}
		if len(staleTemps) > 0 {
			r.removeStaleTemps(ctx, staleTemps)
		}
	}
	return nil
}

// removeStaleTemps deletes temporary files that a crashed put left.
func (r *Relay) removeStaleTemps(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := r.deleteFile(ctx, id); err != nil {
			r.log.Warn("gdrive: could not delete a stale temporary file", "id", id, "err", err)
			return
		}
		r.log.Info("gdrive: deleted a temporary file left by an interrupted put", "id", id)
	}
}

// Quota implements relay.Quotaer with about.get.
func (r *Relay) Quota(ctx context.Context) (relay.Usage, error) {
	var a *drive.About
	err := r.retry(ctx, func() error {
		var err error
		a, err = r.svc.About.Get().Fields("storageQuota(limit,usage)").Context(ctx).Do()
		return err
	})
	if err != nil {
		return relay.Usage{}, relay.WrapOp("quota", "", classify(err))
	}
	u := relay.Usage{Used: -1, Total: -1}
	if q := a.StorageQuota; q != nil {
		u.Used = q.Usage
		if q.Limit > 0 {
			u.Total = q.Limit
		}
	}
	return u, nil
}
