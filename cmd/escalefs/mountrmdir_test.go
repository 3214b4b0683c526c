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

// TestMountPassivePeerQuiet: everyday work in one mount (hard links, a
// protected file deleted with its directory, symlinks replaced, touch,
// chmod, a moved and removed tree, appends, a large file) ends with both
// mounts holding the same tree, byte for byte and mode for mode, and the
// peer that only receives logs no warning.
func TestMountPassivePeerQuiet(t *testing.T) {
	mountUsable(t)
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relay := "file://" + t.TempDir()
	a := startMount(t, bin, "alice", relay, key)
	b := startMount(t, bin, "bob", relay, key)
	script := `cd ` + a.mnt + ` && echo v1 > a && ln a b && sleep 1.5 && echo v2 > a &&
	mkdir d && echo x > d/f && chmod 0444 d/f && sleep 0.1 && rm -f d/f && rmdir d &&
	ln -s a l && sleep 1.5 && rm l && ln -s b l && touch -d 2020-01-01 a && chmod 600 b &&
	mkdir -p e/f/g && echo y > e/f/g/h && sleep 1.5 && mv e e2 && sleep 1.5 && rm -r e2 &&
	for i in 1 2 3; do echo $i > n$i; sleep 0.3; echo $i$i >> n$i; done &&
	dd if=/dev/zero of=big bs=1M count=20 status=none && sleep 1 && echo tail >> big && echo done > done`
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ta, tb map[string]string
	deadline := time.Now().Add(time.Minute)
	for {
		ta, tb = treeOf(t, a.mnt), treeOf(t, b.mnt)
		if len(ta) == len(tb) && ta["done"] != "" && func() bool {
			for p, v := range ta {
				if tb[p] != v {
					return false
				}
			}
			return true
		}() {
			break
		}
		if time.Now().After(deadline) {
			for p, v := range ta {
				if tb[p] != v {
					t.Errorf("%s: alice %.80q, bob %.80q", p, v, tb[p])
				}
			}
			for p, v := range tb {
				if _, ok := ta[p]; !ok {
					t.Errorf("%s: only on bob: %.80q", p, v)
				}
			}
			t.Fatal("the mounts did not converge within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range strings.Split(b.log.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("bob, which only receives, logged: %s", line)
		}
	}
	a.unmount(t)
	b.unmount(t)
}
