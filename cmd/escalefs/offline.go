package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/lazy"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// firstStartWait bounds the wait between two tries of a node that starts
// for the first time while its relay cannot be reached.
const firstStartWait = time.Minute

// relayDown reports whether err, from opening a relay and its repository,
// means that the relay cannot be reached now, rather than that it refused
// the login or holds no repository, or that the secret is wrong.
func relayDown(err error) bool {
	switch {
	case errors.Is(err, relay.ErrUnreachable):
		return true
	case errors.Is(err, escsync.ErrNoRepository), errors.Is(err, crypto.ErrWrongSecret),
		errors.Is(err, crypto.ErrConfigCorrupt), errors.Is(err, relay.ErrBadURL), errors.Is(err, context.Canceled):
		return false
	}
	return !relay.IsPermanent(err)
}

// openRepo opens the relay and the repository for the folder dir, which
// the state directories prior synced before. When the relay cannot be
// reached:
//   - sync --once fails at once (the "relay unreachable" exit status);
//   - a folder synced before starts offline, from the node's cache: the
//     repository is the one the cache kept, the relay is opened at its
//     first use and again until it answers, and store is the cache,
//     already open;
//   - a first start waits for the relay, trying again with a growing wait,
//     since the repository's configuration is on the relay alone.
func (n *node) openRepo(ctx context.Context, secret crypto.Secret, opts relay.Options, ropts escsync.RepoOptions,
	prior []string) (r relay.Relay, repo *escsync.Repository, store *cache.Store, err error) {
	for wait := time.Second; ; wait = min(2*wait, firstStartWait) {
		r, repo, err = openOnline(ctx, n.f.relayURL, opts, secret, ropts)
		switch {
		case err == nil:
			return r, repo, nil, nil
		case !relayDown(err) || n.f.once:
			return nil, nil, nil, err
		case len(prior) > 0:
			return n.openOffline(ctx, err, secret, opts, prior)
		}
		n.log.Warn("the relay cannot be reached, and this folder never synced through it: the node needs it to start; trying again",
			"in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, nil, fmt.Errorf("stopped while waiting for the relay: %w", err)
		case <-time.After(wait):
		}
	}
}

// openOnline opens the relay and its repository.
func openOnline(ctx context.Context, rawURL string, opts relay.Options, secret crypto.Secret,
	ropts escsync.RepoOptions) (relay.Relay, *escsync.Repository, error) {
	r, err := all.Open(ctx, rawURL, opts)
	if err != nil {
		return nil, nil, err
	}
	repo, err := escsync.OpenRepository(ctx, r, secret, ropts)
	if err != nil {
		r.Close()
		loc := r.Properties().Location
		if errors.Is(err, crypto.ErrWrongSecret) || errors.Is(err, crypto.ErrConfigCorrupt) {
			return nil, nil, fmt.Errorf("unlocking the repository at %s: %w", loc, err)
		}
		return nil, nil, fmt.Errorf("opening the repository at %s: %w", loc, err)
	}
	return r, repo, nil
}

// openOffline starts the node from its cache, in the newest of the state
// directories prior, while the relay cannot be reached (why).
func (n *node) openOffline(ctx context.Context, why error, secret crypto.Secret, opts relay.Options,
	prior []string) (relay.Relay, *escsync.Repository, *cache.Store, error) {
	state := newestState(prior)
	store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{Logger: n.log, Timeout: cacheOpenTimeout})
	if err != nil {
		return nil, nil, nil, err // the caller says why (in use, corrupt)
	}
	repo, err := escsync.KeptRepository(store, secret)
	if err != nil {
		store.Close()
		if errors.Is(err, escsync.ErrNoKeptConfig) {
			return nil, nil, nil, why // an older cache: the relay is needed
		}
		return nil, nil, nil, err
	}
	u, err := relay.ParseURL(n.f.relayURL)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	loc := redactedURL(n.f.relayURL)
	r := lazy.New(func(ctx context.Context) (relay.Relay, error) { return all.Open(ctx, n.f.relayURL, opts) },
		relay.Properties{Scheme: u.Scheme, Location: loc})
	n.log.Warn("the relay cannot be reached: starting from this node's cache; local changes are queued and pushed "+
		"once it answers", "relay", loc, "err", why)
	return r, repo, store, nil
}

// redactedURL is a relay URL without its password, for messages.
func redactedURL(raw string) string {
	u, err := relay.ParseURL(raw)
	if err != nil {
		return "(a relay URL that does not parse)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// newestState is the state directory among dirs whose cache was written
// last: the one the node ran from.
func newestState(dirs []string) string {
	best, bestAt := dirs[0], time.Time{}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(d, "cache.db")); err == nil && fi.ModTime().After(bestAt) {
			best, bestAt = d, fi.ModTime()
		}
	}
	return best
}

// errCreatedTwice means that this node made the repository, and found the
// relay's escale.json replaced by another node's that made it at the same
// moment: its own state is gone, and the node joins the other's.
var errCreatedTwice = errors.New("another node created the repository at the same moment")

// createdTwice reports whether err, from the node's engine, says that the
// repository this node made in this run was replaced by another node's,
// made at the same moment (the relay having no exclusive create). The node
// then leaves it: it deletes what it published, and its state, keeping the
// folder's files, which are pushed to the other repository.
//
// Only a node that made the repository in this run and has seen no other
// node yet takes that to be so, and only when an escale.json is there:
// one that is gone, or that changes under a repository with several
// nodes, is no race of two first nodes.
func (n *node) createdTwice(ctx context.Context, err error) bool {
	if !errors.Is(err, escsync.ErrRepoChanged) || !n.repo.Created || ctx.Err() != nil {
		return false
	}
	if st, serr := n.eng.Status(); serr != nil || len(st.Peers) > 0 {
		return false
	}
	if _, serr := n.relay.Stat(ctx, crypto.ConfigName); serr != nil {
		return false
	}
	n.log.Warn("another node created the repository at the same moment, and the relay kept its escale.json: "+
		"joining that one", "relay", n.loc)
	self := n.eng.Node()
	var names []string
	for _, dir := range []string{layout.NodeDir(self), layout.BlobDir(self)} {
		if err := n.relay.List(ctx, dir, func(oi relay.ObjectInfo) error {
			names = append(names, oi.Name)
			return nil
		}); err != nil {
			n.log.Warn("listing what this node published in the repository it leaves", "err", err)
		}
	}
	for _, name := range names {
		if err := n.relay.Delete(ctx, name); err != nil {
			n.log.Warn("deleting what this node published in the repository it leaves", "name", name, "err", err)
		}
	}
	state := n.state
	n.close()
	if err := os.RemoveAll(state); err != nil {
		n.log.Warn("removing the state of the repository this node leaves", "state", state, "err", err)
	}
	return true
}
