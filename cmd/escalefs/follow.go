package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/migrate"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// maxMoveHops bounds how many moved markers a node follows in a row.
const maxMoveHops = 4

// movedStateName is the file, in a node's state directory, that records
// the last move the node followed, so that its own objects are copied
// once per move.
const movedStateName = "moved.json"

// movedState is the content of movedStateName.
type movedState struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Marker string    `json:"marker"` // SHA-256 of the marker's bytes, hex
	Time   time.Time `json:"time"`   // when this node followed it
}

func readMovedState(state string) (movedState, bool) {
	var ms movedState
	data, err := os.ReadFile(filepath.Join(state, movedStateName))
	if err != nil || json.Unmarshal(data, &ms) != nil {
		return ms, false
	}
	return ms, true
}

func writeMovedState(state string, ms movedState) error {
	return writeJSONFile(filepath.Join(state, movedStateName), ms)
}

// followMoves looks for a moved marker on r, the relay the node opened,
// and follows it: it opens the new relay with the node's relay options,
// checks that it holds the same repository, copies there what this node
// published on r that is missing (once per move), and returns the new
// relay and repository, r being closed. A marker that fails to open is
// reported and not followed. When the new relay cannot be opened, the node
// stops with an error that says what to change; its queue stays in its
// state directory.
func (n *node) followMoves(ctx context.Context, r relay.Relay, repo *escsync.Repository, secret crypto.Secret,
	store *cache.Store, state string, opts relay.Options) (relay.Relay, *escsync.Repository, error) {
	for hop := 0; ; hop++ {
		me, err := escsync.ReadMoved(ctx, r, repo)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return r, repo, nil
		case errors.Is(err, escsync.ErrBadMoved):
			n.log.Error("the relay holds a moved marker that is not valid (forged by the relay, damaged, or of another "+
				"repository): not followed; if the repository did move, give this node the new relay with --relay",
				"relay", n.loc, "err", err)
			return r, repo, nil
		case err != nil:
			return nil, nil, n.relayFailed(fmt.Errorf("reading the relay's %s marker: %w", layout.MovedName, err))
		case hop >= maxMoveHops:
			return nil, nil, fmt.Errorf("%v; it moved %d times in a row: the markers may form a loop; give the relay it is on now with --relay",
				me, hop)
		}
		from := n.loc
		n.log.Warn(fmt.Sprintf("the repository moved to %s", me.Moved.URL), "from", from, "by_node", me.Moved.Node.String(),
			"at", me.Moved.Time.UTC().Format(time.RFC3339))
		nr, err := all.Open(ctx, me.Moved.URL, movedRelayOptions(opts, me.Moved))
		var nrepo *escsync.Repository
		if err == nil {
			nrepo, err = escsync.OpenRepository(ctx, nr, secret, escsync.RepoOptions{})
			if err == nil && nrepo.Hash != repo.Hash {
				err = fmt.Errorf("it holds another %s than this repository's", crypto.ConfigName)
			}
			if err != nil {
				nr.Close()
			}
		}
		if err != nil {
			return nil, nil, n.movedStop(me, err, state)
		}
		hash := hex.EncodeToString(me.Hash[:])
		if ms, ok := readMovedState(state); !ok || ms.Marker != hash || ms.From != from {
			if err := n.copyOwn(ctx, r, nr, store, state); err != nil {
				nr.Close()
				return nil, nil, n.relayFailed(fmt.Errorf("following the repository to %s: copying what this node published on %s: %w",
					me.Moved.URL, from, err))
			}
			if err := writeMovedState(state, movedState{From: from, To: me.Moved.URL, Marker: hash, Time: time.Now()}); err != nil {
				n.log.Warn("recording the move in the node's state", "err", err)
			}
		}
		r.Close()
		r, repo = nr, nrepo
		n.loc = nr.Properties().Location
		lines, flags := movedSettings(me.Moved)
		n.log.Warn(fmt.Sprintf("following the repository to %s; give this node %s (or set %s in its configuration table) "+
			"so that it no longer goes through %s", me.Moved.URL, flags, lines, from))
	}
}

// movedRelayOptions are the options to open the relay a marker names:
// the node's own (its credentials), with what the marker says of where the
// relay is (escsync.MovedOptionKeys). For an s3 relay the endpoint and
// region are the marker's, for an sftp relay the pinned host key: the
// node's own were those of the old relay.
func movedRelayOptions(opts relay.Options, m escsync.Moved) relay.Options {
	u, err := relay.ParseURL(m.URL)
	if err != nil {
		return opts
	}
	switch u.Scheme {
	case "s3":
		opts.S3Endpoint, opts.S3Region = m.Options["s3-endpoint"], m.Options["s3-region"]
	case "sftp":
		opts.SSH.HostKeySHA256 = m.Options["host-key-sha256"]
	}
	return opts
}

// movedSettings are the marker's URL and options as configuration lines
// and as flags, for messages that tell the user what to set.
func movedSettings(m escsync.Moved) (lines, flags string) {
	keys := map[string]string{"relay": strconv.Quote(m.URL)}
	for k, v := range m.Options {
		keys[k] = strconv.Quote(v)
	}
	return tomlLines(keys), "--relay " + m.URL + flagsOf(keys)
}

// copyOwn copies this node's own objects that the new relay lacks from the
// old one: what it published there after the repository was copied.
func (n *node) copyOwn(ctx context.Context, old, nr relay.Relay, store *cache.Store, state string) error {
	var self crypto.NodeID
	known := false
	err := store.View(func(tx *cache.Tx) error {
		b, ok, err := tx.Meta(cache.MetaNodeID)
		if err != nil || !ok {
			return err
		}
		self, err = crypto.ParseNodeID(string(b))
		known = err == nil
		return err
	})
	if err != nil || !known {
		return err // a node that never ran published nothing
	}
	sum, err := migrate.Copy(ctx, old, nr, migrate.Options{Logger: n.log, Only: migrate.OwnObjects(self), TempDir: state})
	if err != nil {
		return err
	}
	if sum.Copied > 0 {
		n.log.Info("copied what this node published on the old relay after the move", "objects", sum.Copied, "bytes", sum.Bytes)
	}
	return nil
}

// movedStop is the error of a node that cannot follow its repository.
func (n *node) movedStop(me *escsync.MovedError, cause error, state string) error {
	lines, flags := movedSettings(me.Moved)
	where := "give " + flags
	if cfg := n.g.config.cfg; cfg != nil {
		where = fmt.Sprintf("set %s in this repository's table of %s (or give %s)", lines, cfg.Path, flags)
	}
	// Not wrapping me: runSync would try to follow again.
	return fmt.Errorf("%v. This node could not open the new relay with its current relay options: %v. "+
		"To follow it, %s, with what the new relay needs to log in (--password-file, --netrc, --credentials, --username…), "+
		"and start again. Nothing is lost: this node's queue stays in %s and is pushed to the new relay then",
		me, cause, where, state)
}
