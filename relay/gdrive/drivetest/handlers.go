package drivetest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	apiPrefix    = "/drive/v3/"
	uploadPrefix = "/upload/drive/v3/"
)

// serve routes one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/token" {
		s.count("token")
		s.serveToken(w, r)
		return
	}
	if !s.admit(w, r) {
		return
	}
	switch {
	case strings.HasPrefix(p, uploadPrefix):
		s.serveUpload(w, r, strings.TrimPrefix(p, uploadPrefix))
	case p == apiPrefix+"about":
		s.serveAbout(w, r)
	case p == apiPrefix+"files":
		switch r.Method {
		case http.MethodGet:
			s.serveList(w, r)
		case http.MethodPost:
			s.serveCreate(w, r)
		default:
			writeError(w, apiError{Code: 405, Reason: "methodNotAllowed", Message: "Method Not Allowed"})
		}
	case strings.HasPrefix(p, apiPrefix+"files/"):
		id := strings.TrimPrefix(p, apiPrefix+"files/")
		switch r.Method {
		case http.MethodGet:
			s.serveGet(w, r, id)
		case http.MethodPatch:
			s.serveUpdate(w, r, id)
		case http.MethodDelete:
			s.serveDelete(w, r, id)
		default:
			writeError(w, apiError{Code: 405, Reason: "methodNotAllowed", Message: "Method Not Allowed"})
		}
	default:
		writeError(w, apiError{Code: 404, Message: "Not Found: " + p})
	}
}

// admit counts the request and runs the hook, and answers it at once
// (false) when it is of no known kind, a fault is planted for it, or it is
// not authorized.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	kind := requestKind(r)
	s.count(kind)
	if kind == "" {
		drain(r)
		writeError(w, apiError{Code: 404, Reason: "notFound", Message: "Not Found: " + r.Method + " " + r.URL.Path})
		return false
	}
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(kind, r)
	}
	if e, ok := s.takeFault(r); ok {
		drain(r)
		writeError(w, e)
		return false
	}
	if e, ok := s.checkAuth(r); !ok {
		drain(r)
		writeError(w, e)
		return false
	}
	return true
}

// serveUpload serves the upload endpoint (rest: the path after its
// prefix): a new file, or an update, multipart, media or resumable.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, rest string) {
	q := r.URL.Query()
	var updateID string
	switch {
	case rest == "files":
	case strings.HasPrefix(rest, "files/") && !strings.Contains(rest[len("files/"):], "/"):
		updateID = rest[len("files/"):]
	default:
		writeError(w, apiError{Code: 404, Message: "Not Found: " + r.URL.Path})
		return
	}
	if id := q.Get("upload_id"); id != "" {
		s.serveSession(w, r, id)
		return
	}
	if (updateID == "" && r.Method != http.MethodPost) || (updateID != "" && r.Method != http.MethodPatch) {
		drain(r)
		writeError(w, apiError{Code: 405, Reason: "methodNotAllowed", Message: "Method Not Allowed"})
		return
	}
	switch q.Get("uploadType") {
	case "multipart":
		s.serveMultipart(w, r, updateID)
	case "media":
		s.serveMedia(w, r, updateID)
	case "resumable":
		s.serveInitiate(w, r, updateID)
	default:
		drain(r)
		writeError(w, badRequest("Invalid uploadType %q", q.Get("uploadType")))
	}
}

// requestKind names a request for Stats and for matching faults; "" is an
// unknown path.
func requestKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, uploadPrefix):
		if r.URL.Query().Get("upload_id") != "" {
			return "upload"
		}
		if strings.HasPrefix(p, uploadPrefix+"files/") {
			return "files.update"
		}
		return "files.create"
	case p == apiPrefix+"about":
		return "about.get"
	case p == apiPrefix+"files":
		if r.Method == http.MethodGet {
			return "files.list"
		}
		return "files.create"
	case strings.HasPrefix(p, apiPrefix+"files/"):
		switch r.Method {
		case http.MethodGet:
			if r.URL.Query().Get("alt") == "media" {
				return "files.get(media)"
			}
			return "files.get"
		case http.MethodPatch:
			return "files.update"
		case http.MethodDelete:
			return "files.delete"
		}
		return "files.other"
	}
	return ""
}

// RequestKind tells which API method a request calls, in the names that
// Stats uses, so that a Fault's Match can pick e.g. only "files.delete".
func RequestKind(r *http.Request) string { return requestKind(r) }

func (s *Server) count(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests[kind]++
}

func (s *Server) takeFault(r *http.Request) (apiError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Match != nil && !f.Match(r) {
			continue
		}
		f.Count--
		if f.Count <= 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		s.stats.Injected++
		return apiError{Code: f.Status, Reason: f.Reason}, true
	}
	return apiError{}, false
}

// drain reads what is left of a request body, so that an error answer does
// not reset a connection the client is still writing to.
func drain(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
}

// mask returns the fields mask of a request, or def when it has none.
func mask(r *http.Request, def fieldMask) (fieldMask, error) {
	f, ok := r.URL.Query()["fields"]
	if !ok {
		return def, nil
	}
	return parseFields(f[0])
}

func (s *Server) serveAbout(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.URL.Query()["fields"]; !ok {
		writeError(w, apiError{Code: 400, Reason: "required", Message: "The 'fields' parameter is required for this operation."})
		return
	}
	m, err := mask(r, nil)
	if err != nil {
		writeError(w, badRequest("Invalid field selection: %v", err))
		return
	}
	s.mu.Lock()
	used := s.usageLocked()
	quota := map[string]any{
		"usage":             strconv.FormatInt(used, 10),
		"usageInDrive":      strconv.FormatInt(used, 10),
		"usageInDriveTrash": "0",
	}
	if s.quota > 0 {
		quota["limit"] = strconv.FormatInt(s.quota, 10)
	}
	s.mu.Unlock()
	body := map[string]any{
		"kind":         "drive#about",
		"storageQuota": quota,
		"user":         map[string]any{"kind": "drive#user", "displayName": "Fake User", "emailAddress": "fake@example.com"},
	}
	writeJSON(w, 200, m.apply(body))
}

// pageKey orders listings: by creation, then ID, so that a page token
// (the last key returned) stays valid while files are added or removed.
func pageKey(f *file) string { return formatTime(f.created) + "|" + f.id }

func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m, err := mask(r, defaultListFields)
	if err != nil {
		writeError(w, badRequest("Invalid field selection: %v", err))
		return
	}
	size := 100
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, apiError{Code: 400, Reason: "invalid", Message: fmt.Sprintf("Invalid value '%s'. Values must be within the range: [1, 1000]", v)})
			return
		}
		size = n
	}
	after := ""
	if tok := q.Get("pageToken"); tok != "" {
		b, err := hex.DecodeString(tok)
		if err != nil {
			writeError(w, apiError{Code: 400, Reason: "invalid", Message: "Invalid Value: pageToken"})
			return
		}
		after = string(b)
	}
	s.mu.Lock()
	pred, err := parseQuery(q.Get("q"), s)
	if err != nil {
		s.mu.Unlock()
		writeError(w, apiError{Code: 400, Reason: "invalid", Message: "Invalid Value: q: " + err.Error()})
		return
	}
	var match []*file
	for _, f := range s.files {
		if f.id != s.rootID && pred(f) && pageKey(f) > after {
			match = append(match, f)
		}
	}
	sort.Slice(match, func(i, j int) bool { return pageKey(match[i]) < pageKey(match[j]) })
	body := map[string]any{"kind": "drive#fileList", "incompleteSearch": false}
	if len(match) > size {
		body["nextPageToken"] = hex.EncodeToString([]byte(pageKey(match[size-1])))
		match = match[:size]
	}
	files := make([]any, len(match))
	for i, f := range match {
		files[i] = f.json()
	}
	s.mu.Unlock()
	body["files"] = files
	writeJSON(w, 200, m.apply(body))
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	f, ok := s.files[s.resolveAliasLocked(id)]
	var data []byte
	var js map[string]any
	var mime string
	var mod time.Time
	if ok {
		data, js, mime, mod = f.data, f.json(), f.mimeType, f.modified
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, notFound(id))
		return
	}
	if r.URL.Query().Get("alt") == "media" {
		if mime == FolderMimeType || strings.HasPrefix(mime, "application/vnd.google-apps.") {
			writeError(w, apiError{Code: 403, Reason: "fileNotDownloadable", Message: "Only files with binary content can be downloaded."})
			return
		}
		if rng := r.Header.Get("Range"); rng != "" && len(data) == 0 {
			// http.ServeContent would answer 200 for an empty file; Drive
			// says no range of it can be satisfied.
			writeError(w, apiError{Code: 416, Reason: "requestedRangeNotSatisfiable", Message: "Request range not satisfiable"})
			return
		}
		w.Header().Set("Content-Type", mime)
		http.ServeContent(w, r, "", mod, bytes.NewReader(data))
		return
	}
	m, err := mask(r, defaultFileFields)
	if err != nil {
		writeError(w, badRequest("Invalid field selection: %v", err))
		return
	}
	writeJSON(w, 200, m.apply(js))
}

// metadata is the writable part of a file resource.
type metadata struct {
	Name         *string  `json:"name"`
	MimeType     *string  `json:"mimeType"`
	Parents      []string `json:"parents"`
	Trashed      *bool    `json:"trashed"`
	ModifiedTime *string  `json:"modifiedTime"`
}

func parseMetadata(b []byte) (metadata, error) {
	var md metadata
	if len(bytes.TrimSpace(b)) == 0 {
		return md, nil
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return md, fmt.Errorf("invalid JSON metadata: %v", err)
	}
	return md, nil
}

// createLocked stores a new file from md and data, checking parents and
// quota.
func (s *Server) createLocked(md metadata, data []byte) (*file, *apiError) {
	name := "Untitled"
	if md.Name != nil {
		name = *md.Name
	}
	mimeType := "application/octet-stream"
	if md.MimeType != nil && *md.MimeType != "" {
		mimeType = *md.MimeType
	}
	parents := md.Parents
	if len(parents) == 0 {
		parents = []string{s.rootID}
	}
	if len(parents) > 1 {
		return nil, &apiError{Code: 403, Reason: "cannotAddParent", Message: "Increasing the number of parents is not allowed."}
	}
	for i, p := range parents {
		p = s.resolveAliasLocked(p)
		pf, ok := s.files[p]
		if !ok || !pf.isFolder() || pf.trashed {
			e := notFound(p)
			return nil, &e
		}
		parents[i] = p
	}
	if mimeType == FolderMimeType && len(data) > 0 {
		return nil, &apiError{Code: 400, Reason: "badRequest", Message: "A folder cannot have content."}
	}
	if s.quota > 0 && s.usageLocked()+int64(len(data)) > s.quota {
		return nil, &apiError{Code: 403, Reason: "storageQuotaExceeded"}
	}
	now := s.nowLocked()
	f := &file{id: s.newIDLocked(), name: name, mimeType: mimeType, parents: parents, created: now, modified: now}
	f.setData(data)
	if md.ModifiedTime != nil {
		if t, err := time.Parse(time.RFC3339Nano, *md.ModifiedTime); err == nil {
			f.modified = t.UTC().Truncate(time.Millisecond)
		}
	}
	if md.Trashed != nil {
		f.trashed = *md.Trashed
	}
	s.files[f.id] = f
	return f, nil
}

// updateLocked applies md, parent changes and (if data is not nil) new
// content to the file id.
func (s *Server) updateLocked(id string, md metadata, add, remove []string, data []byte) (*file, *apiError) {
	f, ok := s.files[s.resolveAliasLocked(id)]
	if !ok {
		e := notFound(id)
		return nil, &e
	}
	if len(md.Parents) > 0 {
		return nil, &apiError{Code: 403, Reason: "parentsNotWritable", Message: "The parents field is not directly writable in update requests. Use the addParents and removeParents parameters instead."}
	}
	parents, aerr := s.newParentsLocked(f, add, remove)
	if aerr != nil {
		return nil, aerr
	}
	if data != nil {
		if f.isFolder() {
			return nil, &apiError{Code: 400, Reason: "badRequest", Message: "A folder cannot have content."}
		}
		if s.quota > 0 && s.usageLocked()-int64(len(f.data))+int64(len(data)) > s.quota {
			return nil, &apiError{Code: 403, Reason: "storageQuotaExceeded"}
		}
	}
	// Drive moves modifiedTime to now on any change (a rename included),
	// unless the request sets it.
	changed := f.applyMetadata(md) || data != nil || len(add) > 0 || len(remove) > 0
	f.parents = parents
	if data != nil {
		f.setData(data)
	}
	if md.ModifiedTime != nil {
		if t, err := time.Parse(time.RFC3339Nano, *md.ModifiedTime); err == nil {
			f.modified = t.UTC().Truncate(time.Millisecond)
		}
	} else if changed {
		f.modified = s.nowLocked()
	}
	return f, nil
}

// newParentsLocked returns f's parents with add added and remove removed;
// Drive refuses a file with more than one.
func (s *Server) newParentsLocked(f *file, add, remove []string) ([]string, *apiError) {
	parents := slices.Clone(f.parents)
	for _, p := range remove {
		p = s.resolveAliasLocked(p)
		parents = slices.DeleteFunc(parents, func(x string) bool { return x == p })
	}
	for _, p := range add {
		p = s.resolveAliasLocked(p)
		pf, ok := s.files[p]
		if !ok || !pf.isFolder() {
			e := notFound(p)
			return nil, &e
		}
		if !slices.Contains(parents, p) {
			parents = append(parents, p)
		}
	}
	if len(parents) > 1 {
		return nil, &apiError{Code: 403, Reason: "cannotAddParent", Message: "Increasing the number of parents is not allowed."}
	}
	return parents, nil
}

// applyMetadata sets f's name, type and trashed state from md, and says
// whether the name or type changed.
func (f *file) applyMetadata(md metadata) (changed bool) {
	if md.Name != nil && *md.Name != f.name {
		f.name = *md.Name
		changed = true
	}
	if md.MimeType != nil && *md.MimeType != "" && *md.MimeType != f.mimeType && !f.isFolder() {
		f.mimeType = *md.MimeType
		changed = true
	}
	if md.Trashed != nil {
		f.trashed = *md.Trashed
	}
	return changed
}

func splitIDs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// reply answers a created or updated file with the request's field mask.
func reply(w http.ResponseWriter, fields fieldMask, js map[string]any) {
	writeJSON(w, 200, fields.apply(js))
}

// readMetadataRequest reads the field mask and the JSON metadata body that
// create, update and resumable-initiate requests share. On a bad request it
// answers it and returns false.
func readMetadataRequest(w http.ResponseWriter, r *http.Request) (fieldMask, metadata, bool) {
	m, err := mask(r, defaultFileFields)
	if err != nil {
		drain(r)
		writeError(w, badRequest("Invalid field selection: %v", err))
		return m, metadata{}, false
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return m, metadata{}, false
	}
	md, err := parseMetadata(b)
	if err != nil {
		writeError(w, badRequest("%v", err))
		return m, metadata{}, false
	}
	return m, md, true
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	m, md, ok := readMetadataRequest(w, r)
	if !ok {
		return
	}
	s.finish(w, m, md, nil, nil, "", nil)
}

func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, id string) {
	m, md, ok := readMetadataRequest(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	f, e := s.updateLocked(id, md, splitIDs(q.Get("addParents")), splitIDs(q.Get("removeParents")), nil)
	var js map[string]any
	if f != nil {
		js = f.json()
	}
	s.mu.Unlock()
	if e != nil {
		writeError(w, *e)
		return
	}
	reply(w, m, js)
}

func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	id = s.resolveAliasLocked(id)
	_, ok := s.files[id]
	if ok && id == s.rootID {
		s.mu.Unlock()
		writeError(w, apiError{Code: 403, Reason: "cannotDeleteRoot", Message: "The root folder cannot be deleted."})
		return
	}
	if ok {
		s.deleteTreeLocked(id)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, notFound(id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteTreeLocked(id string) {
	delete(s.files, id)
	for cid, f := range s.files {
		if slices.Contains(f.parents, id) {
			if len(f.parents) == 1 {
				s.deleteTreeLocked(cid)
			} else {
				f.parents = slices.DeleteFunc(f.parents, func(p string) bool { return p == id })
			}
		}
	}
}

// readUpload reads an upload request's body, counting its bytes; base is
// how many content bytes the upload had received before this request. A
// pending cut that falls inside this request drops the connection: then
// ok is false and nothing must be written to w.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, base int64) (data []byte, ok bool) {
	cr := &countingReader{r: r.Body}
	defer func() { s.addUploadBytes(cr.n) }()
	s.mu.Lock()
	cut := s.cutAfter
	s.mu.Unlock()
	var buf bytes.Buffer
	if cut >= base {
		_, err := io.CopyN(&buf, cr, cut-base)
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), true // the body ends before the cut
		}
		if err != nil {
			return nil, false // the client went away
		}
		var one [1]byte
		if n, _ := io.ReadFull(cr, one[:]); n == 0 {
			return buf.Bytes(), true // the body ends right at the cut
		}
		s.mu.Lock()
		claimed := s.cutAfter == cut
		if claimed {
			s.cutAfter = -1
		}
		s.mu.Unlock()
		if claimed {
			// Count before the client can notice the reset and ask.
			s.addUploadBytes(cr.n)
			cr.n = 0
			resetConnection(w)
			return nil, false
		}
		buf.WriteByte(one[0])
	}
	if _, err := io.Copy(&buf, cr); err != nil {
		return nil, false // the client went away
	}
	return buf.Bytes(), true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (s *Server) addUploadBytes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.UploadBytes += n
}

// resetConnection drops the client's connection with a TCP reset, as a
// network failure in the middle of an upload would.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, updateID string) {
	m, err := mask(r, defaultFileFields)
	if err != nil {
		drain(r)
		writeError(w, badRequest("Invalid field selection: %v", err))
		return
	}
	data, ok := s.readUpload(w, r, 0)
	if !ok {
		return
	}
	if data == nil {
		data = []byte{}
	}
	s.finish(w, m, metadata{}, nil, nil, updateID, data)
}

// finish stores a completed upload and answers it.
func (s *Server) finish(w http.ResponseWriter, m fieldMask, md metadata, add, remove []string, updateID string, data []byte) {
	s.mu.Lock()
	var f *file
	var e *apiError
	if updateID != "" {
		f, e = s.updateLocked(updateID, md, add, remove, data)
	} else {
		f, e = s.createLocked(md, data)
	}
	var js map[string]any
	if f != nil {
		js = f.json()
	}
	s.mu.Unlock()
	if e != nil {
		writeError(w, *e)
		return
	}
	reply(w, m, js)
}

func (s *Server) serveMultipart(w http.ResponseWriter, r *http.Request, updateID string) {
	m, err := mask(r, defaultFileFields)
	if err != nil {
		drain(r)
		writeError(w, badRequest("Invalid field selection: %v", err))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		drain(r)
		writeError(w, badRequest("Multipart upload needs a multipart/related Content-Type with a boundary"))
		return
	}
	body, ok := s.readUpload(w, r, 0)
	if !ok {
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, badRequest("Malformed multipart body: %v", err))
			return
		}
		b, err := io.ReadAll(p)
		if err != nil {
			writeError(w, badRequest("Malformed multipart body: %v", err))
			return
		}
		parts = append(parts, b)
	}
	if len(parts) != 2 {
		writeError(w, badRequest("Multipart upload needs exactly two parts (metadata and media), got %d", len(parts)))
		return
	}
	md, err := parseMetadata(parts[0])
	if err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	q := r.URL.Query()
	s.finish(w, m, md, splitIDs(q.Get("addParents")), splitIDs(q.Get("removeParents")), updateID, parts[1])
}

// session is a resumable upload in progress.
type session struct {
	id       string
	md       metadata
	add      []string
	remove   []string
	updateID string
	fields   fieldMask
	data     []byte
	declared int64 // -1: unknown
	done     bool
	result   map[string]any
}

// PendingUploads is the number of resumable sessions not yet completed.
func (s *Server) PendingUploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, se := range s.sessions {
		if !se.done {
			n++
		}
	}
	return n
}

func (s *Server) serveInitiate(w http.ResponseWriter, r *http.Request, updateID string) {
	m, md, ok := readMetadataRequest(w, r)
	if !ok {
		return
	}
	declared := int64(-1)
	if v := r.Header.Get("X-Upload-Content-Length"); v != "" {
		var err error
		declared, err = strconv.ParseInt(v, 10, 64)
		if err != nil || declared < 0 {
			writeError(w, badRequest("Invalid X-Upload-Content-Length %q", v))
			return
		}
	}
	q := r.URL.Query()
	s.mu.Lock()
	if updateID != "" {
		if _, ok := s.files[s.resolveAliasLocked(updateID)]; !ok {
			s.mu.Unlock()
			writeError(w, notFound(updateID))
			return
		}
	} else {
		for _, p := range md.Parents {
			if pf, ok := s.files[s.resolveAliasLocked(p)]; !ok || !pf.isFolder() {
				s.mu.Unlock()
				writeError(w, notFound(p))
				return
			}
		}
	}
	if s.quota > 0 && declared > 0 && s.usageLocked()+declared > s.quota {
		s.mu.Unlock()
		writeError(w, apiError{Code: 403, Reason: "storageQuotaExceeded"})
		return
	}
	se := &session{
		id: randomID(24), md: md, updateID: updateID, fields: m, declared: declared,
		add: splitIDs(q.Get("addParents")), remove: splitIDs(q.Get("removeParents")),
	}
	s.sessions[se.id] = se
	s.mu.Unlock()
	loc := uploadPrefix + "files"
	if updateID != "" {
		loc += "/" + url.PathEscape(updateID)
	}
	w.Header().Set("Location", s.URL+loc+"?uploadType=resumable&upload_id="+se.id)
	w.Header().Set("X-GUploader-UploadID", se.id)
	w.WriteHeader(200)
}

// parseContentRange parses "bytes A-B/N", "bytes A-B/*", "bytes */N" and
// "bytes */*"; absent values are -1.
func parseContentRange(v string) (first, last, total int64, err error) {
	first, last, total = -1, -1, -1
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q does not start with \"bytes \"", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q has no total", v)
	}
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, 0, fmt.Errorf("Content-Range %q: bad total", v)
		}
	}
	if rng != "*" {
		a, b, ok := strings.Cut(rng, "-")
		if !ok {
			return 0, 0, 0, fmt.Errorf("Content-Range %q: bad range", v)
		}
		first, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			last, err = strconv.ParseInt(b, 10, 64)
		}
		if err != nil || first < 0 || last < first || (total >= 0 && last >= total) {
			return 0, 0, 0, fmt.Errorf("Content-Range %q: bad range", v)
		}
	}
	return first, last, total, nil
}

// incomplete answers "308 Resume Incomplete", or its stand-in for clients
// that asked for no 308 (the Go client does).
func incomplete(w http.ResponseWriter, r *http.Request, received int64) {
	if received > 0 {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", received-1))
	}
	w.Header().Set("Content-Length", "0")
	if strings.EqualFold(r.Header.Get("X-GUploader-No-308"), "yes") {
		w.Header().Set("X-Http-Status-Code-Override", "308")
		w.WriteHeader(200)
		return
	}
	w.WriteHeader(308)
}

func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		drain(r)
		writeError(w, apiError{Code: 405, Reason: "methodNotAllowed", Message: "Method Not Allowed"})
		return
	}
	s.mu.Lock()
	se, ok := s.sessions[id]
	var received int64
	var result map[string]any
	if ok {
		received = int64(len(se.data))
		result = se.result
	}
	s.mu.Unlock()
	if !ok {
		drain(r)
		writeError(w, apiError{Code: 404, Reason: "notFound", Message: "No upload session " + id})
		return
	}
	if result != nil {
		drain(r) // a completed upload answers its file again
		writeJSON(w, 200, result)
		return
	}
	first, last, total := int64(-1), int64(-1), int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		var err error
		first, last, total, err = parseContentRange(cr)
		if err != nil {
			drain(r)
			writeError(w, badRequest("%v", err))
			return
		}
	} else {
		// No Content-Range: the body is the whole content.
		first = 0
		total = r.ContentLength
		if total > 0 {
			last = total - 1
		} else {
			first = -1
		}
	}
	var chunk []byte
	if first >= 0 {
		if first > received {
			drain(r)
			writeError(w, badRequest("Invalid request. According to the Content-Range header, the upload offset is %d byte(s), which exceeds already uploaded size of %d byte(s).", first, received))
			return
		}
		data, ok := s.readUpload(w, r, first)
		if !ok {
			return
		}
		if int64(len(data)) != last-first+1 {
			writeError(w, badRequest("Content-Range %d-%d announces %d bytes, the body has %d", first, last, last-first+1, len(data)))
			return
		}
		if skip := received - first; skip < int64(len(data)) {
			chunk = data[skip:] // bytes it already has are skipped
		}
	} else {
		drain(r)
	}
	s.mu.Lock()
	if int64(len(se.data)) != received {
		// Another request for the same session raced this one.
		s.mu.Unlock()
		writeError(w, apiError{Code: 409, Reason: "conflict", Message: "Concurrent requests for one upload session"})
		return
	}
	if s.quota > 0 && s.usageLocked()+received+int64(len(chunk)) > s.quota {
		delete(s.sessions, id)
		s.mu.Unlock()
		writeError(w, apiError{Code: 403, Reason: "storageQuotaExceeded"})
		return
	}
	se.data = append(se.data, chunk...)
	n := int64(len(se.data))
	if total < 0 || n < total {
		s.mu.Unlock()
		incomplete(w, r, n)
		return
	}
	if n > total {
		s.mu.Unlock()
		writeError(w, badRequest("Upload has %d bytes, more than the declared total %d", n, total))
		return
	}
	var f *file
	var e *apiError
	if se.updateID != "" {
		f, e = s.updateLocked(se.updateID, se.md, se.add, se.remove, se.data)
	} else {
		f, e = s.createLocked(se.md, se.data)
	}
	if e != nil {
		delete(s.sessions, id)
		s.mu.Unlock()
		writeError(w, *e)
		return
	}
	se.done = true
	se.data = nil
	se.result = se.fields.apply(f.json()).(map[string]any)
	res := se.result
	s.mu.Unlock()
	writeJSON(w, 200, res)
}
