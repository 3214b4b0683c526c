package cache_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/escalefs/escalefs/cache"
)

// Child processes: the test binary re-executed with childEnv set runs one
// of these instead of the tests.
const (
	childEnv     = "ESCALEFS_CACHE_TEST_CHILD"
	childPathEnv = "ESCALEFS_CACHE_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		crashChild(os.Getenv(childPathEnv))
	case "hold":
		holdChild(os.Getenv(childPathEnv))
	}
	fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, os.Getenv(childEnv))
	os.Exit(2)
}

// child starts the test binary as a child of the given kind. Its stdout
// is returned as a line scanner.
func child(t *testing.T, kind, path string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The race detector would otherwise wait a second before the child exits.
	cmd.Env = append(os.Environ(), childEnv+"="+kind, childPathEnv+"="+path,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout), stdin, stderr
}

func childFail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

// holdChild opens the cache, says so, and keeps it open until its stdin
// is closed.
func holdChild(path string) {
	s, err := cache.Open(path, cache.Options{})
	if err != nil {
		childFail(err)
	}
	fmt.Println("open")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		childFail(err)
	}
	os.Exit(0)
}

func TestOpenInUse(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		s, path := newStore(t)
		_, err := cache.Open(path, cache.Options{Timeout: 20 * time.Millisecond})
		checkInUse(t, err, path, os.Getpid())
		if err := s.Put(file("still/works")); err != nil {
			t.Errorf("first Store broken by the failed Open: %v", err)
		}
	})
	t.Run("other process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		cmd, out, stdin, stderr := child(t, "hold", path)
		if !out.Scan() || out.Text() != "open" {
			t.Fatalf("child did not open the cache: %q %v; stderr: %s", out.Text(), out.Err(), stderr)
		}
		_, err := cache.Open(path, cache.Options{Timeout: 20 * time.Millisecond})
		checkInUse(t, err, path, cmd.Process.Pid)

		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v; stderr: %s", err, stderr)
		}
		openAt(t, path, cache.Options{Timeout: 20 * time.Millisecond})
	})
}

func checkInUse(t *testing.T, err error, path string, pid int) {
	t.Helper()
	if !errors.Is(err, cache.ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	want := fmt.Sprintf("cache %s is in use by another escalefs process (pid %d)", path, pid)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	var iu *cache.InUseError
	if !errors.As(err, &iu) || iu.PID != pid {
		t.Errorf("error %v: want a *cache.InUseError with PID %d", err, pid)
	}
}

// crashEntry is what the crash child writes in transaction i.
func crashEntry(i uint64) cache.Entry {
	return cache.Entry{
		Path:    fmt.Sprintf("log/%08d", i),
		Kind:    cache.KindFile,
		Version: vv{"peer": i},
		Hash:    sha256.Sum256(binary.BigEndian.AppendUint64(nil, i)),
		Size:    int64(i),
		ModTime: time.Unix(int64(i), int64(i)).UTC(),
		Origin:  "peer",
		Remote:  bytes.Repeat([]byte{byte(i)}, 100+int(i%300)),
	}
}

// crashState is a per-peer state large enough that transactions touch
// several pages.
func crashState(i uint64) []byte { return bytes.Repeat(binary.BigEndian.AppendUint64(nil, i), 1024) }

// crashChild writes transactions 1, 2, … each with an entry, the peer's
// sequence number, a queue item, the next sequence number and the peer's
// state, reporting each commit on stdout, until it is killed.
func crashChild(path string) {
	s, err := cache.Open(path, cache.Options{})
	if err != nil {
		childFail(err)
	}
	var seq uint64
	if err := s.View(func(tx *cache.Tx) (err error) {
		seq, _, err = tx.PeerSeq("peer")
		return err
	}); err != nil {
		childFail(err)
	}
	for i := seq + 1; ; i++ {
		err := s.Update(func(tx *cache.Tx) error {
			e := crashEntry(i)
			if err := tx.Put(e); err != nil {
				return err
			}
			if err := tx.SetPeerSeq("peer", i); err != nil {
				return err
			}
			if _, err := tx.Enqueue(e.Path, e.Remote); err != nil {
				return err
			}
			if err := tx.SetPeerState("peer", crashState(i)); err != nil {
				return err
			}
			return tx.SetMetaUint64(cache.MetaNextSeq, i+1)
		})
		if err != nil {
			childFail(err)
		}
		fmt.Printf("committed %d\n", i)
	}
}

// TestCrashRecovery kills a writing process with SIGKILL several times and
// checks after each that the cache opens, passes bbolt's consistency check
// and holds exactly the transactions committed, each complete.
func TestCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	const rounds, perRound = 3, 60
	var total uint64
	for round := range rounds {
		cmd, out, _, stderr := child(t, "crash", path)
		var last uint64
		for n := 0; n < perRound; n++ {
			if !out.Scan() {
				t.Fatalf("round %d: child stopped after %d commits: %v; stderr: %s", round, n, out.Err(), stderr)
			}
			if _, err := fmt.Sscanf(out.Text(), "committed %d", &last); err != nil {
				t.Fatalf("round %d: child said %q", round, out.Text())
			}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-transaction more often than not
			t.Fatal(err)
		}
		_ = cmd.Wait()

		checkBolt(t, path)
		s, err := cache.Open(path, cache.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		seq := checkCrashState(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if seq < last || seq < total+perRound {
			t.Fatalf("round %d: %d transactions survived, but the child reported %d committed", round, seq, last)
		}
		t.Logf("round %d: child reported %d, cache holds %d", round, last, seq)
		total = seq
	}
}

// checkCrashState checks that the cache holds transactions 1…seq of
// crashChild, each complete, and nothing else; it returns seq.
func checkCrashState(t *testing.T, s *cache.Store) uint64 {
	t.Helper()
	var seq uint64
	view(t, s, func(tx *cache.Tx) error {
		seq, _, _ = tx.PeerSeq("peer")
		i := uint64(0)
		err := tx.Walk("", func(e cache.Entry) error {
			i++
			if want := crashEntry(i); !reflect.DeepEqual(e, want) {
				return fmt.Errorf("entry %d = %+v, want %+v", i, e, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if i != seq {
			return fmt.Errorf("%d entries but peer sequence %d", i, seq)
		}
		items, err := tx.Peek(0)
		if err != nil {
			return err
		}
		n, err := tx.QueueLen()
		if err != nil {
			return err
		}
		if uint64(len(items)) != seq || uint64(n) != seq {
			return fmt.Errorf("%d queue items, QueueLen %d, peer sequence %d", len(items), n, seq)
		}
		for j, it := range items {
			if want := crashEntry(uint64(j) + 1); it.Path != want.Path || !bytes.Equal(it.Payload, want.Remote) {
				return fmt.Errorf("queue item %d = %s, want %s", j, it.Path, want.Path)
			}
		}
		next, _, err := tx.MetaUint64(cache.MetaNextSeq)
		if err != nil || next != seq+1 {
			return fmt.Errorf("next sequence %d (%v), want %d", next, err, seq+1)
		}
		state, _, err := tx.PeerState("peer")
		if err != nil || !bytes.Equal(state, crashState(seq)) {
			return fmt.Errorf("peer state is not that of transaction %d (%v)", seq, err)
		}
		return nil
	})
	return seq
}

// checkBolt runs bbolt's own consistency check on the file.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bbolt open: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
}

// poke changes a closed cache file directly through bbolt.
func poke(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func closedStore(t *testing.T, setup func(s *cache.Store)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenSchema(t *testing.T) {
	setSchema := func(v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			if v == nil {
				return tx.Bucket([]byte("sys")).Delete([]byte("schema"))
			}
			return tx.Bucket([]byte("sys")).Put([]byte("schema"), v)
		}
	}
	tests := []struct {
		name  string
		poke  func(tx *bolt.Tx) error
		is    error
		says  string
		bytes []byte // file content instead of a cache, if set
	}{
		{name: "newer", poke: setSchema(binary.BigEndian.AppendUint64(nil, 3)), is: cache.ErrSchemaTooNew,
			says: "schema version 3, this escalefs supports up to 2; upgrade escalefs"},
		{name: "much newer", poke: setSchema(binary.BigEndian.AppendUint64(nil, 1<<40)), is: cache.ErrSchemaTooNew,
			says: fmt.Sprintf("schema version %d", uint64(1)<<40)},
		{name: "version zero", poke: setSchema(make([]byte, 8)), is: cache.ErrCorrupt, says: "no schema version"},
		{name: "missing", poke: setSchema(nil), is: cache.ErrCorrupt, says: "no schema version"},
		{name: "malformed", poke: setSchema([]byte{1}), is: cache.ErrCorrupt, says: "1 bytes, want 8"},
		{name: "foreign bbolt file", poke: func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte("sys")); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("other-app"))
			return err
		}, is: cache.ErrCorrupt, says: "not an escalefs cache"},
		{name: "not a database", bytes: bytes.Repeat([]byte("not bbolt "), 1000), is: cache.ErrCorrupt,
			says: "not a cache database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if tt.bytes != nil {
				path = filepath.Join(t.TempDir(), "cache.db")
				if err := os.WriteFile(path, tt.bytes, 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				path = closedStore(t, nil)
				poke(t, path, tt.poke)
			}
			s, err := cache.Open(path, cache.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want %v saying %q and naming %s", err, tt.is, tt.says, path)
			}
			// The failed Open released the file.
			if tt.bytes == nil {
				poke(t, path, func(*bolt.Tx) error { return nil })
			}
		})
	}
	t.Run("empty file becomes a cache", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openAt(t, path, cache.Options{})
		if err := s.Put(file("a")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMigration(t *testing.T) {
	setMeta := func(k string) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte(k), []byte("done")) }
	}
	boom := errors.New("boom")
	fail := func(*bolt.Tx) error { return boom }
	noop := func(*bolt.Tx) error { return nil } // the package's own step 1 to 2
	metaKeys := func(t *testing.T, path string) (keys []string) {
		s := openAt(t, path, cache.Options{})
		view(t, s, func(tx *cache.Tx) error {
			for _, k := range []string{"m3", "m4"} {
				if _, ok, _ := tx.Meta(k); ok {
					keys = append(keys, k)
				}
			}
			if _, ok, _ := tx.Get("kept"); !ok {
				t.Errorf("entry lost by migration")
			}
			return nil
		})
		return keys
	}

	t.Run("two steps", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) { _ = s.Put(file("kept")) })
		var logs bytes.Buffer
		s, err := cache.OpenSchema(path, cache.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 4,
			noop, setMeta("m3"), setMeta("m4"))
		if err != nil {
			t.Fatalf("migrating open: %v", err)
		}
		s.Close()
		if !strings.Contains(logs.String(), "cache migrated") || !strings.Contains(logs.String(), "from=2 to=4") {
			t.Errorf("log %q does not report the migration", logs.String())
		}
		// Now at version 4: this package (version 2) refuses it...
		_, err = cache.Open(path, cache.Options{})
		if !errors.Is(err, cache.ErrSchemaTooNew) || !strings.Contains(err.Error(), "schema version 4") {
			t.Fatalf("Open of a migrated cache = %v, want ErrSchemaTooNew", err)
		}
		// ...and a version-4 open does not migrate again.
		s, err = cache.OpenSchema(path, cache.Options{}, 4, fail, fail, fail)
		if err != nil {
			t.Fatalf("second open at version 4: %v", err)
		}
		view(t, s, func(tx *cache.Tx) error {
			for _, k := range []string{"m3", "m4"} {
				if _, ok, _ := tx.Meta(k); !ok {
					t.Errorf("migration step %s did not run", k)
				}
			}
			return nil
		})
		s.Close()
	})
	t.Run("failing step rolls back", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) { _ = s.Put(file("kept")) })
		_, err := cache.OpenSchema(path, cache.Options{}, 4, noop, setMeta("m3"), fail)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "schema version 3 to 4") {
			t.Fatalf("OpenSchema = %v, want boom in step 2 to 3", err)
		}
		if keys := metaKeys(t, path); keys != nil {
			t.Errorf("failed migration left %q behind", keys)
		}
	})
	t.Run("missing step", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) { _ = s.Put(file("kept")) })
		_, err := cache.OpenSchema(path, cache.Options{}, 4, noop, setMeta("m3"))
		if err == nil || !strings.Contains(err.Error(), "no migration from schema version 2 to 4") {
			t.Fatalf("OpenSchema = %v, want no migration", err)
		}
		if keys := metaKeys(t, path); keys != nil {
			t.Errorf("refused migration left %q behind", keys)
		}
	})
}

func TestCorruptRecords(t *testing.T) {
	t.Run("entry value", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) { putAll(t, s, []string{"dir", "dir/a", "dir/bad", "dir/c"}) })
		poke(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("entries")).Put(cache.PathKey("dir/bad"), []byte("\x01garbage"))
		})
		s := openAt(t, path, cache.Options{})
		_, ok, err := s.Get("dir/bad")
		if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), `"dir/bad"`) || ok {
			t.Errorf("Get = %v, %v; want ErrCorrupt naming dir/bad", ok, err)
		}
		for name, iter := range map[string]func(tx *cache.Tx, fn func(cache.Entry) error) error{
			"Walk":     func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Walk("", fn) },
			"Children": func(tx *cache.Tx, fn func(cache.Entry) error) error { return tx.Children("dir", fn) },
		} {
			err := s.View(func(tx *cache.Tx) error { return iter(tx, func(cache.Entry) error { return nil }) })
			if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), `"dir/bad"`) {
				t.Errorf("%s = %v, want ErrCorrupt naming dir/bad", name, err)
			}
		}
		if _, ok, err := s.Get("dir/c"); !ok || err != nil {
			t.Errorf("Get of a sound neighbour = %v, %v", ok, err)
		}
		// The bad record can be overwritten or deleted.
		if err := s.Put(file("dir/bad")); err != nil {
			t.Errorf("Put over a corrupt record: %v", err)
		}
		if got := children(t, s, "dir"); len(got) != 3 {
			t.Errorf("Children after repair = %q", got)
		}
	})
	t.Run("entry key", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) { putAll(t, s, []string{"a"}) })
		poke(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("entries")).Put([]byte("b/c"), cache.EncodeEntry(file("b")))
		})
		s := openAt(t, path, cache.Options{})
		err := s.View(func(tx *cache.Tx) error { return tx.Walk("", func(cache.Entry) error { return nil }) })
		if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), `"b/c"`) {
			t.Errorf("Walk = %v, want ErrCorrupt naming the key", err)
		}
	})
	t.Run("queue item", func(t *testing.T) {
		var ids []uint64
		path := closedStore(t, func(s *cache.Store) {
			update(t, s, func(tx *cache.Tx) error {
				for _, p := range []string{"q1", "q2", "q3"} {
					id, err := tx.Enqueue(p, nil)
					ids = append(ids, id)
					if err != nil {
						return err
					}
				}
				return nil
			})
		})
		poke(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("queue")).Put(binary.BigEndian.AppendUint64(nil, ids[1]), []byte{1, 0xff})
		})
		s := openAt(t, path, cache.Options{})
		var items []cache.QueueItem
		err := s.View(func(tx *cache.Tx) (err error) { items, err = tx.Peek(0); return err })
		if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("queue item %d", ids[1])) {
			t.Errorf("Peek = %v, want ErrCorrupt naming item %d", err, ids[1])
		}
		if len(items) != 1 || items[0].Path != "q1" {
			t.Errorf("Peek returned %+v before the bad item, want q1", items)
		}
		// The damaged item can still be removed, and its path queued again.
		remove(t, s, ids[1])
		checkLen(t, s, 2)
		enqueue(t, s, "q2", "")
		checkLen(t, s, 3)
		if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"q1", "q3", "q2"}) {
			t.Errorf("queue = %q", got)
		}
	})
	t.Run("peer sequence", func(t *testing.T) {
		path := closedStore(t, func(s *cache.Store) {
			update(t, s, func(tx *cache.Tx) error { return tx.SetPeerSeq("n7", 3) })
		})
		poke(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("peer-seq")).Put([]byte("n7"), []byte{3}) })
		s := openAt(t, path, cache.Options{})
		err := s.View(func(tx *cache.Tx) error { _, _, err := tx.PeerSeq("n7"); return err })
		if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), `"n7"`) {
			t.Errorf("PeerSeq = %v, want ErrCorrupt naming n7", err)
		}
		err = s.View(func(tx *cache.Tx) error { _, err := tx.PeerSeqs(); return err })
		if !errors.Is(err, cache.ErrCorrupt) {
			t.Errorf("PeerSeqs = %v, want ErrCorrupt", err)
		}
	})
}

func TestPeersAndMetaPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *cache.Tx) error {
		return errors.Join(
			tx.SetPeerSeq("alpha", 41),
			tx.SetPeerSeq("alpha", 42), // replaces
			tx.SetPeerSeq("beta", 0),
			tx.SetPeerSeq("gamma", 1<<63),
			tx.SetPeerState("alpha", []byte("last seen: monday")),
			tx.SetPeerState("beta", nil),
			tx.SetPeerState("gamma", []byte("g")),
			tx.SetMeta(cache.MetaNodeID, []byte("0123456789abcdef")),
			tx.SetMeta(cache.MetaConfigHash, []byte{0, 1, 2}),
			tx.SetMetaUint64(cache.MetaNextSeq, 17),
			tx.SetMeta("gone", []byte("x")),
			tx.DeleteMeta("gone"),
			tx.DeleteMeta("never-set"),
			tx.DeletePeer("gamma"),
			tx.DeletePeer("never-seen"),
		)
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, cache.Options{})
	view(t, s, func(tx *cache.Tx) error {
		seqs, err := tx.PeerSeqs()
		if err != nil {
			return err
		}
		if want := map[string]uint64{"alpha": 42, "beta": 0}; !maps.Equal(seqs, want) {
			t.Errorf("PeerSeqs = %v, want %v", seqs, want)
		}
		for _, tt := range []struct {
			node string
			seq  uint64
			ok   bool
		}{{"alpha", 42, true}, {"beta", 0, true}, {"gamma", 0, false}, {"delta", 0, false}} {
			seq, ok, err := tx.PeerSeq(tt.node)
			if seq != tt.seq || ok != tt.ok || err != nil {
				t.Errorf("PeerSeq(%s) = %d, %v, %v; want %d, %v", tt.node, seq, ok, err, tt.seq, tt.ok)
			}
		}
		for _, tt := range []struct {
			node  string
			state []byte
			ok    bool
		}{{"alpha", []byte("last seen: monday"), true}, {"beta", []byte{}, true}, {"gamma", nil, false}} {
			st, ok, err := tx.PeerState(tt.node)
			if !bytes.Equal(st, tt.state) || ok != tt.ok || err != nil {
				t.Errorf("PeerState(%s) = %q, %v, %v; want %q, %v", tt.node, st, ok, err, tt.state, tt.ok)
			}
		}
		for _, tt := range []struct {
			key   string
			value []byte
			ok    bool
		}{{cache.MetaNodeID, []byte("0123456789abcdef"), true}, {cache.MetaConfigHash, []byte{0, 1, 2}, true},
			{"gone", nil, false}, {"never-set", nil, false}} {
			v, ok, err := tx.Meta(tt.key)
			if !bytes.Equal(v, tt.value) || ok != tt.ok || err != nil {
				t.Errorf("Meta(%s) = %q, %v, %v; want %q, %v", tt.key, v, ok, err, tt.value, tt.ok)
			}
		}
		if n, ok, err := tx.MetaUint64(cache.MetaNextSeq); n != 17 || !ok || err != nil {
			t.Errorf("MetaUint64(next-seq) = %d, %v, %v", n, ok, err)
		}
		if _, _, err := tx.MetaUint64(cache.MetaNodeID); !errors.Is(err, cache.ErrCorrupt) {
			t.Errorf("MetaUint64 of a 16-byte value = %v, want ErrCorrupt", err)
		}
		if n, ok, err := tx.MetaUint64("unset"); n != 0 || ok || err != nil {
			t.Errorf("MetaUint64(unset) = %d, %v, %v", n, ok, err)
		}
		return nil
	})
	// Returned slices are copies.
	view(t, s, func(tx *cache.Tx) error {
		v, _, _ := tx.Meta(cache.MetaNodeID)
		v[0] = 'X'
		return nil
	})
	view(t, s, func(tx *cache.Tx) error {
		if v, _, _ := tx.Meta(cache.MetaNodeID); v[0] != '0' {
			t.Errorf("changing a returned value changed the store")
		}
		return nil
	})
}

// snapshot is everything a test can see in a cache.
type snapshot struct {
	Entries []cache.Entry
	Queue   []cache.QueueItem
	Len     int
	Seqs    map[string]uint64
	State   []byte
	Meta    []byte
}

func takeSnapshot(t *testing.T, s *cache.Store) snapshot {
	t.Helper()
	var sn snapshot
	view(t, s, func(tx *cache.Tx) (err error) {
		err = tx.Walk("", func(e cache.Entry) error { sn.Entries = append(sn.Entries, e); return nil })
		if err != nil {
			return err
		}
		if sn.Queue, err = tx.Peek(0); err != nil {
			return err
		}
		if sn.Len, err = tx.QueueLen(); err != nil {
			return err
		}
		if sn.Seqs, err = tx.PeerSeqs(); err != nil {
			return err
		}
		if sn.State, _, err = tx.PeerState("p"); err != nil {
			return err
		}
		sn.Meta, _, err = tx.Meta("k")
		return err
	})
	return sn
}

func TestUpdateAtomic(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		end  func() error // how fn ends after its changes
	}{
		{"error", func() error { return boom }},
		{"panic", func() error { panic(boom) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			var aID uint64
			update(t, s, func(tx *cache.Tx) (err error) {
				if aID, err = tx.Enqueue("a", []byte("1")); err != nil {
					return err
				}
				return errors.Join(tx.Put(file("a")), tx.Put(file("b")), tx.SetPeerSeq("p", 5),
					tx.SetPeerState("p", []byte("s")), tx.SetMeta("k", []byte("v")))
			})
			before := takeSnapshot(t, s)

			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = r.(error)
					}
				}()
				err = s.Update(func(tx *cache.Tx) error {
					changed := file("a")
					changed.Size, changed.Dirty = 99, true
					_, err1 := tx.Enqueue("c", nil)
					_, err2 := tx.Enqueue("a", []byte("2"))
					if err := errors.Join(tx.Put(changed), tx.Put(file("c")), tx.Delete("b"), err1, err2,
						tx.Remove(aID), tx.SetPeerSeq("p", 6), tx.SetPeerSeq("q", 1),
						tx.SetPeerState("p", []byte("t")), tx.SetMeta("k", []byte("w"))); err != nil {
						return err
					}
					// fn sees its own writes.
					if e, ok, _ := tx.Get("c"); !ok || e.Path != "c" {
						t.Errorf("Get in the same Update does not see Put")
					}
					return tt.end()
				})
			}()
			if !errors.Is(err, boom) {
				t.Fatalf("Update = %v, want boom", err)
			}
			if after := takeSnapshot(t, s); !reflect.DeepEqual(after, before) {
				t.Errorf("failed Update left changes:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestTxMisuse(t *testing.T) {
	s, path := newStore(t)
	var kept *cache.Tx
	view(t, s, func(tx *cache.Tx) error { kept = tx; return nil })
	if _, _, err := kept.Get("a"); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Get on an ended Tx = %v, want ErrClosed", err)
	}
	update(t, s, func(tx *cache.Tx) error { kept = tx; return nil })
	if err := kept.Put(file("a")); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Put on an ended Tx = %v, want ErrClosed", err)
	}

	writes := map[string]func(tx *cache.Tx) error{
		"Put":           func(tx *cache.Tx) error { return tx.Put(file("a")) },
		"Delete":        func(tx *cache.Tx) error { return tx.Delete("a") },
		"SetPeerSeq":    func(tx *cache.Tx) error { return tx.SetPeerSeq("n", 1) },
		"SetPeerState":  func(tx *cache.Tx) error { return tx.SetPeerState("n", nil) },
		"DeletePeer":    func(tx *cache.Tx) error { return tx.DeletePeer("n") },
		"SetMeta":       func(tx *cache.Tx) error { return tx.SetMeta("k", nil) },
		"SetMetaUint64": func(tx *cache.Tx) error { return tx.SetMetaUint64("k", 1) },
		"DeleteMeta":    func(tx *cache.Tx) error { return tx.DeleteMeta("k") },
	}
	for name, w := range writes {
		if err := s.View(w); !errors.Is(err, cache.ErrReadOnly) {
			t.Errorf("%s in View = %v, want ErrReadOnly", name, err)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, _, err := s.Get("a"); !errors.Is(err, cache.ErrClosed) || !strings.Contains(err.Error(), path) {
		t.Errorf("Get after Close = %v, want ErrClosed naming the file", err)
	}
	if err := s.Put(file("a")); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if _, err := s.QueueLen(); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("QueueLen after Close = %v, want ErrClosed", err)
	}
	if s.Path() != path {
		t.Errorf("Path = %q, want %q", s.Path(), path)
	}
}

// TestConcurrent runs writers and readers at once; every reader must see a
// consistent snapshot: the counter in meta equals the number of entries.
func TestConcurrent(t *testing.T) {
	s, _ := newStore(t)
	const writers, perWriter, readers = 4, 25, 4
	var wg, rg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				err := s.Update(func(tx *cache.Tx) error {
					n, _, err := tx.MetaUint64("count")
					if err != nil {
						return err
					}
					if err := tx.Put(file(fmt.Sprintf("w%d/%03d", w, i))); err != nil {
						return err
					}
					if _, err := tx.Enqueue(fmt.Sprintf("w%d/%03d", w, i), nil); err != nil {
						return err
					}
					return tx.SetMetaUint64("count", n+1)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.View(func(tx *cache.Tx) error {
					n, _, err := tx.MetaUint64("count")
					if err != nil {
						return err
					}
					entries := 0
					if err := tx.Walk("", func(cache.Entry) error { entries++; return nil }); err != nil {
						return err
					}
					q, err := tx.QueueLen()
					if err != nil {
						return err
					}
					if uint64(entries) != n || uint64(q) != n {
						return fmt.Errorf("snapshot with count %d, %d entries, %d queued", n, entries, q)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := queueLen(t, s); n != writers*perWriter {
		t.Errorf("QueueLen = %d, want %d", n, writers*perWriter)
	}
}
