// Package drivetest is an in-process fake of the Google Drive v3 REST API,
// for testing code that uses google.golang.org/api/drive/v3 without a Google
// account.
//
// It implements what a blob-store client calls, with Drive's own rules
// rather than a file system's: files live in folders by parent ID, several
// files may share one name in one folder, uploads become visible only when
// complete, partial responses follow the fields parameter (and its
// defaults), and errors come in Drive's JSON shape with Drive's reasons.
//
//   - about.get (storageQuota)
//   - files.list with q ('<id>' in parents, name/mimeType/trashed
//     comparisons, and/or/not, parentheses), pageSize and pageToken
//   - files.get (metadata, and alt=media with Range)
//   - files.create: metadata only, uploadType=media, multipart, and
//     resumable sessions with chunked PUT or POST requests, Content-Range,
//     "308 resume incomplete" answers (or 200 with
//     X-Http-Status-Code-Override: 308 when the client sends
//     X-GUploader-No-308, as the Go client does) and status queries
//     (Content-Range: bytes */N or bytes */*)
//   - files.update: metadata (name, trashed, addParents, removeParents) and
//     media in the same upload types
//   - files.delete (a folder takes its descendants with it)
//   - an OAuth 2.0 token endpoint for service-account JWTs and refresh
//     tokens, whose access tokens the API checks once RequireAuth is on
//
// Failures are injected with Inject and FailNext (e.g. 403
// rateLimitExceeded, 429, 500), CutUploadAfter (the connection drops in the
// middle of an upload) and SetQuota (uploads over the limit get 403
// storageQuotaExceeded).
//
// Point a client at it with the options of Server.ClientOptions, which set
// the endpoint to URL+"/drive/v3/"; the client derives upload URLs
// ("/upload/drive/v3/...") from the same host.
package drivetest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/option"
)

// FolderMimeType is the MIME type Drive gives folders.
const FolderMimeType = "application/vnd.google-apps.folder"

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:1234.
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	files    map[string]*file
	rootID   string
	lastTime time.Time
	sessions map[string]*session
	faults   []*Fault
	cutAfter int64 // -1: no cut pending
	quota    int64 // 0: unlimited
	stats    Stats
	auth     authState
	hook     func(kind string, r *http.Request)
}

// file is a stored file or folder.
type file struct {
	id       string
	name     string
	mimeType string
	parents  []string
	data     []byte // never modified in place, so readers may keep a reference
	md5      string
	created  time.Time
	modified time.Time
	trashed  bool
}

// setData replaces the content (never in place).
func (f *file) setData(b []byte) {
	f.data = b
	sum := md5.Sum(b)
	f.md5 = hex.EncodeToString(sum[:])
}

func (f *file) isFolder() bool { return f.mimeType == FolderMimeType }

// Stats counts what the server has been asked.
type Stats struct {
	// Requests counts API requests by method: "files.list", "files.get",
	// "files.get(media)", "files.create", "files.update", "files.delete",
	// "about.get", "upload" (a resumable session's chunk or status request),
	// "token".
	Requests map[string]int
	// UploadBytes is the number of content bytes received by upload
	// requests, including those of requests that were cut or refused.
	UploadBytes int64
	// Injected counts answers that came from injected faults.
	Injected int
}

// FileInfo describes a stored file, for tests.
type FileInfo struct {
	ID       string
	Name     string
	MimeType string
	Parents  []string
	Data     []byte
	Created  time.Time
	Modified time.Time
	Trashed  bool
}

// New starts a fake with an empty My Drive. Close it when done.
func New() *Server {
	s := &Server{
		files:    map[string]*file{},
		sessions: map[string]*session{},
		cutAfter: -1,
		stats:    Stats{Requests: map[string]int{}},
	}
	s.auth.init()
	now := s.nowLocked()
	s.rootID = "0A" + randomID(16)
	s.files[s.rootID] = &file{id: s.rootID, name: "My Drive", mimeType: FolderMimeType, created: now, modified: now}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Endpoint is the API base URL to give option.WithEndpoint.
func (s *Server) Endpoint() string { return s.URL + "/drive/v3/" }

// TokenURL is the OAuth 2.0 token endpoint, for credential files' token_uri.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// HTTPClient returns a client for the server with no authentication.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// ClientOptions returns the options that point drive.NewService at the
// fake without authentication.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Endpoint()),
		option.WithHTTPClient(s.HTTPClient()),
	}
}

// RootID is the ID of My Drive's root folder (also reachable as "root").
func (s *Server) RootID() string { return s.rootID }

// randomID returns n random hex characters.
func randomID(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// nowLocked returns the current time at Drive's millisecond precision,
// strictly later than any time it returned before, so that "newest" is
// well defined even for calls within one millisecond.
func (s *Server) nowLocked() time.Time {
	t := time.Now().UTC().Truncate(time.Millisecond)
	if !t.After(s.lastTime) {
		t = s.lastTime.Add(time.Millisecond)
	}
	s.lastTime = t
	return t
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) resolveAliasLocked(id string) string {
	if id == "root" {
		return s.rootID
	}
	return id
}

func (s *Server) newIDLocked() string {
	for {
		id := "1" + randomID(32)
		if _, dup := s.files[id]; !dup {
			return id
		}
	}
}

// CreateFolder adds a folder under parentID ("root" for My Drive) and
// returns its ID. Like Drive, it allows a name that is already taken.
func (s *Server) CreateFolder(parentID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(parentID, name, FolderMimeType, nil).id
}

// CreateFile adds a file under parentID and returns its ID. Like Drive, it
// allows a name that is already taken.
func (s *Server) CreateFile(parentID, name string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(parentID, name, "application/octet-stream", slices.Clone(data)).id
}

func (s *Server) addLocked(parentID, name, mimeType string, data []byte) *file {
	now := s.nowLocked()
	f := &file{
		id: s.newIDLocked(), name: name, mimeType: mimeType,
		parents: []string{s.resolveAliasLocked(parentID)}, created: now, modified: now,
	}
	f.setData(data)
	s.files[f.id] = f
	return f
}

// SetModifiedTime changes a file's modifiedTime, e.g. to stage duplicates.
func (s *Server) SetModifiedTime(id string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[s.resolveAliasLocked(id)]; ok {
		f.modified = t.UTC().Truncate(time.Millisecond)
	}
}

// File returns a copy of a stored file's metadata and content.
func (s *Server) File(id string) (FileInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[s.resolveAliasLocked(id)]
	if !ok {
		return FileInfo{}, false
	}
	return f.info(), true
}

func (f *file) info() FileInfo {
	return FileInfo{
		ID: f.id, Name: f.name, MimeType: f.mimeType, Parents: slices.Clone(f.parents),
		Data: slices.Clone(f.data), Created: f.created, Modified: f.modified, Trashed: f.trashed,
	}
}

// Children returns the files and folders directly in folderID, trashed
// ones included, sorted by name then ID.
func (s *Server) Children(folderID string) []FileInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.resolveAliasLocked(folderID)
	var out []FileInfo
	for _, f := range s.files {
		if slices.Contains(f.parents, id) {
			out = append(out, f.info())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Paths lists every file (not folder) below folderID that is not trashed,
// as slash-separated paths relative to it. A name held by several files
// appears once per file, so that tests see duplicates and leftovers.
func (s *Server) Paths(folderID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	var walk func(id, prefix string)
	walk = func(id, prefix string) {
		for _, f := range s.files {
			if !slices.Contains(f.parents, id) || f.trashed {
				continue
			}
			p := path.Join(prefix, f.name)
			if f.isFolder() {
				walk(f.id, p)
			} else {
				out = append(out, p)
			}
		}
	}
	walk(s.resolveAliasLocked(folderID), "")
	sort.Strings(out)
	return out
}

// Fault makes the server answer matching requests with an error.
type Fault struct {
	// Status is the HTTP status to answer, e.g. 403, 429, 500.
	Status int
	// Reason is the error reason Drive would give, e.g. "rateLimitExceeded",
	// "userRateLimitExceeded", "backendError", "storageQuotaExceeded".
	// Empty: a reason that fits Status.
	Reason string
	// Count is how many matching requests fail (at least 1).
	Count int
	// Match selects the requests; nil matches every API and upload request
	// (never the token endpoint). It runs under the server's lock, so it
	// must not block; see OnRequest for that.
	Match func(r *http.Request) bool
}

// Inject adds a fault. Faults are consumed in the order they were added.
func (s *Server) Inject(f Fault) {
	if f.Count < 1 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext makes the next n API requests answer status with reason.
func (s *Server) FailNext(n, status int, reason string) {
	s.Inject(Fault{Status: status, Reason: reason, Count: n})
}

// OnRequest sets a function that is called with every API and upload
// request (and its kind, as RequestKind names it) before the server
// handles it, outside the server's lock: a test may block in it to stage
// a race, or cancel a client's context. It must not read the body.
func (s *Server) OnRequest(fn func(kind string, r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// PendingFaults is the number of injected failures not yet used.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.Count
	}
	return n
}

// CutUploadAfter makes the server drop the connection (with a TCP reset)
// once an upload has received n content bytes: the request that carries
// byte n is read up to it and then cut, and what it carried is not kept.
// It applies once, to the first upload that reaches n.
func (s *Server) CutUploadAfter(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAfter = n
}

// SetQuota sets the account's storage limit in bytes (0: unlimited).
// Uploads that would take usage over it get 403 storageQuotaExceeded.
func (s *Server) SetQuota(limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quota = limit
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Requests = map[string]int{}
	for k, v := range s.stats.Requests {
		st.Requests[k] = v
	}
	return st
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{Requests: map[string]int{}}
}

func (s *Server) usageLocked() int64 {
	var n int64
	for _, f := range s.files {
		n += int64(len(f.data))
	}
	return n
}

// apiError is the body of a Drive error answer.
type apiError struct {
	Code    int
	Reason  string
	Message string
	Domain  string
}

var defaultReasons = map[int]struct{ reason, msg string }{
	400: {"badRequest", "Bad Request"},
	401: {"authError", "Invalid Credentials"},
	403: {"forbidden", "Forbidden"},
	404: {"notFound", "File not found."},
	416: {"requestedRangeNotSatisfiable", "Request range not satisfiable"},
	429: {"rateLimitExceeded", "Rate Limit Exceeded"},
	500: {"backendError", "Backend Error"},
	502: {"badGateway", "Bad Gateway"},
	503: {"backendError", "Service Unavailable"},
}

var reasonMessages = map[string]string{
	"rateLimitExceeded":           "Rate Limit Exceeded",
	"userRateLimitExceeded":       "User Rate Limit Exceeded",
	"storageQuotaExceeded":        "The user's Drive storage quota has been exceeded.",
	"insufficientPermissions":     "Insufficient Permission: Request had insufficient authentication scopes.",
	"insufficientFilePermissions": "The user does not have sufficient permissions for this file.",
	"backendError":                "Backend Error",
	"internalError":               "Internal Error",
}

func writeError(w http.ResponseWriter, e apiError) {
	if e.Reason == "" {
		e.Reason = defaultReasons[e.Code].reason
		if e.Reason == "" {
			e.Reason = "unknown"
		}
	}
	if e.Message == "" {
		e.Message = reasonMessages[e.Reason]
		if e.Message == "" {
			e.Message = defaultReasons[e.Code].msg
		}
		if e.Message == "" {
			e.Message = http.StatusText(e.Code)
		}
	}
	if e.Domain == "" {
		e.Domain = "global"
		if strings.Contains(strings.ToLower(e.Reason), "limit") || strings.Contains(e.Reason, "Quota") {
			e.Domain = "usageLimits"
		}
	}
	body := map[string]any{"error": map[string]any{
		"code":    e.Code,
		"message": e.Message,
		"errors":  []any{map[string]any{"domain": e.Domain, "reason": e.Reason, "message": e.Message}},
	}}
	if e.Code == 401 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
	}
	writeJSON(w, e.Code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	w.Write(b)
}

func notFound(id string) apiError {
	return apiError{Code: 404, Reason: "notFound", Message: fmt.Sprintf("File not found: %s.", id)}
}

func badRequest(format string, args ...any) apiError {
	return apiError{Code: 400, Reason: "badRequest", Message: fmt.Sprintf(format, args...)}
}

// fileJSON renders a file resource in full; the fields mask trims it.
func (f *file) json() map[string]any {
	m := map[string]any{
		"kind":         "drive#file",
		"id":           f.id,
		"name":         f.name,
		"mimeType":     f.mimeType,
		"trashed":      f.trashed,
		"createdTime":  formatTime(f.created),
		"modifiedTime": formatTime(f.modified),
	}
	if len(f.parents) > 0 {
		ps := make([]any, len(f.parents))
		for i, p := range f.parents {
			ps[i] = p
		}
		m["parents"] = ps
	}
	if !f.isFolder() {
		m["size"] = fmt.Sprint(len(f.data))
		m["md5Checksum"] = f.md5
	}
	return m
}

// Delete removes a file, or a folder with everything in it, as another
// client would; it reports whether id existed.
func (s *Server) Delete(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = s.resolveAliasLocked(id)
	if _, ok := s.files[id]; !ok || id == s.rootID {
		return false
	}
	s.deleteTreeLocked(id)
	return true
}
