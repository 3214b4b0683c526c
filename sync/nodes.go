package sync

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
	"github.com/escalefs/escalefs/sync/proto"
)

// NodeLister is the part of a relay ListNodes reads.
type NodeLister interface {
	List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error
	Getter
}

// ListOptions configure ListNodes.
type ListOptions struct {
	// Now is what last activity is measured against; zero means now.
	Now time.Time
	// LockTimeout is as Config.LockTimeout: a node silent for longer does
	// not count as a puller. Zero means DefaultLockTimeout, negative never.
	LockTimeout time.Duration
}

// Reasons why a node is not a puller (NodeInfo.NotPuller).
const (
	NotPullerUpload    = "upload mode"
	NotPullerForgotten = "forgotten"
	NotPullerSilent    = "silent beyond the lock timeout"
	// NotPullerUnreadable: none of its records opens with the
	// repository's keys (another repository's node, or the relay's
	// forgery); the nodes ignore it.
	NotPullerUnreadable = "unreadable (ignored)"
)

// NodeInfo is what the relay shows of one node of the repository.
type NodeInfo struct {
	ID crypto.NodeID
	// Name is the node's name, from its newest record or snapshot.
	Name string
	// Mode is the mode its newest log record announces; empty when no log
	// record of it is on the relay (only a snapshot).
	Mode proto.Mode
	// Newest is the highest sequence number of its log on the relay,
	// records and snapshots alike; Records counts its log records there.
	Newest      uint64
	Records     int
	HasSnapshot bool
	// LastActivity is when it wrote its newest record (or heartbeat), by
	// its own clock; the relay's time of that object when the record says
	// none.
	LastActivity time.Time
	// Acks is, per node, the last record of that node's log it
	// acknowledged (its newest record and snapshot together).
	Acks map[crypto.NodeID]uint64
	// Behind is, per other node, how many of that node's records, up to
	// its newest on the relay, this node has not acknowledged; BehindTotal
	// is their sum.
	Behind      map[crypto.NodeID]uint64
	BehindTotal uint64
	// Puller tells whether the other nodes wait for its acknowledgements
	// before they delete what it has not pulled; NotPuller says why not
	// (NotPullerUpload, NotPullerForgotten, NotPullerSilent).
	Puller    bool
	NotPuller string
	// ForgottenBy are the nodes whose forget records about it hold (its
	// log goes no further than ForgottenUpTo, the highest of their
	// up_to), in ascending order.
	ForgottenBy   []crypto.NodeID
	ForgottenUpTo uint64
	// Unreadable: not even its oldest record on the relay opens, so it
	// never was a node of this repository as far as anyone can tell; it
	// is no puller.
	Unreadable bool
	// Err is why its records could not be read; the fields they give are
	// then empty.
	Err error
}

// Forgotten reports whether a forget record about the node holds.
func (n NodeInfo) Forgotten() bool { return len(n.ForgottenBy) > 0 }

// nodeObjects is what a listing of nodes/ shows of one node.
type nodeObjects struct {
	logs    map[uint64]relay.ObjectInfo
	snaps   map[uint64]relay.ObjectInfo
	forgets []crypto.NodeID // the nodes its forget records name
}

// ListNodes lists the nodes of the repository on r, from one listing of
// nodes/ and each node's newest log record and snapshot, opened with repo's
// keys, sorted by name, then ID. A node whose records cannot be read is
// listed with Err set.
func ListNodes(ctx context.Context, r NodeLister, repo *Repository, opts ListOptions) ([]NodeInfo, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	objs, err := listNodeObjects(ctx, r)
	if err != nil {
		return nil, err
	}
	sealer := crypto.NewRecordSealer(repo.Keys, repo.ID, rand.Reader)
	var out []NodeInfo
	newest := make(map[crypto.NodeID]uint64)
	for id, o := range objs {
		if len(o.logs) == 0 && len(o.snaps) == 0 {
			continue // not registered: nothing but forget records
		}
		n := NodeInfo{ID: id, Records: len(o.logs), HasSnapshot: len(o.snaps) > 0}
		for s := range o.logs {
			n.Newest = max(n.Newest, s)
		}
		for s := range o.snaps {
			n.Newest = max(n.Newest, s)
		}
		newest[id] = n.Newest
		n.Err = readNewest(ctx, r, sealer, &n, o)
		if n.Err != nil && !opensOldest(ctx, r, sealer, id, o) {
			n.Unreadable = true
		}
		out = append(out, n)
	}
	applyForgets(ctx, r, sealer, objs, out)
	for i := range out {
		n := &out[i]
		slices.SortFunc(n.ForgottenBy, func(a, b crypto.NodeID) int { return bytes.Compare(a[:], b[:]) })
		n.countBehind(newest)
		n.classify(opts)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// listNodeObjects lists the records, snapshots and forget records under
// nodes/, by writer.
func listNodeObjects(ctx context.Context, r NodeLister) (map[crypto.NodeID]*nodeObjects, error) {
	objs := make(map[crypto.NodeID]*nodeObjects)
	get := func(id crypto.NodeID) *nodeObjects {
		o := objs[id]
		if o == nil {
			o = &nodeObjects{logs: make(map[uint64]relay.ObjectInfo), snaps: make(map[uint64]relay.ObjectInfo)}
			objs[id] = o
		}
		return o
	}
	err := r.List(ctx, layout.NodesDir, func(oi relay.ObjectInfo) error {
		switch o := layout.Parse(oi.Name); o.Kind {
		case layout.Log:
			get(o.Node).logs[o.Seq] = oi
		case layout.Snapshot:
			get(o.Node).snaps[o.Seq] = oi
		case layout.Forget:
			if o.Node != o.Forgotten {
				get(o.Node).forgets = append(get(o.Node).forgets, o.Forgotten)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the relay: %w", err)
	}
	return objs, nil
}

// applyForgets marks the nodes of out that a forget record forgets: it
// holds while their log goes no further than its up_to.
func applyForgets(ctx context.Context, r NodeLister, sealer *crypto.RecordSealer, objs map[crypto.NodeID]*nodeObjects, out []NodeInfo) {
	for w, o := range objs {
		for _, x := range o.forgets {
			i := slices.IndexFunc(out, func(n NodeInfo) bool { return n.ID == x })
			if i < 0 {
				continue
			}
			f, err := readForget(ctx, r, sealer, w, x)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				out[i].Err = errors.Join(out[i].Err, fmt.Errorf("a forget record about it: %w", err))
				continue
			}
			if f.UpTo >= out[i].Newest {
				out[i].ForgottenBy = append(out[i].ForgottenBy, w)
				out[i].ForgottenUpTo = max(out[i].ForgottenUpTo, f.UpTo)
			}
		}
	}
}

// countBehind counts how many records of each other node (newest: their
// newest sequence numbers) n has not acknowledged.
func (n *NodeInfo) countBehind(newest map[crypto.NodeID]uint64) {
	if n.Acks == nil {
		return
	}
	n.Behind = make(map[crypto.NodeID]uint64)
	for peer, last := range newest {
		if peer == n.ID {
			continue
		}
		var behind uint64
		if a, ok := n.Acks[peer]; !ok {
			behind = last + 1
		} else if a < last {
			behind = last - a
		}
		if behind > 0 {
			n.Behind[peer] = behind
			n.BehindTotal += behind
		}
	}
}

// classify says whether n counts as a puller, and if not, why.
func (n *NodeInfo) classify(opts ListOptions) {
	switch {
	case n.Unreadable:
		n.NotPuller = NotPullerUnreadable
	case !n.Mode.Pulls():
		n.NotPuller = NotPullerUpload
	case n.Forgotten():
		n.NotPuller = NotPullerForgotten
	case opts.LockTimeout > 0 && !n.LastActivity.IsZero() && opts.Now.Sub(n.LastActivity) > opts.LockTimeout:
		n.NotPuller = NotPullerSilent
	default:
		n.Puller = true
	}
}

// readNewest fills in what n's newest log record and snapshot say.
// opensOldest reports whether the oldest log record or snapshot of node id
// on the relay opens with the repository's keys: a node whose newest record
// does not open but whose older ones do is a real node with a damaged
// record (a puller until its lock timeout), not a forgery.
func opensOldest(ctx context.Context, r Getter, sealer *crypto.RecordSealer, id crypto.NodeID, o *nodeObjects) bool {
	for _, set := range []struct {
		recs map[uint64]relay.ObjectInfo
		kind string
	}{{o.logs, KindLog}, {o.snaps, KindSnapshot}} {
		if len(set.recs) == 0 {
			continue
		}
		oldest := slices.Min(slices.Collect(maps.Keys(set.recs)))
		_, err := readRecord(ctx, r, sealer, set.recs[oldest].Name, crypto.RecordContext{Node: id, Seq: oldest, Kind: set.kind})
		if err == nil {
			return true
		}
	}
	return false
}

func readNewest(ctx context.Context, r Getter, sealer *crypto.RecordSealer, n *NodeInfo, o *nodeObjects) error {
	n.Acks = make(map[crypto.NodeID]uint64)
	merge := func(acks map[crypto.NodeID]uint64) {
		for id, a := range acks {
			if old, ok := n.Acks[id]; !ok || a > old {
				n.Acks[id] = a
			}
		}
	}
	var logSeq uint64
	if len(o.logs) > 0 {
		for s := range o.logs {
			logSeq = max(logSeq, s)
		}
		oi := o.logs[logSeq]
		plain, err := readRecord(ctx, r, sealer, oi.Name, crypto.RecordContext{Node: n.ID, Seq: logSeq, Kind: KindLog})
		if err != nil {
			n.Acks = nil
			return err
		}
		l, err := proto.DecodeLog(plain)
		if err != nil {
			n.Acks = nil
			return fmt.Errorf("record %s: %w: %w", oi.Name, err, ErrBadRecord)
		}
		n.Name, n.Mode = l.NodeName, l.Mode
		if n.Mode == "" {
			n.Mode = proto.ModeShared
		}
		merge(l.Acks)
		n.LastActivity = l.Time
		if n.LastActivity.IsZero() {
			n.LastActivity = oi.ModTime
		}
	}
	if len(o.snaps) > 0 {
		var seq uint64
		for s := range o.snaps {
			seq = max(seq, s)
		}
		oi := o.snaps[seq]
		plain, err := readRecord(ctx, r, sealer, oi.Name, crypto.RecordContext{Node: n.ID, Seq: seq, Kind: KindSnapshot})
		if errors.Is(err, fs.ErrNotExist) && len(o.logs) > 0 {
			return nil // replaced by a newer one meanwhile
		}
		if err != nil {
			n.Acks = nil
			return err
		}
		s, err := proto.DecodeSnapshot(plain)
		if err != nil {
			n.Acks = nil
			return fmt.Errorf("snapshot %s: %w: %w", oi.Name, err, ErrBadRecord)
		}
		merge(s.Acks)
		if len(o.logs) == 0 || seq > logSeq {
			n.Name = s.NodeName
		}
		if len(o.logs) == 0 {
			n.LastActivity = oi.ModTime
		}
	}
	return nil
}

// readRecord reads the record name from r and opens it under rc.
func readRecord(ctx context.Context, r Getter, sealer *crypto.RecordSealer, name string, rc crypto.RecordContext) ([]byte, error) {
	sealed, err := relay.ReadAll(ctx, r.Get, name, maxRecord)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(sealed) > maxRecord {
		return nil, fmt.Errorf("record %s is larger than %d bytes: %w", name, maxRecord, ErrBadRecord)
	}
	plain, err := sealer.Open(rc, sealed)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w: %w", name, err, ErrBadRecord)
	}
	return plain, nil
}
