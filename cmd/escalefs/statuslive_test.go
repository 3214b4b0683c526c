package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The transfers a running node publishes show in escalefs status, as lines
// and as live bars that end when the transfers do.
func TestStatusShowsTransfers(t *testing.T) {
	state := t.TempDir()
	f := statusFile{Version: statusFileVersion, Command: "sync", PID: os.Getpid(), Folder: "/home/me/Sync", Node: "n",
		Started: time.Now(), Transfers: []transferJSON{{Up: true, What: "big.bin", Done: 1 << 20, Size: 4 << 20}},
		Incoming: queueJSON{Files: 3, Bytes: 3000}}
	if err := writeStatusFile(state+"/"+statusFileName, f); err != nil {
		t.Fatal(err)
	}
	r := &nodeReport{State: state, File: &f, Running: true, PID: os.Getpid()}
	var out bytes.Buffer
	printReport(&globals{stdout: &out, stderr: &out}, r, time.Now())
	wantAll(t, "status", out.String(), "uploading:  big.bin: 1.0 MiB of 4.0 MiB (25%)", "to apply:   3 files, 3000 bytes (2.9 KiB) from the pull under way")

	var live syncBuffer
	done := make(chan struct{})
	go func() {
		showTransfers(context.Background(), &live, []*nodeReport{r})
		close(done)
	}()
	waitFor(t, 10*time.Second, "a bar for big.bin", func() bool { return strings.Contains(live.String(), "uploading big.bin") })
	f.Transfers = nil
	if err := writeStatusFile(state+"/"+statusFileName, f); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the live view did not end once the transfers did")
	}
}
