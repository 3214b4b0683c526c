package cache_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/escalefs/escalefs/cache"
)

func enqueue(t *testing.T, s *cache.Store, path, payload string) uint64 {
	t.Helper()
	var id uint64
	update(t, s, func(tx *cache.Tx) (err error) {
		var p []byte
		if payload != "" {
			p = []byte(payload)
		}
		id, err = tx.Enqueue(path, p)
		return err
	})
	return id
}

func peek(t *testing.T, s *cache.Store, n int) []cache.QueueItem {
	t.Helper()
	var items []cache.QueueItem
	view(t, s, func(tx *cache.Tx) (err error) {
		items, err = tx.Peek(n)
		return err
	})
	return items
}

func queuePaths(items []cache.QueueItem) []string {
	var ps []string
	for _, it := range items {
		ps = append(ps, it.Path)
	}
	return ps
}

func remove(t *testing.T, s *cache.Store, ids ...uint64) {
	t.Helper()
	update(t, s, func(tx *cache.Tx) error { return tx.Remove(ids...) })
}

func queueLen(t *testing.T, s *cache.Store) int {
	t.Helper()
	n, err := s.QueueLen()
	if err != nil {
		t.Fatalf("QueueLen: %v", err)
	}
	return n
}

// checkLen checks that QueueLen agrees with the items there are.
func checkLen(t *testing.T, s *cache.Store, want int) {
	t.Helper()
	if n, items := queueLen(t, s), peek(t, s, 0); n != want || len(items) != want {
		t.Fatalf("QueueLen = %d, Peek(0) has %d items; want %d", n, len(items), want)
	}
}

func TestQueueFIFO(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	s := openAt(t, filepath.Join(t.TempDir(), "c.db"), cache.Options{Now: clock.Now})
	checkLen(t, s, 0)
	var ids []uint64
	for _, p := range []string{"c", "a", "b/x", "d"} {
		ids = append(ids, enqueue(t, s, p, "payload of "+p))
		clock.Add(time.Second)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("IDs not increasing: %v", ids)
	}
	checkLen(t, s, 4)
	items := peek(t, s, 0)
	if got, want := queuePaths(items), []string{"c", "a", "b/x", "d"}; !slices.Equal(got, want) {
		t.Fatalf("Peek(0) = %q, want %q", got, want)
	}
	want0 := cache.QueueItem{ID: ids[0], Path: "c", Payload: []byte("payload of c"),
		Enqueued: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	if !reflect.DeepEqual(items[0], want0) {
		t.Errorf("first item = %#v, want %#v", items[0], want0)
	}
	if got := queuePaths(peek(t, s, 2)); !slices.Equal(got, []string{"c", "a"}) {
		t.Errorf("Peek(2) = %q", got)
	}
	if got := peek(t, s, 10); len(got) != 4 {
		t.Errorf("Peek(10) = %d items, want 4", len(got))
	}

	remove(t, s, ids[0], ids[2])
	checkLen(t, s, 2)
	if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("after Remove: %q, want [a d]", got)
	}
	remove(t, s, ids[0], 999) // already gone, never existed: no-op
	checkLen(t, s, 2)
	remove(t, s) // nothing
	remove(t, s, ids[1], ids[3])
	checkLen(t, s, 0)
	if id := enqueue(t, s, "c", ""); id <= ids[3] {
		t.Errorf("ID %d reused after removal (last was %d)", id, ids[3])
	}
	if it := peek(t, s, 1)[0]; it.Payload != nil {
		t.Errorf("empty payload came back as %#v, want nil", it.Payload)
	}
}

func TestQueueCoalesces(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0).UTC()}
	s := openAt(t, filepath.Join(t.TempDir(), "c.db"), cache.Options{Now: clock.Now})
	a1 := enqueue(t, s, "a", "v1")
	enqueue(t, s, "b", "v1")
	enqueue(t, s, "c", "v1")
	clock.Add(time.Minute)
	a2 := enqueue(t, s, "a", "v2")
	checkLen(t, s, 3)
	items := peek(t, s, 0)
	if got := queuePaths(items); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("after re-enqueue of a: %q, want [b c a] (moved to the back)", got)
	}
	if last := items[2]; last.ID != a2 || string(last.Payload) != "v2" || !last.Enqueued.Equal(clock.Now()) {
		t.Errorf("re-enqueued item = %+v, want ID %d, payload v2, time %v", last, a2, clock.Now())
	}

	// The engine peeked a1 before a was re-enqueued; removing a1 once it
	// is pushed must not drop the newer a2.
	remove(t, s, a1)
	checkLen(t, s, 3)
	remove(t, s, items[0].ID)
	checkLen(t, s, 2)
	if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("queue = %q, want [c a]", got)
	}
	// A re-enqueue after the removal is a fresh item at the back.
	enqueue(t, s, "b", "v3")
	enqueue(t, s, "a", "v3")
	checkLen(t, s, 3)
	if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("queue = %q, want [c b a]", got)
	}
	// Coalescing within one transaction.
	update(t, s, func(tx *cache.Tx) error {
		for range 3 {
			if _, err := tx.Enqueue("c", []byte("again")); err != nil {
				return err
			}
		}
		return nil
	})
	checkLen(t, s, 3)
	if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Fatalf("queue = %q, want [b a c]", got)
	}
}

func TestQueuePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, p := range []string{"x", "y", "z", "x"} {
		ids = append(ids, enqueue(t, s, p, "p-"+p))
	}
	remove(t, s, ids[1])
	want := peek(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, cache.Options{})
	got := peek(t, s, 0)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v, want %+v", got, want)
	}
	checkLen(t, s, 2)
	if id := enqueue(t, s, "w", ""); id <= ids[3] {
		t.Errorf("ID %d after reopen not above the last one, %d", id, ids[3])
	}
	if got := queuePaths(peek(t, s, 0)); !slices.Equal(got, []string{"z", "x", "w"}) {
		t.Errorf("queue = %q, want [z x w]", got)
	}
}

func TestQueueReadOnly(t *testing.T) {
	s, _ := newStore(t)
	err := s.View(func(tx *cache.Tx) error {
		_, err := tx.Enqueue("a", nil)
		return err
	})
	if !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("Enqueue in View = %v, want ErrReadOnly", err)
	}
	if err := s.View(func(tx *cache.Tx) error { return tx.Remove(1) }); !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("Remove in View = %v, want ErrReadOnly", err)
	}
}
