package cache_test

import (
	"errors"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/escalefs/escalefs/cache"
)

func chunkID(b byte) [32]byte { return [32]byte{b, b, b} }

// TestChunkIndex: the chunks of a path are recorded as a whole, found by
// ID in every file that holds them, replaced, and dropped.
func TestChunkIndex(t *testing.T) {
	s, _ := newStore(t)
	la := cache.LocalStat{Size: 300, MTimeNs: 1, Inode: 7, CTimeNs: 2}
	lb := cache.LocalStat{Size: 200, MTimeNs: -5, Inode: 8, CTimeNs: 3}
	update(t, s, func(tx *cache.Tx) error {
		if err := tx.SetChunks("dir/a.img", la, []cache.ChunkSpan{
			{ID: chunkID(1), Offset: 0, Length: 100}, {ID: chunkID(2), Offset: 100, Length: 200},
		}); err != nil {
			return err
		}
		return tx.SetChunks("b.img", lb, []cache.ChunkSpan{{ID: chunkID(2), Offset: 0, Length: 200}})
	})
	find := func(id [32]byte) []cache.ChunkPlace {
		var out []cache.ChunkPlace
		view(t, s, func(tx *cache.Tx) error {
			var err error
			out, err = tx.FindChunk(id)
			return err
		})
		return out
	}
	want := []cache.ChunkPlace{{Path: "b.img", Offset: 0, Length: 200, Local: lb}, {Path: "dir/a.img", Offset: 100, Length: 200, Local: la}}
	if got := find(chunkID(2)); !slices.Equal(got, want) {
		t.Errorf("chunk 2 at %+v, want %+v", got, want)
	}
	if got := find(chunkID(9)); len(got) != 0 {
		t.Errorf("an unknown chunk at %+v", got)
	}
	// A new version of a.img: its old chunks go.
	la2 := la
	la2.CTimeNs = 9
	update(t, s, func(tx *cache.Tx) error {
		return tx.SetChunks("dir/a.img", la2, []cache.ChunkSpan{{ID: chunkID(3), Offset: 0, Length: 50}})
	})
	if got := find(chunkID(1)); len(got) != 0 {
		t.Errorf("a replaced chunk is still found: %+v", got)
	}
	if got := find(chunkID(2)); len(got) != 1 || got[0].Path != "b.img" {
		t.Errorf("chunk 2 after a.img changed: %+v", got)
	}
	if got := find(chunkID(3)); len(got) != 1 || got[0].Local != la2 {
		t.Errorf("chunk 3: %+v", got)
	}
	update(t, s, func(tx *cache.Tx) error {
		if err := tx.DropChunks("b.img"); err != nil {
			return err
		}
		return tx.DropChunks("never/indexed")
	})
	if got := find(chunkID(2)); len(got) != 0 {
		t.Errorf("a dropped path's chunk is still found: %+v", got)
	}
	update(t, s, func(tx *cache.Tx) error {
		err := tx.SetChunks("c", la, []cache.ChunkSpan{{ID: chunkID(4), Offset: -1, Length: 5}})
		if err == nil {
			t.Error("a chunk at a negative offset was recorded")
		}
		if err := tx.SetChunks("/abs", la, nil); err == nil {
			t.Error("an invalid path was recorded")
		}
		return nil
	})
	view(t, s, func(tx *cache.Tx) error {
		if err := tx.SetChunks("x", la, nil); !errors.Is(err, cache.ErrReadOnly) {
			t.Errorf("SetChunks in a View: %v, want ErrReadOnly", err)
		}
		return nil
	})
}

// TestMigrateToChunkIndex: a cache of schema version 1 (without the chunk
// index) is migrated: its entries stay, and chunks can be recorded.
func TestMigrateToChunkIndex(t *testing.T) {
	path := closedStore(t, func(s *cache.Store) {
		if err := s.Put(file("kept")); err != nil {
			t.Fatal(err)
		}
	})
	// Back to version 1: no chunk buckets.
	poke(t, path, func(tx *bolt.Tx) error {
		for _, b := range []string{"chunks", "path-chunks", "sent-chunks"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("sys")).Put([]byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	s := openAt(t, path, cache.Options{})
	update(t, s, func(tx *cache.Tx) error {
		if _, ok, err := tx.Get("kept"); err != nil || !ok {
			t.Errorf("entry lost by the migration: %v", err)
		}
		return tx.SetChunks("kept", cache.LocalStat{Size: 1}, []cache.ChunkSpan{{ID: chunkID(1), Length: 1}})
	})
}

// TestSentChunks: where a pushed chunk is, recorded and read back.
func TestSentChunks(t *testing.T) {
	s, _ := newStore(t)
	want := cache.SentChunk{Blob: [16]byte{1, 2}, Size: 8<<20 + 300, Sum: [32]byte{9}, Offset: 5 << 20}
	update(t, s, func(tx *cache.Tx) error { return tx.SetSent(chunkID(1), want) })
	view(t, s, func(tx *cache.Tx) error {
		got, ok, err := tx.Sent(chunkID(1))
		if err != nil || !ok || got != want {
			t.Errorf("Sent = %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if _, ok, err := tx.Sent(chunkID(2)); ok || err != nil {
			t.Errorf("an unknown chunk: %v, %v", ok, err)
		}
		return nil
	})
}

// TestChunksGoWithTheFile: a path recorded deleted, made a directory, or
// forgotten loses its chunks; a file's new version keeps them until it is
// indexed again.
func TestChunksGoWithTheFile(t *testing.T) {
	s, _ := newStore(t)
	for i, p := range []string{"gone", "now-dir", "forgotten", "edited"} {
		update(t, s, func(tx *cache.Tx) error {
			if err := tx.Put(file(p)); err != nil {
				return err
			}
			return tx.SetChunks(p, cache.LocalStat{Size: 1}, []cache.ChunkSpan{{ID: chunkID(byte(10 + i)), Length: 1}})
		})
	}
	update(t, s, func(tx *cache.Tx) error {
		gone := file("gone")
		gone.Deleted = true
		if err := tx.Put(gone); err != nil {
			return err
		}
		if err := tx.Put(dir("now-dir")); err != nil {
			return err
		}
		if err := tx.Delete("forgotten"); err != nil {
			return err
		}
		edited := file("edited")
		edited.Size = 5
		return tx.Put(edited)
	})
	view(t, s, func(tx *cache.Tx) error {
		for i, p := range []string{"gone", "now-dir", "forgotten", "edited"} {
			places, err := tx.FindChunk(chunkID(byte(10 + i)))
			if err != nil {
				return err
			}
			if want := p == "edited"; (len(places) == 1) != want {
				t.Errorf("%s: chunk places %+v, want kept %v", p, places, want)
			}
		}
		return nil
	})
}
