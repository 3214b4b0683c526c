package sync

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/proto"
)

// Requests (docs/format.md §12): a node that cannot fetch the content of a
// change (its blobs were collected before it came, as for a node joining
// late, or a snapshot names no content) asks for it in its next records; a
// node that holds that content pushes it again, under the version it has,
// which every node but the asker already has and ignores.

const (
	metaWanted     = "sync/wanted"      // []proto.Request: content this node lacks
	metaRequestDue = "sync/request-due" // present: a new request waits for a record
	// metaReposting is a reposting: when the requests last went out, and
	// how long they wait before they go out again unanswered.
	metaReposting = "sync/request-reposting"
	// metaWantedSince is map[path]time.Time: when each request was made.
	metaWantedSince = "sync/wanted-since"
	// maxPosted bounds the requests one record carries.
	maxPosted = 1000
	// payloadRepush marks a queue item pushed again for a peer's request.
	payloadRepush = "repush"
)

// The requests still unanswered go out again after firstRepost, then after
// twice as long each time, up to maxRepost: an answer the relay lost or
// damaged is asked for again, whether or not the node writes heartbeats.
const (
	firstRepost = time.Minute
	maxRepost   = time.Hour
)

// reposting is when this node's requests last went out, and the wait before
// they go out again.
type reposting struct {
	At   time.Time     `json:"at"`
	Wait time.Duration `json:"wait"`
}

func loadReposting(tx *cache.Tx) (reposting, bool, error) {
	var r reposting
	b, ok, err := tx.Meta(metaReposting)
	if err != nil || !ok {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("engine state %q: %w: %w", metaReposting, err, cache.ErrCorrupt)
	}
	return r, true, nil
}

// repostDue reports whether requests wait unanswered past their wait.
func repostDue(tx *cache.Tx, now time.Time) (bool, error) {
	r, ok, err := loadReposting(tx)
	if err != nil || !ok {
		return false, err
	}
	return !now.Before(r.At.Add(r.Wait)), nil
}

// posted records that the requests went out at now: the next time waits
// twice as long as the last (firstRepost the first time).
func posted(tx *cache.Tx, now time.Time) error {
	r, ok, err := loadReposting(tx)
	if err != nil {
		return err
	}
	r.Wait = min(2*r.Wait, maxRepost)
	if !ok || r.Wait <= 0 {
		r.Wait = firstRepost
	}
	r.At = now
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.SetMeta(metaReposting, b)
}

func loadWanted(tx *cache.Tx) ([]proto.Request, error) {
	b, ok, err := tx.Meta(metaWanted)
	if err != nil || !ok {
		return nil, err
	}
	var w []proto.Request
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("engine state %q: %w: %w", metaWanted, err, cache.ErrCorrupt)
	}
	return w, nil
}

func loadWantedSince(tx *cache.Tx) (map[string]time.Time, error) {
	b, ok, err := tx.Meta(metaWantedSince)
	if err != nil || !ok {
		return map[string]time.Time{}, err
	}
	m := map[string]time.Time{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("engine state %q: %w: %w", metaWantedSince, err, cache.ErrCorrupt)
	}
	return m, nil
}

// saveWantedSince keeps since for the paths of w only.
func saveWantedSince(tx *cache.Tx, w []proto.Request, since map[string]time.Time) error {
	for p := range since {
		if !slices.ContainsFunc(w, func(r proto.Request) bool { return r.Path == p }) {
			delete(since, p)
		}
	}
	if len(since) == 0 {
		return tx.DeleteMeta(metaWantedSince)
	}
	b, err := json.Marshal(since)
	if err != nil {
		return err
	}
	return tx.SetMeta(metaWantedSince, b)
}

func saveWanted(tx *cache.Tx, w []proto.Request) error {
	since, err := loadWantedSince(tx)
	if err != nil {
		return err
	}
	if err := saveWantedSince(tx, w, since); err != nil {
		return err
	}
	if len(w) == 0 {
		if err := tx.DeleteMeta(metaReposting); err != nil {
			return err
		}
		return tx.DeleteMeta(metaWanted)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return tx.SetMeta(metaWanted, b)
}

// want records that this node lacks the content hash at path, to ask for it.
func (e *Engine) want(path string, hash [32]byte) error {
	return e.store.Update(func(tx *cache.Tx) error {
		w, err := loadWanted(tx)
		if err != nil {
			return err
		}
		r := proto.Request{Path: path, Hash: hash}
		if slices.Contains(w, r) {
			return nil
		}
		w = slices.DeleteFunc(w, func(o proto.Request) bool { return o.Path == path })
		w = append(w, r)
		if err := saveWanted(tx, w); err != nil {
			return err
		}
		since, err := loadWantedSince(tx)
		if err != nil {
			return err
		}
		since[path] = e.clock.Now()
		if err := saveWantedSince(tx, w, since); err != nil {
			return err
		}
		// A new request goes out at once, and the waits start again.
		if err := tx.DeleteMeta(metaReposting); err != nil {
			return err
		}
		e.wanting.Store(true)
		e.log.Info("asking the other nodes for content missing on the relay", "path", path)
		return tx.SetMeta(metaRequestDue, []byte{1})
	})
}

// satisfied forgets the requests for path: a version of it was installed.
func satisfied(tx *cache.Tx, path string) error {
	w, err := loadWanted(tx)
	if err != nil || len(w) == 0 {
		return err
	}
	n := len(w)
	w = slices.DeleteFunc(w, func(o proto.Request) bool { return o.Path == path })
	if len(w) == n {
		return nil
	}
	return saveWanted(tx, w)
}

// answer queues, for each of a peer's requests, the file this node holds
// with that content, to be pushed again.
func (e *Engine) answer(peer crypto.NodeID, reqs []proto.Request) error {
	if len(reqs) == 0 || e.cfg.Mode == proto.ModeDownload {
		return nil
	}
	return e.store.Update(func(tx *cache.Tx) error {
		for _, r := range reqs {
			ent, ok, err := tx.Get(r.Path)
			if err != nil {
				return err
			}
			if !ok || ent.Deleted || ent.Kind != cache.KindFile || ent.Hash != r.Hash ||
				ent.Local == (cache.LocalStat{}) || !e.mayRead(ent) || len(ent.Version) == 0 {
				continue
			}
			payload := []byte(payloadRepush)
			if ent.Dirty {
				payload = nil // pushed anyway, as a new version
			}
			if _, err := tx.Enqueue(r.Path, payload); err != nil {
				return err
			}
			e.log.Info("pushing a file again for a peer that lacks it", "path", r.Path, "node", e.nodeLabel(peer.String()))
		}
		return nil
	})
}

// answered forgets the request for content hash at path, if there is one.
func (e *Engine) answered(path string, hash [32]byte) error {
	if !e.wanting.Load() {
		return nil // nothing ever asked for in this run: no lookup per pulled file
	}
	var found bool
	err := e.store.View(func(tx *cache.Tx) error {
		w, err := loadWanted(tx)
		found = slices.Contains(w, proto.Request{Path: path, Hash: hash})
		return err
	})
	if err != nil || !found {
		return err
	}
	return e.store.Update(func(tx *cache.Tx) error {
		w, err := loadWanted(tx)
		if err != nil {
			return err
		}
		return saveWanted(tx, slices.DeleteFunc(w, func(o proto.Request) bool { return o.Path == path && o.Hash == hash }))
	})
}

// Waiting is a file whose content this node asked its peers for: the relay
// lost or damaged it, or collected it before this node came.
type Waiting struct {
	Path  string
	Since time.Time // when it was first asked for; zero if unknown
}

// ReadWaiting returns the files whose content the node of store waits for
// from a peer, oldest first.
func ReadWaiting(store *cache.Store) ([]Waiting, error) {
	var out []Waiting
	err := store.View(func(tx *cache.Tx) error {
		w, err := loadWanted(tx)
		if err != nil {
			return err
		}
		since, err := loadWantedSince(tx)
		if err != nil {
			return err
		}
		for _, r := range w {
			out = append(out, Waiting{Path: r.Path, Since: since[r.Path]})
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Waiting) int { return a.Since.Compare(b.Since) })
	return out, err
}
