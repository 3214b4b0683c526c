package sync_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	escsync "github.com/escalefs/escalefs/sync"
)

// A node stopped at once (StopGrace < 0) right after the mount reported a
// closed file, before the report was due, still records the file in its
// queue on disk: escalefs status counts it, and the next start pushes it.
func TestStopWithoutGraceRecordsReports(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small, func(cfg *escsync.Config) {
		cfg.Reported = true
		cfg.StopGrace = -1
	})
	a.round(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.e.Run(ctx) }()
	// Run is up once it arms its poll timer (the fake clock never moves).
	waitFor(t, 30*time.Second, "Run's poll timer", func() bool { return len(c.clock.Pending()) > 0 })
	a.write(t, "closed.txt", []byte("closed just before the stop"))
	a.e.Notify("closed.txt")
	// The report is gathered; its timer waits on the fake clock.
	waitFor(t, 30*time.Second, "the report's timer", func() bool { return len(c.clock.Pending()) > 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	q, err := escsync.ReadQueue(a.store)
	if err != nil || q.Files != 1 {
		t.Errorf("queue after a stop without grace: %+v, %v; want the closed file", q, err)
	}
}

// A symbolic link's own modification time reaches the peers.
func TestSymlinkTime(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	link := filepath.Join(a.dir, "link")
	if err := os.Symlink("target/elsewhere", link); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 800, time.UTC)
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(at.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	c.settle()
	fi, err := os.Lstat(filepath.Join(b.dir, "link"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(at) {
		t.Errorf("b's link has the time %v, want %v", fi.ModTime().UTC(), at)
	}
}
