package sync_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	gosync "sync"
	"testing"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
)

// openRelay opens rawURL with the whole wrapper stack, as escalefs does.
func openRelay(t *testing.T, rawURL string, opts relay.Options) relay.Relay {
	t.Helper()
	r, err := all.Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// overServer runs the multi-node scenarios over one real server: three
// engines propagate every kind of change, settle a conflict alike, and
// collect blobs once every puller has them.
func overServer(t *testing.T, open func(t *testing.T) relay.Relay) {
	if canCreate(open(t)) {
		t.Run("TwoFirstNodes", func(t *testing.T) { twoFirstNodes(t, open) })
	}
	t.Run("Propagation", func(t *testing.T) {
		c := newCluster(t, open(t))
		c.add("a", small)
		c.add("b", small)
		c.add("c", small)
		propagation(t, c)
	})
	t.Run("ConflictAndCollection", func(t *testing.T) {
		r := open(t)
		c := newCluster(t, r)
		a := c.add("a", small)
		b := c.add("b", small)
		c.register()
		a.write(t, "f.txt", []byte("from a"))
		b.write(t, "f.txt", []byte("from b"))
		a.round(t)
		b.round(t)
		c.settle()
		got := c.sameTrees()
		if len(got) != 2 {
			t.Fatalf("want f.txt and one conflict copy, have %v", got)
		}
		if blobs := c.blobsOf(a); len(blobs) != 0 {
			t.Errorf("a's blobs left after every ack: %v", blobs)
		}
	})
}

func TestOverPureFTPd(t *testing.T) {
	t.Parallel()
	s := testserver.StartPureFTPd(t)
	overServer(t, func(t *testing.T) relay.Relay {
		u, _ := s.NewRelayDir(t, "ftp")
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	})
}

func TestOverVsftpd(t *testing.T) {
	t.Parallel()
	s := testserver.StartVsftpd(t)
	overServer(t, func(t *testing.T) relay.Relay {
		u, _ := s.NewRelayDir(t, "ftp")
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	})
}

func TestOverApache(t *testing.T) {
	t.Parallel()
	s := testserver.StartApache(t, testserver.DAVOptions{})
	overServer(t, func(t *testing.T) relay.Relay {
		raw, _ := s.Subdir(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(s.User)
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	})
}

func TestOverNginx(t *testing.T) {
	t.Parallel()
	s := testserver.StartNginx(t, testserver.DAVOptions{})
	overServer(t, func(t *testing.T) relay.Relay {
		raw, _ := s.Subdir(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(s.User)
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	})
}

func TestOverSSHD(t *testing.T) {
	t.Parallel()
	s := testserver.StartSSHD(t)
	overServer(t, func(t *testing.T) relay.Relay {
		u, _ := s.NewRelayDir(t)
		return openRelay(t, u.String(), relay.Options{
			Getenv:    func(string) string { return "" },
			NetrcFile: os.DevNull,
			SSH:       relay.SSHOptions{KeyFile: s.KeyFile, KnownHostsFile: s.KnownHosts},
		})
	})
}

func TestOverSeaweedFS(t *testing.T) {
	t.Parallel()
	s := testserver.StartSeaweedFS(t)
	open := func(t *testing.T) relay.Relay {
		return openRelay(t, s.URL(s.NewPrefix(t)), s.Options())
	}
	overServer(t, open)
	t.Run("EventualListing", func(t *testing.T) { eventualListing(t, open(t), 2) })
}

// canCreate reports whether r creates exclusively.
func canCreate(r relay.Relay) bool {
	c, ok := r.(relay.Creator)
	return ok && !errors.Is(c.Create(context.Background(), "probe", relay.BytesPayload(nil)), relay.ErrUnsupported)
}

// twoFirstNodes starts two nodes at once on empty relays, again and again
// so that their creations race: where the relay creates exclusively
// (relay.Creator), both always end in one repository, exactly one of them
// having made it. Elsewhere two may each read back their own; the node
// whose escale.json was replaced then joins the other at its first
// listing, which the command tests cover.
func twoFirstNodes(t *testing.T, open func(t *testing.T) relay.Relay) {
	secret := crypto.GenerateKey()
	for i := range 8 {
		r := open(t)
		var repos [2]*escsync.Repository
		var errs [2]error
		var start, done gosync.WaitGroup
		start.Add(1)
		for k := range 2 {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				repos[k], errs[k] = escsync.OpenRepository(context.Background(), r, secret, escsync.RepoOptions{Create: true,
					KDF: crypto.KDFParams{}})
			}()
		}
		start.Done()
		done.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("try %d: %v, %v", i, errs[0], errs[1])
		}
		if repos[0].ID != repos[1].ID {
			t.Fatalf("try %d: two repositories, %s and %s", i, repos[0].ID, repos[1].ID)
		}
		if repos[0].Created == repos[1].Created {
			t.Errorf("try %d: created %v and %v, want exactly one creator", i, repos[0].Created, repos[1].Created)
		}
	}
}

func TestTwoFirstNodesOverFile(t *testing.T) {
	twoFirstNodes(t, func(t *testing.T) relay.Relay { return fileRelay(t) })
}
