package gdrive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/gdrive"
	"github.com/escalefs/escalefs/relay/gdrive/drivetest"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// TestConformanceResumable runs the suite with the smallest chunk size, so
// that every payload above 256 KiB goes through resumable sessions
// (cancelled and failing puts included).
func TestConformanceResumable(t *testing.T) {
	relaytest.Run(t, relaytest.Config{MaxSize: 3 << 20, New: func(t *testing.T) relaytest.Fixture {
		f := newFixture(t, func(c *gdrive.Config) { c.ChunkSize = 256 << 10 })
		return relaytest.Fixture{Relay: f.relay, Raw: f.raw}
	}})
}

func TestResumableUploadResumes(t *testing.T) {
	f := newFixture(t, func(c *gdrive.Config) { c.ChunkSize = 256 << 10 })
	data := relaytest.RandomBytes(2 << 20)
	f.srv.ResetStats()
	f.srv.CutUploadAfter(1<<20 + 100<<10)
	if err := f.relay.Put(context.Background(), "big/obj", relay.BytesPayload(data)); err != nil {
		t.Fatalf("put with a connection cut mid-way: %v", err)
	}
	st := f.srv.Stats()
	resent := st.UploadBytes - int64(len(data))
	t.Logf("requests %v, %d bytes received for %d, %d sent again", st.Requests, st.UploadBytes, len(data), resent)
	if resent <= 0 {
		t.Errorf("the cut did not happen: %d bytes received for %d", st.UploadBytes, len(data))
	}
	if resent > 256<<10+1 {
		t.Errorf("%d bytes were sent again, more than one chunk: the upload restarted instead of resuming", resent)
	}
	if st.Requests["files.create"] != 2 { // the folder "big" and one upload session
		t.Errorf("files.create called %d times, want 2 (one session, resumed)", st.Requests["files.create"])
	}
	if got := relaytest.MustGet(t, f.relay, "big/obj"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ", len(got))
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"big/obj"}) {
		t.Errorf("storage holds %q", raw)
	}
	if n := f.srv.PendingUploads(); n != 0 {
		t.Errorf("%d upload sessions left incomplete", n)
	}
}

func TestDuplicateFiles(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	// Leftovers of earlier puts that did not finish: the newest is "new".
	d := f.srv.CreateFolder(f.rootID, "d")
	now := time.Now()
	old1 := f.srv.CreateFile(d, "x", []byte("old-1"))
	f.srv.SetModifiedTime(old1, now.Add(-3*time.Hour))
	newest := f.srv.CreateFile(d, "x", []byte("new"))
	f.srv.SetModifiedTime(newest, now.Add(-time.Hour))
	old2 := f.srv.CreateFile(d, "x", []byte("old-2"))
	f.srv.SetModifiedTime(old2, now.Add(-2*time.Hour))

	other := openRelay(t, f.srv, "gdrive:///escalefs/relay")
	for _, r := range []relay.Relay{f.relay, other} {
		if got := relaytest.MustGet(t, r, "d/x"); string(got) != "new" {
			t.Errorf("get of a name with duplicates = %q, want the newest %q", got, "new")
		}
		st, err := r.Stat(ctx, "d/x")
		if err != nil || st.Size != 3 {
			t.Errorf("stat = %+v, %v; want the newest's size 3", st, err)
		}
	}
	if names := relaytest.ListNames(t, f.relay, ""); !slices.Equal(names, []string{"d/x"}) {
		t.Errorf("list = %q, want d/x once", names)
	}

	// A node that put a name and cached its file still reads the newest
	// one when another node's put left a newer file beside it.
	relaytest.MustPut(t, f.relay, "d/y", []byte("mine"))
	relaytest.MustGet(t, f.relay, "d/y")
	f.srv.CreateFile(d, "y", []byte("theirs"))
	for _, r := range []relay.Relay{f.relay, other} {
		if got := relaytest.MustGet(t, r, "d/y"); string(got) != "theirs" {
			t.Errorf("get with a newer duplicate than the cached file = %q, want %q", got, "theirs")
		}
	}
	if err := f.relay.Delete(ctx, "d/y"); err != nil {
		t.Fatal(err)
	}

	// Equal times: the lowest ID wins, whoever asks.
	tie := f.srv.CreateFile(d, "t", []byte("a"))
	tie2 := f.srv.CreateFile(d, "t", []byte("b"))
	f.srv.SetModifiedTime(tie, now)
	f.srv.SetModifiedTime(tie2, now)
	want := "a"
	if tie2 < tie {
		want = "b"
	}
	for _, r := range []relay.Relay{f.relay, other} {
		if got := relaytest.MustGet(t, r, "d/t"); string(got) != want {
			t.Errorf("tie: got %q, want %q (lowest ID)", got, want)
		}
	}

	// Put replaces every duplicate.
	relaytest.MustPut(t, other, "d/x", []byte("put"))
	if raw := f.raw(t); !slices.Equal(raw, []string{"d/t", "d/t", "d/x"}) {
		t.Errorf("after put: storage holds %q, want one d/x", raw)
	}
	for _, r := range []relay.Relay{f.relay, other} {
		if got := relaytest.MustGet(t, r, "d/x"); string(got) != "put" {
			t.Errorf("after put: got %q", got)
		}
	}
	// Delete removes every duplicate.
	if err := f.relay.Delete(ctx, "d/t"); err != nil {
		t.Fatal(err)
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"d/x"}) {
		t.Errorf("after delete: storage holds %q", raw)
	}
	if _, err := other.Stat(ctx, "d/t"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after delete: %v", err)
	}
}

func TestRenameWithDuplicates(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	relaytest.MustPut(t, f.relay, "src", []byte("newest"))
	older := f.srv.CreateFile(f.rootID, "src", []byte("older"))
	f.srv.SetModifiedTime(older, time.Now().Add(-time.Hour))
	relaytest.MustPut(t, f.relay, "dst", []byte("target"))
	newerTarget := f.srv.CreateFile(f.rootID, "dst", []byte("target-2"))
	f.srv.SetModifiedTime(newerTarget, time.Now().Add(time.Hour))
	if err := f.relay.Rename(ctx, "src", "dst"); err != nil {
		t.Fatal(err)
	}
	if got := relaytest.MustGet(t, f.relay, "dst"); string(got) != "newest" {
		t.Errorf("dst = %q, want the renamed %q", got, "newest")
	}
	if _, err := f.relay.Stat(ctx, "src"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("src after rename: %v (an older duplicate showed through?)", err)
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"dst"}) {
		t.Errorf("storage holds %q, want [dst]", raw)
	}
}

func TestDuplicateFolders(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	// Two nodes made the folder "shared" at once, and each put a file in
	// its own.
	a := f.srv.CreateFolder(f.rootID, "shared")
	b := f.srv.CreateFolder(f.rootID, "shared")
	f.srv.CreateFile(a, "one", []byte("1"))
	f.srv.CreateFile(b, "two", []byte("2"))
	sub := f.srv.CreateFolder(b, "sub")
	f.srv.CreateFile(sub, "three", []byte("3"))
	if got := relaytest.ListNames(t, f.relay, ""); !slices.Equal(got, []string{"shared/one", "shared/sub/three", "shared/two"}) {
		t.Errorf("list = %q", got)
	}
	if got := relaytest.ListNames(t, f.relay, "shared"); len(got) != 3 {
		t.Errorf("list shared = %q", got)
	}
	for name, want := range map[string]string{"shared/one": "1", "shared/two": "2", "shared/sub/three": "3"} {
		if got := relaytest.MustGet(t, f.relay, name); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// New files go to the oldest folder.
	relaytest.MustPut(t, f.relay, "shared/four", []byte("4"))
	var inA bool
	for _, c := range f.srv.Children(a) {
		inA = inA || c.Name == "four"
	}
	if !inA {
		t.Errorf("a new file did not go to the oldest of the duplicate folders")
	}
	// Put over a file that lives in the other duplicate replaces it.
	relaytest.MustPut(t, f.relay, "shared/two", []byte("2b"))
	if got := relaytest.MustGet(t, openRelay(t, f.srv, "gdrive:///escalefs/relay"), "shared/two"); string(got) != "2b" {
		t.Errorf("shared/two = %q after put", got)
	}
	if err := f.relay.Delete(ctx, "shared/sub/three"); err != nil {
		t.Fatal(err)
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"shared/four", "shared/one", "shared/two"}) {
		t.Errorf("storage holds %q", raw)
	}
}

// TestTwoNodes runs two relays on one Drive folder concurrently: they race
// to create the same folders and put the same names, and must end up
// agreeing on one version of each.
func TestTwoNodes(t *testing.T) {
	f := newFixture(t, nil)
	nodes := []relay.Relay{f.relay, openRelay(t, f.srv, "gdrive:///escalefs/relay")}
	// Hold the first two folder creations until both have arrived: each
	// node has then looked for the folder "race", found none, and made its
	// own, as two machines can.
	var mu sync.Mutex
	creates := 0
	both := make(chan struct{})
	f.srv.OnRequest(func(kind string, r *http.Request) {
		if kind != "files.create" || r.URL.Path != "/drive/v3/files" {
			return
		}
		mu.Lock()
		creates++
		n := creates
		mu.Unlock()
		switch {
		case n == 2:
			close(both)
		case n < 2:
			select {
			case <-both:
			case <-time.After(5 * time.Second):
			}
		}
	})
	var wg sync.WaitGroup
	for n, r := range nodes {
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("race/d%d/obj", i%2)
				if err := r.Put(context.Background(), name, relay.BytesPayload([]byte(fmt.Sprintf("node%d-%d", n, i)))); err != nil {
					t.Errorf("node %d put %s: %v", n, name, err)
				}
			}()
		}
	}
	wg.Wait()
	races := 0
	for _, c := range f.srv.Children(f.rootID) {
		if c.Name == "race" {
			races++
		}
	}
	if races != 2 {
		t.Errorf("%d folders called race, want the 2 the staged race makes", races)
	}
	for _, name := range []string{"race/d0/obj", "race/d1/obj"} {
		a := relaytest.MustGet(t, nodes[0], name)
		b := relaytest.MustGet(t, nodes[1], name)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: node 0 reads %q, node 1 reads %q", name, a, b)
		}
	}
	for _, r := range nodes {
		if got := relaytest.ListNames(t, r, ""); !slices.Equal(got, []string{"race/d0/obj", "race/d1/obj"}) {
			t.Errorf("list = %q", got)
		}
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"race/d0/obj", "race/d1/obj"}) {
		t.Errorf("storage holds %q, want one file per name", raw)
	}
}

// TestStaleIDs: another client deletes or moves what this relay has
// cached; the relay notices and looks again.
func TestStaleIDs(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	relaytest.MustPut(t, f.relay, "dir/x", []byte("x"))
	relaytest.MustGet(t, f.relay, "dir/x") // cached now
	dir := f.folderID(t, "escalefs/relay/dir")
	var xid string
	for _, c := range f.srv.Children(dir) {
		xid = c.ID
	}
	f.srv.Delete(xid)
	if _, err := f.relay.Stat(ctx, "dir/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after another client deleted the file: %v", err)
	}
	// Another node replaces the file: the cached ID is deleted by its put.
	relaytest.MustPut(t, f.relay, "dir/y", []byte("mine"))
	relaytest.MustPut(t, openRelay(t, f.srv, "gdrive:///escalefs/relay"), "dir/y", []byte("theirs"))
	if got := relaytest.MustGet(t, f.relay, "dir/y"); string(got) != "theirs" {
		t.Errorf("after another node's put: %q", got)
	}
	// Another client deletes the whole folder this relay has cached.
	f.srv.Delete(dir)
	if _, err := f.relay.Stat(ctx, "dir/y"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after the folder went: %v", err)
	}
	relaytest.MustPut(t, f.relay, "dir/z", []byte("z"))
	if got := relaytest.MustGet(t, f.relay, "dir/z"); string(got) != "z" {
		t.Errorf("put into a recreated folder: %q", got)
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"dir/z"}) {
		t.Errorf("storage holds %q", raw)
	}
}

func TestRateLimitsRetried(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	data := relaytest.RandomBytes(10_000)
	for _, tc := range []struct {
		status int
		reason string
	}{
		{403, "rateLimitExceeded"},
		{403, "userRateLimitExceeded"},
		{429, ""},
		{500, ""},
		{503, ""},
	} {
		f.srv.FailNext(3, tc.status, tc.reason)
		if err := f.relay.Put(ctx, "rl/obj", relay.BytesPayload(data)); err != nil {
			t.Errorf("%d %s: put: %v", tc.status, tc.reason, err)
		}
		f.srv.FailNext(3, tc.status, tc.reason)
		if got, err := relaytest.ReadAll(ctx, f.relay, "rl/obj", 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d %s: get: %d bytes, %v", tc.status, tc.reason, len(got), err)
		}
		f.srv.FailNext(3, tc.status, tc.reason)
		if names := relaytest.ListNames(t, f.relay, ""); !slices.Equal(names, []string{"rl/obj"}) {
			t.Errorf("%d %s: list = %q", tc.status, tc.reason, names)
		}
		if n := f.srv.PendingFaults(); n != 0 {
			t.Errorf("%d %s: %d injected faults not reached", tc.status, tc.reason, n)
		}
	}
	if raw := f.raw(t); !slices.Equal(raw, []string{"rl/obj"}) {
		t.Errorf("storage holds %q", raw)
	}
	// Past the attempts, the error says "try later": transient.
	f.srv.FailNext(100, 429, "")
	_, err := f.relay.Stat(ctx, "rl/obj")
	if err == nil || relay.IsPermanent(err) {
		t.Errorf("stat with rate limits exhausted: %v, want a transient error", err)
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	relaytest.MustPut(t, f.relay, "e/x", []byte("x"))
	for _, tc := range []struct {
		status    int
		reason    string
		want      error
		permanent bool
	}{
		{401, "authError", relay.ErrAuth, true},
		{403, "insufficientPermissions", fs.ErrPermission, true},
		{403, "storageQuotaExceeded", relay.ErrQuota, true},
		{400, "invalid", nil, true},
	} {
		f.srv.FailNext(1, tc.status, tc.reason)
		_, err := f.relay.Stat(ctx, "e/x")
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || relay.IsPermanent(err) != tc.permanent {
			t.Errorf("%d %s: %v (permanent %v), want %v, permanent %v", tc.status, tc.reason, err, relay.IsPermanent(err), tc.want, tc.permanent)
		}
		var op *relay.OpError
		if !errors.As(err, &op) || op.Op != "stat" || op.Name != "e/x" {
			t.Errorf("%d %s: %v is not an OpError naming stat e/x", tc.status, tc.reason, err)
		}
		if n := f.srv.PendingFaults(); n != 0 {
			t.Fatalf("%d faults left", n)
		}
	}
}

func TestQuotaExceeded(t *testing.T) {
	for _, chunk := range []int{0, 256 << 10} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			f := newFixture(t, func(c *gdrive.Config) { c.ChunkSize = chunk })
			ctx := context.Background()
			relaytest.MustPut(t, f.relay, "q/small", make([]byte, 100_000))
			f.srv.SetQuota(500_000)
			u, err := f.relay.Quota(ctx)
			if err != nil || u.Total != 500_000 || u.Used != 100_000 {
				t.Errorf("quota = %+v, %v; want used 100000 of 500000", u, err)
			}
			err = f.relay.Put(ctx, "q/big", relay.BytesPayload(make([]byte, 1_000_000)))
			if !errors.Is(err, relay.ErrQuota) || !relay.IsPermanent(err) {
				t.Errorf("put over the quota: %v, want a permanent relay.ErrQuota", err)
			}
			if raw := f.raw(t); !slices.Equal(raw, []string{"q/small"}) {
				t.Errorf("storage holds %q after the refused put", raw)
			}
		})
	}
	f := newFixture(t, nil)
	u, err := f.relay.Quota(context.Background())
	if err != nil || u.Total != -1 || u.Used != 0 {
		t.Errorf("unlimited quota = %+v, %v; want total -1, used 0", u, err)
	}
}

// TestDeleteFallsBackToTrash: an editor of a shared folder may not delete
// another account's file, only trash it.
func TestDeleteFallsBackToTrash(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	relaytest.MustPut(t, f.relay, "t/x", []byte("x"))
	f.srv.Inject(drivetest.Fault{Status: 403, Reason: "insufficientFilePermissions", Count: 1,
		Match: func(r *http.Request) bool { return drivetest.RequestKind(r) == "files.delete" }})
	if err := f.relay.Delete(ctx, "t/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.relay.Stat(ctx, "t/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after delete: %v", err)
	}
	d := f.folderID(t, "escalefs/relay/t")
	ch := f.srv.Children(d)
	if len(ch) != 1 || !ch[0].Trashed {
		t.Errorf("the file should be in the trash: %+v", ch)
	}
}

// TestCancelDuringRename cancels the put's context just as the rename is
// sent: whether or not Drive applied it, a failed put leaves nothing.
func TestCancelDuringRename(t *testing.T) {
	failed := 0
	for i := range 6 {
		f := newFixture(t, nil)
		relaytest.MustPut(t, f.relay, "c/x", []byte("old"))
		ctx, cancel := context.WithCancel(context.Background())
		f.srv.OnRequest(func(kind string, r *http.Request) {
			if kind == "files.update" {
				cancel()
				if i%2 == 1 {
					time.Sleep(20 * time.Millisecond) // a slow server: the answer may come after the client gave up; both outcomes are checked below
				}
			}
		})
		err := f.relay.Put(ctx, "c/x", relay.BytesPayload([]byte("new")))
		cancel()
		f.srv.OnRequest(nil)
		got := relaytest.MustGet(t, f.relay, "c/x")
		raw := f.raw(t)
		if err != nil {
			failed++
			if !errors.Is(err, context.Canceled) {
				t.Errorf("put: %v, want context.Canceled", err)
			}
			if string(got) != "old" || !slices.Equal(raw, []string{"c/x"}) {
				t.Errorf("after a cancelled put: %q, storage %q; want old and one file", got, raw)
			}
		} else if string(got) != "new" || !slices.Equal(raw, []string{"c/x"}) {
			t.Errorf("after a put that succeeded: %q, storage %q", got, raw)
		}
	}
	if failed == 0 {
		t.Errorf("no put was cancelled: the test did not test cleanup")
	}
}

func TestGetStopsEarlyAndRanges(t *testing.T) {
	f := newFixture(t, nil)
	data := relaytest.RandomBytes(50_000)
	relaytest.MustPut(t, f.relay, "g", data)
	f.srv.ResetStats()
	got, err := relaytest.ReadAll(context.Background(), f.relay, "g", 40_000, -1)
	if err != nil || !bytes.Equal(got, data[40_000:]) {
		t.Fatalf("ranged get: %d bytes, %v", len(got), err)
	}
	// The range was asked of Drive, not cut locally.
	if st := f.srv.Stats(); st.Requests["files.get(media)"] != 1 {
		t.Errorf("requests %v", st.Requests)
	}
	// Offsets at or past the end do not download at all.
	f.srv.ResetStats()
	got, err = relaytest.ReadAll(context.Background(), f.relay, "g", 50_000, 10)
	if err != nil || len(got) != 0 || f.srv.Stats().Requests["files.get(media)"] != 0 {
		t.Errorf("get at the end: %d bytes, %v, requests %v", len(got), err, f.srv.Stats().Requests)
	}
	// A file deleted between lookup and download: fs.ErrNotExist, fn not called.
	f.srv.Inject(drivetest.Fault{Count: 2, Status: 404, Reason: "notFound",
		Match: func(r *http.Request) bool { return drivetest.RequestKind(r) == "files.get(media)" }})
	called := false
	err = f.relay.Get(context.Background(), "g", 0, -1, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, fs.ErrNotExist) || called {
		t.Errorf("get of a vanished file: %v, fn called %v", err, called)
	}
}

func TestURLs(t *testing.T) {
	for _, tc := range []struct {
		url  string
		base string
		path []string
		err  string
	}{
		{url: "gdrive:///escalefs/relay", base: "root", path: []string{"escalefs", "relay"}},
		{url: "gdrive:///escalefs/relay/", base: "root", path: []string{"escalefs", "relay"}},
		{url: "gdrive:///with%20space/x", base: "root", path: []string{"with space", "x"}},
		{url: "gdrive://id/1AbC-_xyz", base: "1AbC-_xyz"},
		{url: "gdrive://id/1AbC/sub/dir", base: "1AbC", path: []string{"sub", "dir"}},
		{url: "gdrive:///", err: "not the whole of My Drive"},
		{url: "gdrive://escalefs/relay", err: "gdrive:///escalefs/relay"},
		{url: "gdrive://id/", err: "no folder ID"},
		{url: "gdrive:relay", err: "three slashes"},
		{url: "gdrive://user:secret@id/x", err: "no user or password"},
		{url: "gdrive:///a?x=1", err: "no query"},
		{url: "gdrive:///a//b", err: "bad folder name"},
		{url: "gdrive:///a/../b", err: "bad folder name"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		base, p, err := gdrive.ParseURL(u)
		if tc.err != "" {
			if err == nil || !contains(err.Error(), tc.err) || contains(err.Error(), "secret") {
				t.Errorf("%s: %v, want an error containing %q (and no password)", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || base != tc.base || !slices.Equal(p, tc.path) {
			t.Errorf("%s = %q %q, %v; want %q %q", tc.url, base, p, err, tc.base, tc.path)
		}
	}
}

func TestOpenByID(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	shared := srv.CreateFolder("root", "Shared with the relay")
	r := openRelay(t, srv, "gdrive://id/"+shared+"/sub")
	relaytest.MustPut(t, r, "a/b", []byte("b"))
	if got := srv.Paths(shared); !slices.Equal(got, []string{"sub/a/b"}) {
		t.Errorf("files in the folder: %q", got)
	}
	if loc := r.Properties().Location; loc != "gdrive://id/"+shared+"/sub" {
		t.Errorf("location %q", loc)
	}
	ctx := context.Background()
	u, _ := url.Parse("gdrive://id/nonexistent")
	_, err := gdrive.OpenWithConfig(ctx, u, relay.Options{}, testConfig(srv))
	if !errors.Is(err, fs.ErrNotExist) || !contains(err.Error(), "nonexistent") {
		t.Errorf("open of a missing folder ID: %v", err)
	}
	file := srv.CreateFile("root", "a file", []byte("x"))
	u, _ = url.Parse("gdrive://id/" + file)
	if _, err = gdrive.OpenWithConfig(ctx, u, relay.Options{}, testConfig(srv)); err == nil || !contains(err.Error(), "not a folder") {
		t.Errorf("open of a file ID: %v", err)
	}
}

// TestFolderCaching: once folders are known, a put or get does not look
// them up again: a get is one listing of the file's folder and one
// download.
func TestFolderCaching(t *testing.T) {
	f := newFixture(t, nil)
	relaytest.MustPut(t, f.relay, "a/b/c/first", []byte("1"))
	f.srv.ResetStats()
	relaytest.MustPut(t, f.relay, "a/b/c/second", []byte("2"))
	st := f.srv.Stats()
	// One upload, one rename, one listing for older versions.
	if st.Requests["files.list"] != 1 || st.Requests["files.create"] != 1 || st.Requests["files.update"] != 1 {
		t.Errorf("a put into known folders made requests %v", st.Requests)
	}
	f.srv.ResetStats()
	relaytest.MustGet(t, f.relay, "a/b/c/second")
	if st := f.srv.Stats(); st.Requests["files.list"] != 1 || st.Requests["files.get"] != 0 || st.Requests["files.get(media)"] != 1 {
		t.Errorf("a get of a known file made requests %v", st.Requests)
	}
}

func contains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// openRelay opens another relay (another node) on the fake.
func openRelay(t *testing.T, srv *drivetest.Server, rawURL string) *gdrive.Relay {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := gdrive.OpenWithConfig(context.Background(), u, relay.Options{}, testConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestOwnHTTPClient: without Config.HTTPClient the backend builds its
// client from relay.Options.
func TestOwnHTTPClient(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	u, _ := url.Parse("gdrive:///own")
	cfg := gdrive.Config{Endpoint: srv.Endpoint(), NoAuth: true}
	r, err := gdrive.OpenWithConfig(context.Background(), u, relay.Options{Timeout: 5 * time.Second, MaxConns: 2}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	relaytest.MustPut(t, r, "x", []byte("x"))
	if got := relaytest.MustGet(t, r, "x"); string(got) != "x" {
		t.Errorf("got %q", got)
	}
	_, err = gdrive.OpenWithConfig(context.Background(), u, relay.Options{TLS: relay.TLSOptions{CAFile: "/nonexistent/ca.pem"}}, cfg)
	if err == nil || !contains(err.Error(), "CA file") {
		t.Errorf("open with a missing CA file: %v", err)
	}
}
