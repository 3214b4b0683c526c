package drivetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"google.golang.org/api/drive/v3"
	"google.golang.org/api/googleapi"

	"github.com/escalefs/escalefs/relay/gdrive/drivetest"
)

func newServer(t *testing.T) *drivetest.Server {
	s := drivetest.New()
	t.Cleanup(s.Close)
	return s
}

// do sends a raw request and returns status, headers and body.
func do(t *testing.T, method, u string, hdr map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func initiate(t *testing.T, s *drivetest.Server, name string) string {
	t.Helper()
	meta := fmt.Sprintf(`{"name": %q, "parents": ["root"]}`, name)
	code, hdr, body := do(t, "POST", s.URL+"/upload/drive/v3/files?uploadType=resumable&fields=id,name,size",
		map[string]string{"Content-Type": "application/json", "X-Upload-Content-Type": "application/octet-stream"}, []byte(meta))
	if code != 200 || hdr.Get("Location") == "" {
		t.Fatalf("initiate: %d %s", code, body)
	}
	return hdr.Get("Location")
}

// TestResumableProtocol drives a session by hand with PUT requests, the
// way clients other than Go's do: 308 answers, status queries, a resent
// overlapping chunk, and a gap refused.
func TestResumableProtocol(t *testing.T) {
	s := newServer(t)
	loc := initiate(t, s, "by hand")
	data := []byte(strings.Repeat("0123456789", 30)) // 300 bytes
	put := func(cr string, b []byte, hdr map[string]string) (int, http.Header, []byte) {
		h := map[string]string{"Content-Range": cr}
		for k, v := range hdr {
			h[k] = v
		}
		return do(t, "PUT", loc, h, b)
	}
	code, hdr, _ := put("bytes 0-99/*", data[:100], nil)
	if code != 308 || hdr.Get("Range") != "bytes=0-99" {
		t.Errorf("first chunk: %d Range %q, want 308 bytes=0-99", code, hdr.Get("Range"))
	}
	code, hdr, _ = put("bytes */*", nil, nil)
	if code != 308 || hdr.Get("Range") != "bytes=0-99" {
		t.Errorf("status query: %d Range %q", code, hdr.Get("Range"))
	}
	code, hdr, _ = put("bytes */*", nil, map[string]string{"X-GUploader-No-308": "yes"})
	if code != 200 || hdr.Get("X-Http-Status-Code-Override") != "308" || hdr.Get("Range") != "bytes=0-99" {
		t.Errorf("status query without 308: %d %v", code, hdr)
	}
	// A chunk that starts past what the server has is refused.
	if code, _, _ := put("bytes 150-199/*", data[150:200], nil); code != 400 {
		t.Errorf("chunk with a gap: %d, want 400", code)
	}
	// A resent chunk that overlaps is fine: the known part is skipped.
	code, hdr, _ = put("bytes 50-199/300", data[50:200], nil)
	if code != 308 || hdr.Get("Range") != "bytes=0-199" {
		t.Errorf("overlapping chunk: %d Range %q", code, hdr.Get("Range"))
	}
	// "bytes */300" with 200 bytes received: still incomplete.
	if code, hdr, _ = put("bytes */300", nil, nil); code != 308 || hdr.Get("Range") != "bytes=0-199" {
		t.Errorf("status with total: %d Range %q", code, hdr.Get("Range"))
	}
	if s.PendingUploads() != 1 || len(s.Paths("root")) != 0 {
		t.Errorf("an incomplete upload is visible: %q", s.Paths("root"))
	}
	code, _, body := put("bytes 200-299/300", data[200:], nil)
	var f struct{ ID, Name, Size string }
	if code != 200 || json.Unmarshal(body, &f) != nil || f.Size != "300" || f.Name != "by hand" {
		t.Fatalf("last chunk: %d %s", code, body)
	}
	// Asking again after completion answers the file again.
	if code, _, body2 := put("bytes */300", nil, nil); code != 200 || !bytes.Equal(body, body2) {
		t.Errorf("status after completion: %d %s", code, body2)
	}
	fi, ok := s.File(f.ID)
	if !ok || !bytes.Equal(fi.Data, data) {
		t.Errorf("stored content differs")
	}
	// A ranged download.
	code, hdr, body = do(t, "GET", s.URL+"/drive/v3/files/"+f.ID+"?alt=media", map[string]string{"Range": "bytes=10-19"}, nil)
	if code != 206 || string(body) != "0123456789" || hdr.Get("Content-Range") != "bytes 10-19/300" {
		t.Errorf("ranged download: %d %q %q", code, body, hdr.Get("Content-Range"))
	}
	if code, _, _ = do(t, "GET", s.URL+"/drive/v3/files/"+f.ID+"?alt=media", map[string]string{"Range": "bytes=300-"}, nil); code != 416 {
		t.Errorf("range past the end: %d, want 416", code)
	}
}

// TestFinalizeWithEmptyRequest: the Go client ends an upload whose size is
// a multiple of its chunk size with an empty "bytes */N" request.
func TestFinalizeWithEmptyRequest(t *testing.T) {
	s := newServer(t)
	loc := initiate(t, s, "even")
	if code, _, _ := do(t, "POST", loc, map[string]string{"Content-Range": "bytes 0-9/*"}, []byte("0123456789")); code != 308 {
		t.Fatalf("chunk: %d", code)
	}
	code, _, body := do(t, "POST", loc, map[string]string{"Content-Range": "bytes */10"}, nil)
	if code != 200 || !strings.Contains(string(body), `"size":"10"`) {
		t.Errorf("finalize: %d %s", code, body)
	}
	if got := s.Paths("root"); !slices.Equal(got, []string{"even"}) {
		t.Errorf("paths %q", got)
	}
}

func TestCutUpload(t *testing.T) {
	s := newServer(t)
	loc := initiate(t, s, "cut")
	s.CutUploadAfter(50)
	req, _ := http.NewRequest("PUT", loc, bytes.NewReader(make([]byte, 100)))
	req.Header.Set("Content-Range", "bytes 0-99/100")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the cut request got an answer: %d", resp.StatusCode)
	}
	// Nothing of the cut request was kept; the next try goes through.
	code, hdr, _ := do(t, "PUT", loc, map[string]string{"Content-Range": "bytes */*"}, nil)
	if code != 308 || hdr.Get("Range") != "" {
		t.Errorf("after the cut: %d Range %q, want 308 and nothing received", code, hdr.Get("Range"))
	}
	if code, _, body := do(t, "PUT", loc, map[string]string{"Content-Range": "bytes 0-99/100"}, make([]byte, 100)); code != 200 {
		t.Errorf("retry: %d %s", code, body)
	}
	if st := s.Stats(); st.UploadBytes != 151 {
		t.Errorf("upload bytes %d, want 51 cut + 100", st.UploadBytes)
	}
}

func TestQueriesAndFields(t *testing.T) {
	s := newServer(t)
	dir := s.CreateFolder("root", "dir")
	for _, n := range []string{"plain", "it's", `back\slash`, "Plain"} {
		s.CreateFile(dir, n, []byte(n))
	}
	s.CreateFolder(dir, "plain")
	other := s.CreateFolder("root", "other")
	s.CreateFile(other, "plain", nil)
	ctx := context.Background()
	svc, err := drive.NewService(ctx, s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	names := func(q string) []string {
		t.Helper()
		fl, err := svc.Files.List().Q(q).Fields("files(name,mimeType)").Do()
		if err != nil {
			t.Fatalf("q %s: %v", q, err)
		}
		var out []string
		for _, f := range fl.Files {
			n := f.Name
			if f.MimeType == drivetest.FolderMimeType {
				n += "/"
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	in := fmt.Sprintf("'%s' in parents", dir)
	for q, want := range map[string][]string{
		in + " and name = 'plain'":       {"plain", "plain/"},
		in + " and name = 'it\\'s'":      {"it's"},
		in + ` and name = 'back\\slash'`: {`back\slash`},
		in + " and name = 'plain' and mimeType != '" + drivetest.FolderMimeType + "'":                          {"plain"},
		in + " and mimeType = '" + drivetest.FolderMimeType + "'":                                              {"plain/"},
		fmt.Sprintf("('%s' in parents or '%s' in parents) and name = 'plain' and trashed = false", dir, other): {"plain", "plain", "plain/"},
		in + " and not name = 'plain' and name contains 'a'":                                                   {"Plain", "back\\slash"},
		"name = 'dir'": {"dir/"},
	} {
		if got := names(q); !slices.Equal(got, want) {
			t.Errorf("q %s = %q, want %q", q, got, want)
		}
	}
	for _, q := range []string{"name == 'x'", "size > 3", "'x' in children", "name = 'unterminated", "(name = 'x'"} {
		_, err := svc.Files.List().Q(q).Do()
		var ge *googleapi.Error
		if !errors.As(err, &ge) || ge.Code != 400 {
			t.Errorf("q %s: %v, want 400", q, err)
		}
	}
	// Partial responses: without fields, no size.
	fl, err := svc.Files.List().Q(in + " and name = 'it\\'s'").Do()
	if err != nil || len(fl.Files) != 1 || fl.Files[0].Size != 0 || fl.Files[0].Id == "" {
		t.Errorf("default fields: %+v, %v", fl, err)
	}
	fl, err = svc.Files.List().Q(in + " and name = 'it\\'s'").Fields("files(size)").Do()
	if err != nil || len(fl.Files) != 1 || fl.Files[0].Size != 4 || fl.Files[0].Id != "" {
		t.Errorf("fields files(size): %+v, %v", fl.Files, err)
	}
	// Pages.
	for i := range 7 {
		s.CreateFile(other, fmt.Sprint("p", i), nil)
	}
	var got []string
	pages := 0
	err = svc.Files.List().Q(fmt.Sprintf("'%s' in parents and name contains 'p'", other)).PageSize(3).Fields("nextPageToken,files(name)").
		Pages(ctx, func(fl *drive.FileList) error {
			pages++
			for _, f := range fl.Files {
				got = append(got, f.Name)
			}
			return nil
		})
	if err != nil || pages != 3 || len(got) != 8 {
		t.Errorf("paging: %d pages, %q, %v", pages, got, err)
	}
	// about.get needs fields, as on Drive.
	if _, err := svc.About.Get().Do(); err == nil {
		t.Errorf("about.get without fields succeeded")
	}
	s.SetQuota(1000)
	a, err := svc.About.Get().Fields("storageQuota").Do()
	if err != nil || a.StorageQuota.Limit != 1000 || a.StorageQuota.Usage != int64(len("plainit'sback\\slashPlain")) {
		t.Errorf("about: %+v, %v", a.StorageQuota, err)
	}
}

func TestUpdateRules(t *testing.T) {
	s := newServer(t)
	a := s.CreateFolder("root", "a")
	b := s.CreateFolder("root", "b")
	id := s.CreateFile(a, "f", []byte("x"))
	svc, err := drive.NewService(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Files.Update(id, &drive.File{}).AddParents(b).Do()
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != 403 || ge.Errors[0].Reason != "cannotAddParent" {
		t.Errorf("adding a second parent: %v", err)
	}
	before, _ := s.File(id)
	f, err := svc.Files.Update(id, &drive.File{Name: "g"}).AddParents(b).RemoveParents(a).Fields("name,parents,modifiedTime").Do()
	if err != nil || f.Name != "g" || !slices.Equal(f.Parents, []string{b}) {
		t.Fatalf("move: %+v, %v", f, err)
	}
	after, _ := s.File(id)
	if !after.Modified.After(before.Modified) {
		t.Errorf("a rename did not move modifiedTime on")
	}
	// Deleting a folder takes its content with it.
	if err := svc.Files.Delete(b).Do(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.File(id); ok {
		t.Errorf("the file outlived its folder")
	}
	err = svc.Files.Delete(id).Do()
	if !errors.As(err, &ge) || ge.Code != 404 {
		t.Errorf("delete of a missing file: %v", err)
	}
}

func TestFaultsAndAuth(t *testing.T) {
	s := newServer(t)
	svc, err := drive.NewService(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	s.Inject(drivetest.Fault{Status: 403, Reason: "userRateLimitExceeded", Count: 2,
		Match: func(r *http.Request) bool { return drivetest.RequestKind(r) == "files.get" }})
	s.FailNext(1, 503, "")
	_, err = svc.Files.List().Do()
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != 503 {
		t.Errorf("list with a pending 503: %v", err)
	}
	for range 2 {
		_, err = svc.Files.Get("root").Do()
		if !errors.As(err, &ge) || ge.Code != 403 || ge.Errors[0].Reason != "userRateLimitExceeded" {
			t.Errorf("get with a pending rate limit: %v", err)
		}
	}
	if _, err = svc.Files.Get("root").Do(); err != nil || s.PendingFaults() != 0 || s.Stats().Injected != 3 {
		t.Errorf("after the faults: %v, %d pending", err, s.PendingFaults())
	}
	s.RequireAuth()
	_, err = svc.Files.Get("root").Do()
	if !errors.As(err, &ge) || ge.Code != 401 {
		t.Errorf("without a token: %v", err)
	}
	// The token endpoint refuses unknown clients and bad grants.
	id, secret, refresh := s.OAuthClient()
	form := func(v url.Values) int {
		code, _, _ := do(t, "POST", s.TokenURL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(v.Encode()))
		return code
	}
	ok := url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "client_secret": {secret}, "refresh_token": {refresh}}
	if c := form(ok); c != 200 {
		t.Errorf("good refresh: %d", c)
	}
	bad := url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "client_secret": {"wrong"}, "refresh_token": {refresh}}
	if c := form(bad); c != 401 {
		t.Errorf("wrong secret: %d", c)
	}
	bad = url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "client_secret": {secret}, "refresh_token": {"x"}}
	if c := form(bad); c != 400 {
		t.Errorf("unknown refresh token: %d", c)
	}
	if c := form(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b.c"}}); c != 400 {
		t.Errorf("garbage JWT: %d", c)
	}
}
