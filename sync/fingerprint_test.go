package sync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/sync/localdir"
)

// TestPulledFingerprintsCurrent: the fingerprint the cache records for a
// pulled file is the file's as it stays: taking the download's scratch
// file as the installed one (a link) and removing its name changes the
// ctime, which must not leave a stale fingerprint (the next scan would
// read every pulled file again, and a push would take it for changed).
func TestPulledFingerprintsCurrent(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	for i := range 300 {
		a.write(t, fmt.Sprintf("f%03d.txt", i), fmt.Appendf(nil, "content %d\n", i))
	}
	a.write(t, "big.bin", make([]byte, 40<<10)) // in parts
	c.settle()
	stale := 0
	err := b.store.View(func(tx *cache.Tx) error {
		return tx.Walk("", func(ent cache.Entry) error {
			if ent.Deleted || ent.Kind != cache.KindFile {
				return nil
			}
			fi, err := os.Lstat(filepath.Join(b.dir, ent.Path))
			if err != nil {
				return err
			}
			if now := localdir.Fingerprint(fi); now != ent.Local {
				stale++
				if stale < 5 {
					t.Errorf("%s: the cache holds %+v, the file is %+v", ent.Path, ent.Local, now)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if stale > 0 {
		t.Errorf("%d of 301 pulled files have a stale fingerprint in the cache", stale)
	}
}

// TestConflictCopyPushedAtOnce: a node that pulls a peer's losing edit,
// the peer's own conflict copy of it and a later edit in one round makes
// the conflict copy and pushes it within that round, leaving nothing
// queued (sync --once would say it left files to push).
func TestConflictCopyPushedAtOnce(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	alice := c.add("alice", small)
	bob := c.add("bob", small)
	alice.write(t, "plan.txt", []byte("first plan\n"))
	alice.round(t)
	bob.round(t)
	alice.write(t, "plan.txt", []byte("alice's plan\n"))
	bob.write(t, "plan.txt", []byte("bob's plan\n"))
	older := time.Now().Add(-time.Hour) // bob's edit loses
	if err := os.Chtimes(filepath.Join(bob.dir, "plan.txt"), older, older); err != nil {
		t.Fatal(err)
	}
	alice.round(t)
	bob.round(t) // bob's edit, then his conflict copy of it
	bob.write(t, "plan.txt", []byte("bob's plan\n"))
	if err := os.Chtimes(filepath.Join(bob.dir, "plan.txt"), older, older); err != nil {
		t.Fatal(err)
	}
	bob.round(t)
	alice.round(t)
	st, err := alice.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Queue.Empty() {
		t.Errorf("alice's round left %+v queued", st.Queue)
	}
}
