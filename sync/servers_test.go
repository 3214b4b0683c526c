package sync_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
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
