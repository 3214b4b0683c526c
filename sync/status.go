package sync

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/proto"
)

// Status is a snapshot of a node: what it has yet to push and how its
// rounds went. Engine.Status returns it while the engine runs; ReadQueue
// reads the queue of a node whose engine does not run.
type Status struct {
	Queue Queue
	// LastSync is when a round last pushed and pulled without error; zero
	// if none did since the engine started.
	LastSync time.Time
	// Failing reports that the latest round failed. LastError is the
	// error of the latest failed round, even once rounds work again, and
	// LastErrorAt is when it failed.
	Failing     bool
	LastError   error
	LastErrorAt time.Time
	// FailingSince is when the rounds started failing; zero while they
	// work.
	FailingSince time.Time
	// Relay is the state of the relay as the rounds found it: RelayOK,
	// RelayUnreachable (the rounds fail to reach it) or RelayFull (pushes
	// wait for room on it).
	Relay RelayState
	// Stopped is the error that Run returned on, one that retrying cannot
	// fix; nil while Run runs or after it stopped cleanly.
	Stopped error
	Stats   Stats
	// RelayUsage is what the repository held on the relay, in bytes, at
	// the last listing; -1 before the first. Quota is Config.DiskQuota
	// (0: none).
	RelayUsage int64
	Quota      int64
	// Peers are the other nodes this node has seen, in the order it first
	// saw them.
	Peers []Peer
	// Transfers are the uploads and downloads under way; Incoming is what
	// the pull under way has yet to apply.
	Transfers []Transfer
	Incoming  Queue
	// Unpushable are the files that can never be pushed as things stand
	// (larger than the disk quota), by path.
	Unpushable []Unpushable
	// NoRoom are the pulled files that wait for room on the local disk.
	NoRoom []NoRoom
	// Waiting are the files whose content the node asked its peers for,
	// oldest first.
	Waiting []Waiting
	// MassChange is the last pull in this run that replaced or deleted
	// most of the folder's files (mass.go); nil if none did.
	MassChange *MassChange
}

// Unpushable is a file that cannot be pushed whatever the engine waits
// for, and why.
type Unpushable struct {
	Path   string
	Size   int64
	Reason string
}

// RelayState is the state of the relay as a node's rounds find it.
type RelayState string

// The states of the relay.
const (
	RelayOK          RelayState = ""
	RelayUnreachable RelayState = "unreachable"
	RelayFull        RelayState = "full"
)

// Peer is what a node knows of another: when it last wrote and how far
// behind it is in acknowledging this node's records.
type Peer struct {
	ID, Name string
	Mode     proto.Mode
	// LastSeen is when this node last saw the peer write a new record.
	LastSeen time.Time
	// Behind counts this node's published records the peer has not
	// acknowledged yet.
	Behind int
}

// Queue is what a node has yet to push. It is kept on disk, in the node's
// cache, and survives restarts.
type Queue struct {
	// Files counts the paths changed here and not yet pushed: files,
	// directories, links and deletions.
	Files int
	// Bytes is the size of the files' content among them.
	Bytes int64
	// Records counts the records written but not yet published on the
	// relay (their content is uploaded already).
	Records int
}

// add counts change c in q (sign 1), or no longer (-1).
func (q *Queue) add(c proto.Change, sign int) {
	q.Files += sign
	if c.Op == proto.OpPut {
		q.Bytes += int64(sign) * c.Size
	}
}

// Empty reports whether nothing waits to be pushed.
func (q Queue) Empty() bool { return q.Files == 0 && q.Records == 0 }

// ReadQueue reads what waits to be pushed from a node's cache, which may be
// opened read-only (cache.Options.ReadOnly).
func ReadQueue(store *cache.Store) (Queue, error) {
	return readQueue(store, true)
}

// readQueue is ReadQueue for a node whose mode pushes (modePushes) or not:
// the queued paths that Push would drop are not counted.
func readQueue(store *cache.Store, modePushes bool) (Queue, error) {
	var q Queue
	err := store.View(func(tx *cache.Tx) error {
		items, err := tx.Peek(0)
		if err != nil {
			return err
		}
		for _, it := range items {
			ent, ok, err := tx.Get(it.Path)
			if err != nil {
				return err
			}
			// As pushBatch decides what to drop.
			repush := string(it.Payload) == payloadRepush && !ent.Dirty
			switch {
			case !ok, !ent.Dirty && !repush, repush && (ent.Deleted || ent.Kind != cache.KindFile):
				continue
			case !mayPush(ent.Access, modePushes):
				continue
			}
			q.Files++
			if ent.Kind == cache.KindFile && !ent.Deleted {
				q.Bytes += ent.Size
			}
		}
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		for _, r := range ls.Records {
			if !r.Published {
				q.Records++
			}
		}
		return nil
	})
	return q, err
}

// ReadPeers reads from a node's cache (which may be opened read-only) the
// peers it has seen.
func ReadPeers(store *cache.Store) ([]Peer, error) {
	var peers []Peer
	err := store.View(func(tx *cache.Tx) error {
		ls, err := loadLogState(tx)
		if err != nil {
			return err
		}
		self, _, err := tx.Meta(cache.MetaNodeID)
		if err != nil {
			return err
		}
		for _, id := range ls.Peers {
			if id == string(self) {
				continue
			}
			ps, ok, err := loadPeer(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			p := Peer{ID: id, Name: ps.Name, Mode: ps.Mode, LastSeen: ps.LastSeen}
			for _, r := range ls.Records {
				if r.Published && (!ps.HasAcked || r.Seq > ps.Acked) {
					p.Behind++
				}
			}
			peers = append(peers, p)
		}
		return nil
	})
	return peers, err
}

// roundStatus is what Status reports of the engine's rounds, guarded by
// Engine.mu.
type roundStatus struct {
	lastSync  time.Time
	failing   bool
	lastErr   error
	lastErrAt time.Time
	// failingSince is when the rounds started failing, zero while they
	// work.
	failingSince time.Time
	stopped      error
}

// Status returns the node's status: its queue, read from the cache, and how
// its latest rounds went. Unlike the engine's other methods it may be called
// while Run runs, from any goroutine; Config.OnStatus tells when to.
func (e *Engine) Status() (Status, error) {
	q, err := readQueue(e.store, e.cfg.Mode != proto.ModeDownload)
	peers, perr := ReadPeers(e.store)
	trs, in := e.transfers.snapshot()
	noRoom, nerr := ReadNoRoom(e.store)
	waiting, werr := ReadWaiting(e.store)
	err = errors.Join(err, perr, nerr, werr)
	e.mu.Lock()
	defer e.mu.Unlock()
	var unpushable []Unpushable
	for p, size := range e.tooLarge {
		unpushable = append(unpushable, Unpushable{Path: p, Size: size, Reason: "larger than the disk quota: it can never be pushed under this quota"})
	}
	slices.SortFunc(unpushable, func(a, b Unpushable) int { return strings.Compare(a.Path, b.Path) })
	r := e.round
	state := RelayOK
	switch {
	case r.failing && errors.Is(r.lastErr, relay.ErrUnreachable):
		state = RelayUnreachable
	case e.full.Load():
		state = RelayFull
	}
	return Status{
		Unpushable:   unpushable,
		NoRoom:       noRoom,
		Waiting:      waiting,
		MassChange:   e.massChange,
		FailingSince: r.failingSince,
		Relay:        state,
		Queue:        q,
		LastSync:     r.lastSync,
		Failing:      r.failing,
		LastError:    r.lastErr,
		LastErrorAt:  r.lastErrAt,
		Stopped:      r.stopped,
		Stats:        e.stats,
		RelayUsage:   e.usage.Load(),
		Quota:        e.cfg.DiskQuota,
		Peers:        peers,
		Transfers:    trs,
		Incoming:     in,
	}, err
}

// noteRound records the outcome of a round (or of a push between rounds) for
// Status; synced says that the round pulled as well as pushed, so that its
// success is a sync.
func (e *Engine) noteRound(err error, synced bool) {
	now := e.clock.Now()
	e.mu.Lock()
	switch {
	case err != nil:
		if !e.round.failing {
			e.round.failingSince = now
		}
		e.round.failing = true
		e.round.lastErr, e.round.lastErrAt = err, now
	case synced:
		e.round.failing, e.round.failingSince = false, time.Time{}
		e.round.lastSync = now
	default:
		e.round.failing, e.round.failingSince = false, time.Time{}
	}
	e.mu.Unlock()
	e.statusChanged()
}

// noteStopped records the error Run returns on, and tells OnStatus.
func (e *Engine) noteStopped(err error) {
	e.mu.Lock()
	e.round.stopped = err
	e.mu.Unlock()
	e.statusChanged()
}

// statusChanged tells Config.OnStatus that Status may have changed.
func (e *Engine) statusChanged() {
	if e.cfg.OnStatus != nil {
		e.cfg.OnStatus()
	}
}
