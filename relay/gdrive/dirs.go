package gdrive

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"google.golang.org/api/drive/v3"
	"google.golang.org/api/googleapi"
)

const folderMime = "application/vnd.google-apps.folder"

// errNoDir is returned (wrapped) when a directory of a name does not exist.
var errNoDir = fmt.Errorf("no such directory: %w", fs.ErrNotExist)

// quote renders s as a string literal of Drive's query language.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// inParents is the query term for "a child of any of ids".
func inParents(ids []string) string {
	terms := make([]string, len(ids))
	for i, id := range ids {
		terms[i] = quote(id) + " in parents"
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return "(" + strings.Join(terms, " or ") + ")"
}

// dirKey is the cache key of the relay directory rel ("" for the relay
// folder): the base folder ID and the folder names leading to it. No
// component holds a slash, so keys are unambiguous.
func (r *Relay) dirKey(rel string) string {
	parts := append([]string{r.baseID}, r.basePath...)
	if rel != "" {
		parts = append(parts, strings.Split(rel, "/")...)
	}
	return strings.Join(parts, "/")
}

// splitName returns the directory and last component of an object name.
func splitName(name string) (dir, base string) {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// list runs files.list for q over all pages, calling fn for each file.
func (r *Relay) list(ctx context.Context, q, fields string, fn func(*drive.File) error) error {
	pageToken := ""
	for {
		var fl *drive.FileList
		err := r.retry(ctx, func() error {
			call := r.svc.Files.List().Q(q).PageSize(1000).Fields(googleapi.Field("nextPageToken,files(" + fields + ")")).
				SupportsAllDrives(true).IncludeItemsFromAllDrives(true).Context(ctx)
			if r.driveID != "" {
				call = call.Corpora("drive").DriveId(r.driveID)
			}
			if pageToken != "" {
				call = call.PageToken(pageToken)
			}
			var err error
			fl, err = call.Do()
			return err
		})
		if err != nil {
			return classify(err)
		}
		for _, f := range fl.Files {
			if err := fn(f); err != nil {
				return err
			}
		}
		if fl.NextPageToken == "" {
			return nil
		}
		pageToken = fl.NextPageToken
	}
}

// lookupFolders returns the IDs of the folders called name in any of
// parents, canonical (oldest, then lowest ID) first.
func (r *Relay) lookupFolders(ctx context.Context, parents []string, name string) ([]string, error) {
	type folder struct {
		id      string
		created string
	}
	var found []folder
	q := inParents(parents) + " and name = " + quote(name) + " and mimeType = '" + folderMime + "' and trashed = false"
	err := r.list(ctx, q, "id,name,createdTime", func(f *drive.File) error {
		if f.Name == name { // Drive's name match may be looser than ours
			found = append(found, folder{f.Id, f.CreatedTime})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(found, func(a, b folder) int {
		if c := compareTimes(a.created, b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.id
	}
	return ids, nil
}

// compareTimes orders RFC 3339 times; unparsable ones sort first.
func compareTimes(a, b string) int {
	ta, _ := time.Parse(time.RFC3339Nano, a)
	tb, _ := time.Parse(time.RFC3339Nano, b)
	return ta.Compare(tb)
}

// folders returns the IDs of the relay directory rel, canonical first,
// creating missing folders if create is set. With fresh, every level is
// read from Drive instead of the cache. stale reports whether a level came
// from a cache entry older than refreshAfter, which a caller that found
// nothing may want to refresh. A missing directory yields errNoDir.
func (r *Relay) folders(ctx context.Context, rel string, create, fresh bool) (ids []string, stale bool, err error) {
	comps := slices.Clone(r.basePath)
	if rel != "" {
		comps = append(comps, strings.Split(rel, "/")...)
	}
	ids = []string{r.baseID}
	key := r.baseID
	for _, c := range comps {
		key += "/" + c
		if !fresh {
			r.mu.Lock()
			e, ok := r.dirs[key]
			r.mu.Unlock()
			if ok {
				ids = e.ids
				stale = stale || time.Since(e.checked) > refreshAfter
				continue
			}
		}
		found, err := r.lookupFolders(ctx, ids, c)
		if err != nil {
			return nil, false, err
		}
		if len(found) == 0 && create {
			found, err = r.mkdir(ctx, key, ids, c)
			if err != nil {
				return nil, false, err
			}
		}
		if len(found) == 0 {
			return nil, false, errNoDir
		}
		r.cacheDir(key, found)
		ids = found
	}
	return ids, stale, nil
}

func (r *Relay) cacheDir(key string, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dirs[key] = dirEntry{ids: ids, checked: time.Now()}
}

// forgetDir drops the cached IDs of the directory rel and of everything
// below it, after one of them turned out stale.
func (r *Relay) forgetDir(rel string) {
	key := r.dirKey(rel)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.dirs {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(r.dirs, k)
		}
	}
	for name := range r.files {
		if rel == "" || strings.HasPrefix(name, rel+"/") {
			delete(r.files, name)
		}
	}
}

// mkdir creates the folder name in the canonical parent, unless another
// goroutine or node has made one meanwhile, and returns the folders now
// called name there.
func (r *Relay) mkdir(ctx context.Context, key string, parents []string, name string) ([]string, error) {
	r.mkdirMu.Lock()
	defer r.mkdirMu.Unlock()
	r.mu.Lock()
	e, ok := r.dirs[key]
	r.mu.Unlock()
	if ok {
		return e.ids, nil
	}
	found, err := r.lookupFolders(ctx, parents, name)
	if err != nil || len(found) > 0 {
		return found, err
	}
	var f *drive.File
	err = r.retry(ctx, func() error {
		var err error
		f, err = r.svc.Files.Create(&drive.File{Name: name, MimeType: folderMime, Parents: parents[:1]}).
			Fields("id,createdTime").SupportsAllDrives(true).Context(ctx).Do()
		return err
	})
	if err != nil {
		return nil, classify(err)
	}
	r.log.Debug("gdrive: created folder", "key", key, "id", f.Id)
	// Another node may have created one at the same time: take both, so
	// that files that it puts into its own are found.
	found, err = r.lookupFolders(ctx, parents, name)
	if err != nil {
		return []string{f.Id}, nil
	}
	if !slices.Contains(found, f.Id) {
		found = append(found, f.Id) // a listing may lag behind a create
	}
	if len(found) > 1 {
		r.log.Warn("gdrive: duplicate folders, using them together", "key", key, "ids", found)
	}
	return found, nil
}
