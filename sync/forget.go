package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// Forgetting a node (docs/format.md §12.13): a node that will not come back
// (a retired machine) holds collection back until the lock timeout. Any
// other node may publish a forget record about it, nodes/<writer>/forget/
// <node>, saying "forget node as of its record up_to". Every node that
// reads it stops waiting for that node's acknowledgements as long as the
// node's log goes no further than up_to; a node that writes again counts
// again. Nothing of the forgotten node is deleted by it.

// KindForget is the kind a forget record is sealed under (with sequence
// number 0 and its writer's node ID).
const KindForget = "forget"

// ForgetRequestsDir is where, in the control directory, forget requests
// wait for the running engine, one JSON file (ForgetRequest) each.
const ForgetRequestsDir = "forget-requests"

// ForgetRequest asks a running engine to publish that it forgets Node (32
// hex digits) as of its record UpTo.
type ForgetRequest struct {
	Node string `json:"node"`
	UpTo uint64 `json:"up_to"`
}

// ErrForgetSelf is returned for a request to forget the node itself.
var ErrForgetSelf = errors.New("a node cannot forget itself")

// sealForget seals writer's forget record about node.
func sealForget(sealer *crypto.RecordSealer, writer, node crypto.NodeID, upTo uint64, now time.Time) ([]byte, error) {
	plain, err := proto.EncodeForget(proto.Forget{Version: proto.MinFormatVersion, Node: node, UpTo: upTo, Time: now})
	if err != nil {
		return nil, err
	}
	plain = proto.Pad(plain)
	return sealer.Seal(crypto.RecordContext{Node: writer, Kind: KindForget}, plain)
}

// readForget reads and opens writer's forget record about node.
func readForget(ctx context.Context, r Getter, sealer *crypto.RecordSealer, writer, node crypto.NodeID) (proto.Forget, error) {
	name := layout.ForgetName(writer, node)
	plain, err := readRecord(ctx, r, sealer, name, crypto.RecordContext{Node: writer, Kind: KindForget})
	if err != nil {
		return proto.Forget{}, err
	}
	f, err := proto.DecodeForget(plain)
	if err == nil && f.Node != node {
		err = fmt.Errorf("names node %s", f.Node)
	}
	if err != nil {
		return proto.Forget{}, fmt.Errorf("record %s: %w: %w", name, err, ErrBadRecord)
	}
	return f, nil
}

// PublishForget publishes, as the node whose cache store is, that it
// forgets node as of its record upTo: for a caller that holds the cache
// while no engine runs (a running one takes a ForgetRequest instead).
// The cache must be a node's of repo.
func PublishForget(ctx context.Context, r Relay, repo *Repository, store *cache.Store, node crypto.NodeID, upTo uint64, now time.Time) error {
	var self crypto.NodeID
	err := store.View(func(tx *cache.Tx) error {
		h, ok, err := tx.Meta(cache.MetaConfigHash)
		if err != nil {
			return err
		}
		if ok && !bytes.Equal(h, repo.Hash[:]) {
			return fmt.Errorf("the cache %s belongs to another repository: %w", store.Path(), ErrRepoChanged)
		}
		b, ok, err := tx.Meta(cache.MetaNodeID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the cache %s holds no node yet (it never synced)", store.Path())
		}
		if self, err = crypto.ParseNodeID(string(b)); err != nil {
			return fmt.Errorf("cache node ID: %w: %w", err, cache.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if node == self {
		return ErrForgetSelf
	}
	sealed, err := sealForget(crypto.NewRecordSealer(repo.Keys, repo.ID, rand.Reader), self, node, upTo, now)
	if err != nil {
		return err
	}
	if err := r.Put(ctx, layout.ForgetName(self, node), relay.BytesPayload(sealed)); err != nil {
		return fmt.Errorf("publishing the forget record: %w", err)
	}
	return nil
}

// Forget publishes that this node forgets node as of its record upTo: no
// node waits for node's acknowledgements any more while node's log goes no
// further. It takes effect here at the next Pull.
func (e *Engine) Forget(ctx context.Context, node crypto.NodeID, upTo uint64) error {
	if node == e.self {
		return ErrForgetSelf
	}
	sealed, err := sealForget(e.sealer, e.self, node, upTo, e.clock.Now())
	if err != nil {
		return err
	}
	if err := e.r.Put(ctx, layout.ForgetName(e.self, node), relay.BytesPayload(sealed)); err != nil {
		return fmt.Errorf("publishing the forget record: %w", err)
	}
	e.log.Info("forgot a node: no node waits for its acknowledgements any more, unless it writes again",
		"node", node.String(), "up_to", upTo)
	return nil
}

// applyForgetRequests publishes the forget requests waiting in the control
// directory, oldest first. A request that fails on the relay stays for the
// next round; a malformed one is dropped.
func (e *Engine) applyForgetRequests(ctx context.Context) {
	if e.cfg.Control == "" {
		return
	}
	paths, err := requestFiles(filepath.Join(e.cfg.Control, ForgetRequestsDir))
	if err != nil {
		e.log.Warn("reading forget requests", "err", err)
		return
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r ForgetRequest
		var node crypto.NodeID
		if err = json.Unmarshal(b, &r); err == nil {
			node, err = crypto.ParseNodeID(r.Node)
		}
		if err == nil {
			err = e.Forget(ctx, node, r.UpTo)
			if err != nil && !errors.Is(err, ErrForgetSelf) {
				e.log.Warn("forget request: trying again at the next round", "node", r.Node, "err", err)
				continue
			}
		}
		if err != nil {
			e.log.Warn("dropping a forget request", "file", p, "err", err)
		}
		_ = os.Remove(p)
	}
}

// forgetSeen is a forget record as a listing showed it and as it read.
type forgetSeen struct {
	size         int64
	mod          time.Time
	writer, node crypto.NodeID
	upTo         uint64
	valid        bool // it opened and decoded
}

// noteForgets reads the forget records of a listing (those not read yet)
// and works out which peers are forgotten: those named by one whose log
// goes no further than its up_to. This node deletes its own forget records
// whose node came back, and writes a record at its next push when it finds
// itself forgotten, so that it counts again.
func (e *Engine) noteForgets(ctx context.Context, listed []relay.ObjectInfo, peers map[crypto.NodeID]*peerListing) {
	seen := make(map[string]forgetSeen, len(listed))
	for _, oi := range listed {
		o := layout.Parse(oi.Name)
		writer, node := o.Node, o.Forgotten
		if old, ok := e.forgets[oi.Name]; ok && old.size == oi.Size && old.mod.Equal(oi.ModTime) {
			seen[oi.Name] = old
			continue
		}
		st := forgetSeen{size: oi.Size, mod: oi.ModTime, writer: writer, node: node}
		f, err := readForget(ctx, e.r, e.sealer, writer, node)
		switch {
		case errors.Is(err, ErrBadRecord):
			e.log.Warn("ignoring a forget record that does not open", "writer", writer.String(), "node", node.String(), "err", err)
		case err != nil:
			e.log.Debug("reading a forget record; trying again at the next listing", "name", oi.Name, "err", err)
			continue
		default:
			st.upTo, st.valid = f.UpTo, true
		}
		seen[oi.Name] = st
	}
	e.forgets = seen

	upTo := make(map[crypto.NodeID]uint64)
	by := make(map[crypto.NodeID][]string)
	for name, st := range seen {
		if !st.valid || st.writer == st.node {
			continue
		}
		if st.node == e.self {
			e.forgottenSelf(st)
			continue
		}
		if pl := peers[st.node]; pl != nil && pl.max > st.upTo {
			// Back: it wrote after it was forgotten.
			if st.writer == e.self {
				if err := e.r.Delete(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
					e.log.Warn("deleting a forget record of a node that came back", "node", st.node.String(), "err", err)
				}
			}
			continue
		}
		if s, ok := upTo[st.node]; !ok || st.upTo > s {
			upTo[st.node] = st.upTo
		}
		by[st.node] = append(by[st.node], st.writer.String())
	}
	for node, s := range upTo {
		if _, was := e.forgotten[node]; !was {
			w := by[node]
			slices.Sort(w)
			e.log.Info("peer forgotten: it holds no collection back unless it writes again", "node", node.String(),
				"up_to", s, "by", strings.Join(w, ","))
		}
	}
	for node := range e.forgotten {
		if _, still := upTo[node]; !still {
			e.log.Info("forgotten peer counts again", "node", node.String())
		}
	}
	e.forgotten = upTo
}

// forgottenSelf makes this node write a record at its next push when a
// peer forgot it as of its latest record: it is alive, and counts again
// once its peers see it write.
func (e *Engine) forgottenSelf(f forgetSeen) {
	err := e.store.Update(func(tx *cache.Tx) error {
		next, ok, err := tx.MetaUint64(cache.MetaNextSeq)
		if err != nil || !ok || next == 0 || next-1 > f.upTo {
			return err
		}
		e.log.Info("a peer forgot this node; writing a record so that it counts again", "by", f.writer.String(), "up_to", f.upTo)
		return tx.SetMeta(metaAckDue, []byte{1})
	})
	if err != nil {
		e.log.Warn("noting that a peer forgot this node", "err", err)
	}
}

// isForgotten reports whether peer id, whose log goes up to maxSeq, is
// forgotten: it holds no collection back.
func (e *Engine) isForgotten(id crypto.NodeID, maxSeq uint64) bool {
	s, ok := e.forgotten[id]
	return ok && maxSeq <= s
}
