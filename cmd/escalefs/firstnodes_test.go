package main

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// Two nodes started at the same moment on an empty relay end in one
// repository, again and again: on a relay with an exclusive create (a
// file relay) the second creation fails and joins the first; on FTP,
// where both may read back their own escale.json, the node whose file was
// replaced leaves its repository and joins the other. Each node's files
// reach the other, and no node is left that the others cannot read.
func TestTwoFirstNodes(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	ftpd := testserver.StartPureFTPd(t)
	pw := writeFile(t, filepath.Join(t.TempDir(), "pw"), []byte(ftpd.Password+"\n"), 0o600)
	dav := testserver.StartApache(t, testserver.DAVOptions{})
	davPW := writeFile(t, filepath.Join(t.TempDir(), "davpw"), []byte(dav.Password+"\n"), 0o600)
	for _, backend := range []string{"file", "ftp", "webdav"} {
		t.Run(backend, func(t *testing.T) {
			both := 0
			const tries = 8
			for try := range tries {
				relay := "file://" + t.TempDir()
				var flags []string
				switch backend {
				case "ftp":
					u, _ := ftpd.NewRelayDir(t, "ftp")
					relay, flags = u.String(), []string{"--password-file", pw}
				case "webdav":
					raw, _ := dav.Subdir(t)
					u, err := url.Parse(raw)
					if err != nil {
						t.Fatal(err)
					}
					u.User = url.User(dav.User)
					relay, flags = u.String(), []string{"--password-file", davPW}
				}
				nodes := []*syncNode{newSyncNode(t, "alice", bin, relay, key), newSyncNode(t, "bob", bin, relay, key)}
				var outs [2]bytes.Buffer
				var errs [2]error
				var start, done gosync.WaitGroup
				start.Add(1)
				for i, n := range nodes {
					n.flags = flags
					n.write(t, n.name+".txt", "from "+n.name+"\n")
					done.Add(1)
					go func() {
						defer done.Done()
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						cmd := n.command(ctx, "--once")
						cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
						start.Wait()
						errs[i] = cmd.Run()
					}()
				}
				start.Done()
				done.Wait()
				for i := range nodes {
					if errs[i] != nil {
						t.Fatalf("try %d: %s's first sync: %v\n%s", try, nodes[i].name, errs[i], outs[i].String())
					}
				}
				if strings.Contains(outs[0].String()+outs[1].String(), "joining that one") {
					both++
				}
				for range 2 {
					for _, n := range nodes {
						n.once(t)
					}
				}
				for _, n := range nodes {
					for _, other := range nodes {
						if !n.has(other.name+".txt", "from "+other.name+"\n") {
							t.Fatalf("try %d: %s lacks %s.txt\n%s\n%s", try, n.name, other.name, outs[0].String(), outs[1].String())
						}
					}
				}
				out, errOut, code := runBin(t, bin, nodes[0].state, append([]string{"nodes", "--relay", relay, "--key-file", key}, flags...)...)
				if code != 0 || strings.Count(out, "\n") != 3 || strings.Contains(out, "unreadable") {
					t.Fatalf("try %d: escalefs nodes, want alice and bob alone: exit %d\n%s%s", try, code, out, errOut)
				}
			}
			t.Logf("%s: both nodes created the repository in %d of %d tries", backend, both, tries)
		})
	}
}
