// Package migrate moves a repository to another relay (docs/format.md
// §12.14): it copies every object of the repository from the old relay to
// the new one, verifying each, and then leaves on the old relay a sealed
// marker (layout.MovedName) that sends every node to the new one. It needs
// the repository's keys only to seal the marker: the objects are copied
// byte for byte.
package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/backup"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// Source is what the copy reads from.
type Source interface {
	List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error
}

// Dest is what the copy writes to.
type Dest interface {
	Source
	Put(ctx context.Context, name string, p relay.Payload) error
	Delete(ctx context.Context, name string) error
}

// Old is the relay a repository moves from: the marker is put there.
type Old interface {
	Source
	Put(ctx context.Context, name string, p relay.Payload) error
}

var (
	// ErrUnreachable means the new relay could not be listed or written:
	// nothing was changed on the old one.
	ErrUnreachable = errors.New("the new relay cannot be used")
	// ErrOtherRepository means the new relay holds another repository, or
	// objects of one.
	ErrOtherRepository = errors.New("the new relay holds another repository")
	// ErrAlreadyMoved means the old relay's marker names another relay.
	ErrAlreadyMoved = errors.New("the repository already moved to another relay")
	// ErrChanged means an object differs from its listing, or its copy
	// from the original.
	ErrChanged = errors.New("object changed while it was copied")
)

// memLimit is the largest object copied through memory (and read back to
// compare its SHA-256); larger ones go through a temporary file and are
// checked by size.
const memLimit = 1 << 20

// Options tune Copy and Move.
type Options struct {
	// Logger receives progress (info) and notes (debug); nil discards them.
	Logger *slog.Logger
	// TempDir holds the temporary files of large objects ("": os.TempDir).
	TempDir string
	// Only, if set, limits the copy to the names it accepts.
	Only func(name string) bool
	// ProgressEvery is how many objects pass between progress lines
	// (0: 1000).
	ProgressEvery int
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Summary is what a copy did.
type Summary struct {
	Copied   int   // objects put on the new relay
	Bytes    int64 // their size
	Skipped  int   // objects already there with the same size
	Vanished int   // listed objects deleted before they could be read
}

func (s *Summary) add(o Summary) {
	s.Copied += o.Copied
	s.Bytes += o.Bytes
	s.Skipped += o.Skipped
	s.Vanished += o.Vanished
}

// Copy copies every object of the repository on src (escale.json first,
// then nodes/ and blobs/; never tmp/, temporary objects or foreign files)
// that dst does not hold with the same size. Each copy is checked: its size
// as dst lists it, and for objects up to 1 MiB its SHA-256 read back. An
// object deleted between the listing and its read (a running node
// collecting) is skipped. Nothing is deleted on dst.
func Copy(ctx context.Context, src Source, dst Dest, opts Options) (Summary, error) {
	log := opts.logger()
	var sum Summary
	have := map[string]int64{}
	if err := dst.List(ctx, "", func(oi relay.ObjectInfo) error {
		have[oi.Name] = oi.Size
		return nil
	}); err != nil {
		return sum, fmt.Errorf("listing the new relay: %w: %w", ErrUnreachable, err)
	}
	var objects []relay.ObjectInfo
	if err := src.List(ctx, "", func(oi relay.ObjectInfo) error {
		if backup.InRepository(oi.Name) && !relay.IsTempName(oi.Name) && (opts.Only == nil || opts.Only(oi.Name)) {
			objects = append(objects, oi)
		}
		return nil
	}); err != nil {
		return sum, fmt.Errorf("listing the old relay: %w", err)
	}
	// escale.json first, then by name: a copy cut short is recognised
	// as this repository's, and resumed.
	slices.SortFunc(objects, func(a, b relay.ObjectInfo) int {
		switch {
		case a.Name == crypto.ConfigName:
			return -1
		case b.Name == crypto.ConfigName:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	every := opts.ProgressEvery
	if every <= 0 {
		every = 1000
	}
	for i, oi := range objects {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		if size, ok := have[oi.Name]; ok && size == oi.Size {
			sum.Skipped++
			continue
		}
		err := copyObject(ctx, src, dst, oi, opts.TempDir)
		switch {
		case errors.Is(err, errVanished):
			sum.Vanished++
			log.Debug("object deleted since the listing (collected by a running node), skipped", "name", oi.Name)
			continue
		case err != nil:
			return sum, err
		}
		sum.Copied++
		sum.Bytes += oi.Size
		if (i+1)%every == 0 {
			log.Info("migrate progress", "objects", i+1, "of", len(objects), "copied", sum.Copied, "bytes", sum.Bytes)
		}
	}
	return sum, nil
}

var errVanished = errors.New("vanished")

// copyObject copies one object and checks the copy.
func copyObject(ctx context.Context, src Source, dst Dest, oi relay.ObjectInfo, tempDir string) error {
	var payload relay.Payload
	h := sha256.New()
	if oi.Size <= memLimit {
		data, err := relay.ReadAll(ctx, src.Get, oi.Name, memLimit)
		if err != nil {
			return getErr(oi.Name, err)
		}
		if int64(len(data)) != oi.Size {
			return fmt.Errorf("%w: %s has %d bytes, %d were listed; run escalefs migrate again", ErrChanged, oi.Name, len(data), oi.Size)
		}
		h.Write(data)
		payload = relay.BytesPayload(data)
	} else {
		f, err := os.CreateTemp(tempDir, "escalefs-migrate-*")
		if err != nil {
			return fmt.Errorf("temporary file for %s: %w", oi.Name, err)
		}
		defer func() {
			f.Close()
			os.Remove(f.Name())
		}()
		var n int64
		err = src.Get(ctx, oi.Name, 0, -1, func(r io.Reader) error {
			// A retried Get starts over.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return relay.Permanent(err)
			}
			if err := f.Truncate(0); err != nil {
				return relay.Permanent(err)
			}
			h.Reset()
			var err error
			n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, oi.Size+1))
			return err
		})
		if err != nil {
			return getErr(oi.Name, err)
		}
		if n != oi.Size {
			return fmt.Errorf("%w: %s has %d bytes, %d were listed; run escalefs migrate again", ErrChanged, oi.Name, n, oi.Size)
		}
		payload = relay.ReaderAtPayload(f, n)
	}
	if err := dst.Put(ctx, oi.Name, payload); err != nil {
		return fmt.Errorf("writing %s to the new relay: %w", oi.Name, err)
	}
	// Check the copy: its SHA-256 where it is small, its size otherwise.
	if oi.Size <= memLimit {
		back, err := relay.ReadAll(ctx, dst.Get, oi.Name, memLimit)
		if err != nil {
			return fmt.Errorf("reading back %s from the new relay: %w", oi.Name, err)
		}
		if sum := sha256.Sum256(back); !bytes.Equal(sum[:], h.Sum(nil)) {
			return fmt.Errorf("%w: the copy of %s on the new relay differs from the original", ErrChanged, oi.Name)
		}
		return nil
	}
	st, ok := dst.(interface {
		Stat(ctx context.Context, name string) (relay.ObjectInfo, error)
	})
	if !ok {
		return nil
	}
	got, err := st.Stat(ctx, oi.Name)
	if err != nil {
		return fmt.Errorf("checking %s on the new relay: %w", oi.Name, err)
	}
	if got.Size != oi.Size {
		return fmt.Errorf("%w: the copy of %s on the new relay has %d bytes, not %d", ErrChanged, oi.Name, got.Size, oi.Size)
	}
	return nil
}

func getErr(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errVanished
	}
	return fmt.Errorf("reading %s from the old relay: %w", name, err)
}

// readSmall reads an object of at most limit bytes; a missing one yields
// nil and an error wrapping fs.ErrNotExist.
func readSmall(ctx context.Context, r Source, name string, limit int64) ([]byte, error) {
	data, err := relay.ReadAll(ctx, r.Get, name, limit)
	if err == nil && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, err
}

// Plan is what CheckDest found on the new relay.
type Plan struct {
	// Resume is set when the new relay already holds this repository's
	// escale.json: an earlier migrate was interrupted (or this one is run
	// again), and only what is missing is copied.
	Resume bool
	// StaleMarker is set when the new relay holds a moved marker of its
	// own, left when the repository moved away from it before: it is
	// deleted before the old relay's marker is written.
	StaleMarker bool
}

// CheckDest checks that dst can take the repository whose escale.json is
// config: that it can be listed, and holds no repository but this one.
func CheckDest(ctx context.Context, dst Source, config []byte) (Plan, error) {
	var plan Plan
	var objects int
	err := dst.List(ctx, "", func(oi relay.ObjectInfo) error {
		switch {
		case oi.Name == layout.MovedName:
			plan.StaleMarker = true
		case oi.Name != crypto.ConfigName && backup.InRepository(oi.Name):
			objects++
		}
		return nil
	})
	if err != nil {
		return plan, fmt.Errorf("%w: listing it: %w", ErrUnreachable, err)
	}
	data, err := readSmall(ctx, dst, crypto.ConfigName, 64<<10)
	switch {
	case errors.Is(err, fs.ErrNotExist) && objects > 0:
		return plan, fmt.Errorf("%w: it holds %d objects under nodes/ and blobs/ but no %s; give an empty relay", ErrOtherRepository, objects, crypto.ConfigName)
	case errors.Is(err, fs.ErrNotExist) && plan.StaleMarker:
		return plan, fmt.Errorf("%w: it holds a %s marker but no %s; give an empty relay", ErrOtherRepository, layout.MovedName, crypto.ConfigName)
	case errors.Is(err, fs.ErrNotExist):
		return plan, nil
	case err != nil:
		return plan, fmt.Errorf("%w: reading its %s: %w", ErrUnreachable, crypto.ConfigName, err)
	}
	if !bytes.Equal(data, config) {
		id := "an unreadable one"
		if cfg, err := crypto.ParseConfig(data); err == nil {
			id = cfg.Repository.String()
		}
		return plan, fmt.Errorf("%w (%s): moving there would mix two repositories; give an empty relay", ErrOtherRepository, id)
	}
	plan.Resume = true
	return plan, nil
}

// Result is what Move did.
type Result struct {
	Plan
	Summary
	// Marker is set when Move wrote the marker; clear when the old relay
	// already held one naming the same relay (a migrate run again).
	Marker bool
	// Hash is the SHA-256 of the marker on the old relay.
	Hash [32]byte
}

// Move moves repo from old to dst: it checks dst (CheckDest), copies every
// object (Copy), deletes a stale marker of dst, writes the marker m on old,
// reads it back, and copies again what the nodes published on old in the
// meantime. Until the marker is written nothing on old changes, so a Move
// that fails earlier (dst unreachable, full, holding another repository)
// leaves the repository where it was; run again, it resumes.
func Move(ctx context.Context, old Old, dst Dest, repo *escsync.Repository, m escsync.Moved, opts Options) (Result, error) {
	log := opts.logger()
	var res Result
	config, err := readSmall(ctx, old, crypto.ConfigName, 64<<10)
	if err != nil {
		return res, fmt.Errorf("reading the old relay's %s: %w", crypto.ConfigName, err)
	}
	if sha256.Sum256(config) != repo.Hash {
		return res, fmt.Errorf("the old relay's %s is not the repository's: %w", crypto.ConfigName, escsync.ErrRepoChanged)
	}
	already := false
	switch me, err := escsync.ReadMoved(ctx, old, repo); {
	case err == nil && me.Moved.URL != m.URL:
		return res, fmt.Errorf("%w: %s; to move it again, run escalefs migrate from there", ErrAlreadyMoved, me.Error())
	case err == nil:
		already = true
		res.Hash = me.Hash
		log.Info("the old relay already sends the nodes to "+m.URL+"; copying what is missing there", "marker_time", me.Moved.Time)
	case errors.Is(err, escsync.ErrBadMoved):
		log.Warn("the old relay holds a moved marker that is not valid; it is replaced", "err", err)
	case !errors.Is(err, fs.ErrNotExist):
		return res, err
	}
	plan, err := CheckDest(ctx, dst, config)
	res.Plan = plan
	if err != nil {
		return res, err
	}
	if plan.Resume {
		log.Info("the new relay already holds this repository: resuming, copying only what is missing")
	}
	sum, err := Copy(ctx, old, dst, opts)
	res.add(sum)
	if err != nil {
		return res, err
	}
	if plan.StaleMarker {
		if err := dst.Delete(ctx, layout.MovedName); err != nil {
			return res, fmt.Errorf("deleting the stale %s marker of the new relay: %w", layout.MovedName, err)
		}
	}
	if !already {
		sealed, err := escsync.SealMoved(repo, m)
		if err != nil {
			return res, err
		}
		if err := old.Put(ctx, layout.MovedName, relay.BytesPayload(sealed)); err != nil {
			return res, fmt.Errorf("writing the %s marker on the old relay (the copy is complete; run escalefs migrate again): %w",
				layout.MovedName, err)
		}
		me, err := escsync.ReadMoved(ctx, old, repo)
		if err != nil {
			return res, fmt.Errorf("reading back the %s marker: %w", layout.MovedName, err)
		}
		if me.Moved.URL != m.URL {
			return res, fmt.Errorf("reading back the %s marker: it names %s, not %s", layout.MovedName, me.Moved.URL, m.URL)
		}
		res.Marker, res.Hash = true, me.Hash
		log.Info("the old relay now sends every node to "+m.URL, "time", m.Time.Format(time.RFC3339))
	}
	// What the nodes published on the old relay while the copy ran.
	sum, err = Copy(ctx, old, dst, opts)
	res.add(sum)
	if err != nil {
		return res, fmt.Errorf("copying what was published during the move: %w", err)
	}
	return res, nil
}

// OwnObjects returns the Only filter of one node's own objects: its log,
// snapshots and forget records (nodes/<node>/) and its blobs
// (blobs/<node>/). A node that follows a move copies them, so that what
// it published on the old relay after the repository was copied is not
// lost.
func OwnObjects(node crypto.NodeID) func(string) bool {
	n, b := layout.NodeDir(node)+"/", layout.BlobDir(node)+"/"
	return func(name string) bool { return strings.HasPrefix(name, n) || strings.HasPrefix(name, b) }
}
