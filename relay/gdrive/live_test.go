package gdrive_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"testing"
	"time"

	"google.golang.org/api/drive/v3"
	"google.golang.org/api/option"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/gdrive"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// Environment of the opt-in test against Google Drive itself.
const (
	liveURLEnv   = "ESCALEFS_GDRIVE_TEST_URL"    // e.g. gdrive:///escalefs-test
	liveCredsEnv = "ESCALEFS_GDRIVE_CREDENTIALS" // a credentials file (see LoadCredentials)
)

// TestLive runs the conformance suite against a real Drive folder. Each
// subtest works in a fresh folder below the URL's, which it deletes
// afterwards. It needs network access and credentials, so it runs only
// when both variables are set.
func TestLive(t *testing.T) {
	rawURL, creds := os.Getenv(liveURLEnv), os.Getenv(liveCredsEnv)
	if rawURL == "" || creds == "" {
		t.Skipf("set %s and %s to run against Google Drive", liveURLEnv, liveCredsEnv)
	}
	base, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	// A client of its own sees the folder as it is, temporary files
	// included, for Raw, and removes it afterwards.
	ts, err := gdrive.LoadCredentials(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := drive.NewService(context.Background(), option.WithTokenSource(ts))
	if err != nil {
		t.Fatal(err)
	}
	opts := relay.Options{CredentialsFile: creds}
	run := time.Now().UTC().Format("20060102-150405")
	n := 0
	relaytest.Run(t, relaytest.Config{MaxSize: 9 << 20, New: func(t *testing.T) relaytest.Fixture {
		n++
		u := *base
		u.Path = fmt.Sprintf("%s/test-%s-%02d", u.Path, run, n)
		r, err := gdrive.Open(context.Background(), &u, opts)
		if err != nil {
			t.Fatal(err)
		}
		folder := r.(*gdrive.Relay).FolderID()
		t.Cleanup(func() {
			r.Close()
			if err := svc.Files.Delete(folder).SupportsAllDrives(true).Do(); err != nil {
				t.Logf("removing the test folder %s (%s): %v", u.String(), folder, err)
			}
		})
		return relaytest.Fixture{Relay: r, Raw: func(t testing.TB) []string { return liveTree(t, svc, folder) }}
	}})
}

// liveTree lists every file below a folder, as relative paths.
func liveTree(t testing.TB, svc *drive.Service, folder string) []string {
	var out []string
	var walk func(id, prefix string)
	walk = func(id, prefix string) {
		err := svc.Files.List().Q(fmt.Sprintf("'%s' in parents and trashed = false", id)).
			Fields("nextPageToken,files(id,name,mimeType)").PageSize(1000).
			SupportsAllDrives(true).IncludeItemsFromAllDrives(true).
			Pages(context.Background(), func(fl *drive.FileList) error {
				for _, f := range fl.Files {
					p := path.Join(prefix, f.Name)
					if f.MimeType == "application/vnd.google-apps.folder" {
						walk(f.Id, p)
					} else {
						out = append(out, p)
					}
				}
				return nil
			})
		if err != nil {
			t.Fatalf("listing the test folder: %v", err)
		}
	}
	walk(folder, "")
	sort.Strings(out)
	return out
}
