package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/migrate"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

func fileRelay(t *testing.T) relay.Relay {
	t.Helper()
	r, err := file.New(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func put(t *testing.T, r relay.Relay, name string, data []byte) {
	t.Helper()
	if err := r.Put(context.Background(), name, relay.BytesPayload(data)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, r relay.Relay, name string) ([]byte, error) {
	t.Helper()
	var data []byte
	err := r.Get(context.Background(), name, 0, -1, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	return data, err
}

func names(t *testing.T, r relay.Relay) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	if err := r.List(context.Background(), "", func(oi relay.ObjectInfo) error {
		out[oi.Name] = oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMove(t *testing.T) {
	ctx := context.Background()
	old, dst := fileRelay(t), fileRelay(t)
	repo, err := escsync.OpenRepository(ctx, old, crypto.GenerateKey(), escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	node := crypto.NewNodeID()
	big := bytes.Repeat([]byte("0123456789abcdef"), 200<<10) // 3.2 MiB: through a temporary file
	put(t, old, "nodes/"+node.String()+"/log/0000000000000000", []byte("record 0"))
	put(t, old, "blobs/"+node.String()+"/00112233445566778899aabbccddeeff", big)
	put(t, old, "tmp/"+node.String()+"/upload", []byte("not part of it"))
	put(t, old, "foreign.txt", []byte("not part of it"))

	m := escsync.Moved{URL: "file:///somewhere/new", Time: time.Unix(1795547030, 0), Node: node}
	res, err := migrate.Move(ctx, old, dst, repo, m, migrate.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Marker || res.Copied != 3 || res.Resume {
		t.Fatalf("result %+v: want the marker and 3 objects copied", res)
	}
	got := names(t, dst)
	if len(got) != 3 || got["blobs/"+node.String()+"/00112233445566778899aabbccddeeff"] != int64(len(big)) {
		t.Fatalf("new relay holds %v", got)
	}
	me, err := escsync.ReadMoved(ctx, old, repo)
	if err != nil || me.Moved.URL != m.URL {
		t.Fatalf("marker %v, %v", me, err)
	}

	// Run again: nothing to copy, the marker is kept.
	res, err = migrate.Move(ctx, old, dst, repo, m, migrate.Options{})
	if err != nil || res.Marker || res.Copied != 0 || !res.Resume {
		t.Fatalf("again: %+v, %v", res, err)
	}
	// Elsewhere: refused.
	m2 := m
	m2.URL = "file:///third"
	if _, err := migrate.Move(ctx, old, fileRelay(t), repo, m2, migrate.Options{}); !errors.Is(err, migrate.ErrAlreadyMoved) {
		t.Fatalf("moving a moved repository elsewhere: %v", err)
	}

	// Moving back to the old relay deletes its stale marker first.
	back := escsync.Moved{URL: "file:///somewhere/old", Time: time.Unix(1795547040, 0), Node: node}
	res, err = migrate.Move(ctx, dst, old, repo, back, migrate.Options{})
	if err != nil || !res.StaleMarker || !res.Marker {
		t.Fatalf("moving back: %+v, %v", res, err)
	}
	if _, err := get(t, old, layout.MovedName); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the stale marker is still on the relay moved back to: %v", err)
	}
}

func TestMoveRefusesAnotherRepository(t *testing.T) {
	ctx := context.Background()
	old, dst := fileRelay(t), fileRelay(t)
	repo, err := escsync.OpenRepository(ctx, old, crypto.GenerateKey(), escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := escsync.OpenRepository(ctx, dst, crypto.GenerateKey(), escsync.RepoOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	before := names(t, dst)
	m := escsync.Moved{URL: "file:///x", Time: time.Now(), Node: crypto.NewNodeID()}
	if _, err := migrate.Move(ctx, old, dst, repo, m, migrate.Options{}); !errors.Is(err, migrate.ErrOtherRepository) {
		t.Fatalf("Move into another repository: %v", err)
	}
	if _, err := get(t, old, layout.MovedName); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a marker was written: %v", err)
	}
	if after := names(t, dst); len(after) != len(before) {
		t.Fatalf("the other repository changed: %v -> %v", before, after)
	}
	// Objects without escale.json are refused too.
	third := fileRelay(t)
	put(t, third, "nodes/"+crypto.NewNodeID().String()+"/log/0000000000000000", []byte("x"))
	if _, err := migrate.Move(ctx, old, third, repo, m, migrate.Options{}); !errors.Is(err, migrate.ErrOtherRepository) {
		t.Fatalf("Move into a relay with stray objects: %v", err)
	}
}
