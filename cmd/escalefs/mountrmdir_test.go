package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMountRmdirConverges loops a quick create, protect, delete and rmdir
// of a directory in the mount 200 times: every directory delete reaches
// the peer, whatever the modifiers of the files it held.
func TestMountRmdirConverges(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMount(t, bin, "alice", relay, key)
	bob := newSyncNode(t, "bob", bin, relay, key)
	const runs = 200
	var script strings.Builder
	fmt.Fprintf(&script, "cd %s && for i in $(seq 1 %d); do mkdir d$i && echo x > d$i/f && chmod 0444 d$i/f && sleep 0.1 && rm -f d$i/f && rmdir d$i || exit 1; done && echo done > done", a.mnt, runs)
	if out, err := exec.Command("sh", "-c", script.String()).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script.String(), err, out)
	}
	var left []string
	deadline := time.Now().Add(time.Minute)
	for {
		bob.once(t)
		left = left[:0]
		ents, err := os.ReadDir(bob.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "d") && e.Name() != "done" {
				left = append(left, e.Name())
			}
		}
		if bob.has("done", "done\n") && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, line := range strings.Split(a.log.String(), "\n") {
				for _, d := range left {
					if strings.Contains(line, "path="+d+" ") || strings.Contains(line, "path="+d+"/") {
						t.Log(line)
					}
				}
			}
			if !bob.has("done", "done\n") {
				lines := strings.Split(a.log.String(), "\n")
				t.Logf("done did not reach bob; alice's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
			t.Fatalf("bob still holds %d of %d deleted directories after a minute: %v", len(left), runs, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.unmount(t)
}
